"""What a clinician is shown when the patient's upheld objection withholds the whole record.

A user who would see the record but for the objection is told plainly that the patient asked for it not to be
shared (a clinician who believes there is no record is a clinical-safety hazard), and is offered only break-glass
for safeguarding, which sets the objection aside only where its decision allows. A user with no relationship is
told nothing more than any other refusal tells them.
"""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent, Alert
from consent.models import BreakGlassGrant, Objection
from tests.builders import PASSWORD

WITHHELD = "This patient has asked for their record not to be shared"


def whole_record_objection(patient, *, override: bool) -> Objection:
    return Objection.objects.create(
        reference="OB-WHOLE234",
        channel=Objection.Channel.LETTER,
        given_name=patient.given_name,
        family_name=patient.family_name,
        birth_date=patient.birth_date,
        contact_by=Objection.ContactBy.POST,
        contact_detail="1 Mill Road",
        due_at=timezone.now() + timedelta(days=30),
        patient=patient,
        status=Objection.Status.UPHELD,
        scope_whole_record=True,
        upheld_whole_record=True,
        break_glass_may_override=override,
    )


def search(client, patient):
    return client.post(reverse("records:patient-search"), {"nhs_number": patient.nhs_number})


def record_url(patient) -> str:
    return reverse("records:patient-detail", kwargs={"public_id": patient.public_id})


def break_glass(client, patient, reason: str):
    return client.post(
        reverse("records:break-glass", kwargs={"public_id": patient.public_id}),
        {
            "glass-reason_code": reason,
            "glass-reason_text": "Child protection concern",
            "glass-password": PASSWORD,
        },
    )


def test_the_practice_is_told_the_patient_objected_and_shown_nothing_else(client, cast):
    whole_record_objection(cast.patient_a, override=False)
    client.force_login(cast.gp_ada)

    found = search(client, cast.patient_a)
    page = client.get(found["Location"])

    assert found["Location"] == record_url(cast.patient_a)
    assert page.status_code == 403
    text = page.content.decode()
    assert WITHHELD in text
    for value in ("Ashby", "ASHBY", "Type 2 diabetes", "Mill Road", "OB-WHOLE234"):
        assert value not in text
    refused = AccessEvent.objects.filter(action=AccessEvent.Action.VIEW_RECORD).get()
    assert (refused.outcome, refused.patient_id) == (AccessEvent.Outcome.DENIED, cast.patient_a.pk)


def test_the_access_page_offers_only_break_glass_and_says_why(client, cast):
    whole_record_objection(cast.patient_a, override=True)
    client.force_login(cast.gp_ada)
    search(client, cast.patient_a)

    page = client.get(record_url(cast.patient_a)).content.decode()
    access = client.get(reverse("records:patient-access", kwargs={"public_id": cast.patient_a.public_id}))

    assert reverse("records:patient-access", kwargs={"public_id": cast.patient_a.public_id}) in page
    text = access.content.decode()
    assert (
        "Record not shared at the patient&#x27;s request" in text
        or "Record not shared at the patient's" in text
    )
    assert "No care relationship recorded" not in text
    assert 'name="glass-reason_code"' in text and 'name="claim-reason_code"' not in text


def test_safeguarding_break_glass_opens_a_record_whose_objection_allows_it_loudly(client, cast):
    whole_record_objection(cast.patient_a, override=True)
    client.force_login(cast.gp_ada)
    search(client, cast.patient_a)

    response = break_glass(client, cast.patient_a, BreakGlassGrant.Reason.SAFEGUARDING)
    record = client.get(record_url(cast.patient_a))

    assert response.status_code == 303
    assert record.status_code == 200
    assert "Type 2 diabetes mellitus" in record.content.decode()
    assert AccessEvent.objects.filter(action=AccessEvent.Action.OBJECTION_OVERRIDE).count() == 1
    assert Alert.objects.filter(kind=Alert.Kind.OBJECTION_OVERRIDE).count() == 1


def test_break_glass_does_not_open_a_record_whose_objection_does_not_allow_it(client, cast):
    whole_record_objection(cast.patient_a, override=False)
    client.force_login(cast.gp_ada)
    search(client, cast.patient_a)

    break_glass(client, cast.patient_a, BreakGlassGrant.Reason.SAFEGUARDING)
    record = client.get(record_url(cast.patient_a))

    assert record.status_code == 403
    assert "Type 2 diabetes mellitus" not in record.content.decode()
    assert not AccessEvent.objects.filter(action=AccessEvent.Action.OBJECTION_OVERRIDE).exists()


def test_a_user_with_no_relationship_learns_nothing_of_the_objection(client, cast):
    whole_record_objection(cast.patient_a, override=False)
    cast.reception_dan.staff_profiles.update(organisation=cast.practice_b)  # no relationship, may not claim
    client.force_login(cast.reception_dan)

    response = search(client, cast.patient_a)

    assert response.status_code == 200
    assert WITHHELD not in response.content.decode()
    assert client.get(record_url(cast.patient_a)).status_code == 404
