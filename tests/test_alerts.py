"""The privacy officer's review queue: only privacy officers see it, an alert names the patient only on its own
page (whose reading is audited), and an outcome is recorded once."""

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from audit.models import AccessEvent, Alert
from tests.builders import PASSWORD

PATIENT_B_FIELDS = ("Brian", "BARTON", "Barton", "9990000026", "999 000 0026")


def claim_and_glass(client, cast) -> tuple[Alert, Alert]:
    """ed.cara declares a relationship with patient B and breaks the glass on the sensitive patient."""
    client.force_login(cast.ed_cara)
    for patient in (cast.patient_b, cast.patient_sensitive):
        client.post(reverse("records:patient-search"), {"nhs_number": patient.nhs_number})
    client.post(
        reverse("records:relationship-declare", kwargs={"public_id": cast.patient_b.public_id}),
        {
            "claim-reason_code": "referral-received",
            "claim-reason_text": "Referred by GP",
            "claim-hours": "24",
        },
    )
    client.post(
        reverse("records:break-glass", kwargs={"public_id": cast.patient_sensitive.public_id}),
        {
            "glass-reason_code": "safeguarding-public-interest",
            "glass-reason_text": "Safeguarding call",
            "glass-password": PASSWORD,
        },
    )
    client.get(reverse("records:patient-detail", kwargs={"public_id": cast.patient_b.public_id}))
    client.logout()
    return Alert.objects.get(kind=Alert.Kind.SELF_CLAIM), Alert.objects.get(kind=Alert.Kind.BREAK_GLASS)


def detail_url(alert: Alert) -> str:
    return reverse("records:alert-detail", kwargs={"alert_id": alert.pk})


def test_the_queue_lists_alerts_with_who_and_why_and_names_no_patient(client, cast):
    claim, glass = claim_and_glass(client, cast)
    client.force_login(cast.privacy_fay)
    events_before = AccessEvent.objects.count()

    response = client.get(reverse("records:alert-list"))

    assert response.status_code == 200
    text = response.content.decode()
    for alert in (claim, glass):
        assert alert.reference in text
    assert "Self-claimed relationship" in text and "Break-glass access" in text
    assert "ed.cara, Clinical practitioner (R8000) at RGT" in text
    assert "Referral received: Referred by GP" in text
    for value in (*PATIENT_B_FIELDS, "Tamsin", "Sedgwick", "9449306613"):
        assert value not in text
    assert AccessEvent.objects.count() == events_before


@pytest.mark.parametrize("who", ["gp_ada", "ed_cara", "reception_dan", "social_eli", "admin_gus"])
def test_no_one_but_a_privacy_officer_sees_the_queue_or_an_alert(client, cast, who):
    claim, _ = claim_and_glass(client, cast)
    client.force_login(getattr(cast, who))
    events_before = AccessEvent.objects.count()

    listing = client.get(reverse("records:alert-list"))
    detail = client.get(detail_url(claim))
    review = client.post(detail_url(claim), {"outcome": "appropriate", "note": "fine"})

    assert listing.status_code == detail.status_code == review.status_code == 404
    for response in (listing, detail, review):
        text = response.content.decode()
        assert claim.reference not in text
        for value in PATIENT_B_FIELDS:
            assert value not in text
    # The refused attempt to read the alert is in the trail; nothing else is written or changed.
    refused = AccessEvent.objects.get(action=AccessEvent.Action.READ_AUDIT)
    assert (refused.outcome, refused.user_id, refused.patient_id) == (
        AccessEvent.Outcome.DENIED,
        getattr(cast, who).pk,
        None,
    )
    assert AccessEvent.objects.count() == events_before + 1
    claim.refresh_from_db()
    assert claim.is_open


def test_the_privacy_officer_sees_an_alerts_nav_link_and_no_one_else_does(client, cast):
    client.force_login(cast.privacy_fay)
    assert reverse("records:alert-list") in client.get(reverse("records:home")).content.decode()
    client.force_login(cast.ed_cara)
    assert reverse("records:alert-list") not in client.get(reverse("records:home")).content.decode()


def test_reading_an_alert_shows_the_patient_and_the_users_accesses_and_is_audited(client, cast):
    claim, _ = claim_and_glass(client, cast)
    client.force_login(cast.privacy_fay)

    response = client.get(detail_url(claim))

    assert response.status_code == 200
    text = response.content.decode()
    assert "Brian BARTON" in text
    assert "999 000 0026" in text
    assert "Declare relationship" in text and "View record" in text and "Search" in text
    event = AccessEvent.objects.filter(action=AccessEvent.Action.READ_AUDIT).get()
    assert (event.outcome, event.purpose, event.patient_id, event.user_id) == (
        AccessEvent.Outcome.ALLOWED,
        AccessEvent.Purpose.AUDIT,
        cast.patient_b.pk,
        cast.privacy_fay.pk,
    )
    assert claim.reference in event.basis


def test_an_alert_that_does_not_exist_is_a_404_and_audited(client, cast):
    client.force_login(cast.privacy_fay)

    response = client.get(reverse("records:alert-detail", kwargs={"alert_id": 999_999}))

    assert response.status_code == 404
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome) == (AccessEvent.Action.READ_AUDIT, AccessEvent.Outcome.NOT_FOUND)


def test_an_outcome_is_recorded_once_with_the_reviewer_and_the_time(client, cast):
    _, glass = claim_and_glass(client, cast)
    client.force_login(cast.privacy_fay)

    first = client.post(detail_url(glass), {"outcome": "inappropriate", "note": "No care need found"})
    second = client.post(
        detail_url(glass), {"outcome": "appropriate", "note": "Changed my mind"}, follow=True
    )

    assert first.status_code == 303
    glass.refresh_from_db()
    assert (glass.outcome, glass.review_note) == (Alert.Outcome.INAPPROPRIATE, "No care need found")
    assert (glass.reviewed_by_id, glass.reviewed_by_username) == (cast.privacy_fay.pk, "privacy.fay")
    assert glass.reviewed_at is not None
    assert "reviewed already" in second.content.decode()
    assert LogEntry.objects.get_for_object(glass).count() == 2  # raised, then reviewed once


@pytest.mark.parametrize("outcome", ["", "ignored"])
def test_an_outcome_not_on_the_list_is_refused_and_nothing_changes(client, cast, outcome):
    claim, _ = claim_and_glass(client, cast)
    client.force_login(cast.privacy_fay)

    response = client.post(detail_url(claim), {"outcome": outcome})

    assert response.status_code == 200
    assert "There is a problem" in response.content.decode()
    claim.refresh_from_db()
    assert claim.is_open and claim.outcome == ""


def test_open_alerts_come_before_reviewed_ones(client, cast):
    claim, glass = claim_and_glass(client, cast)
    client.force_login(cast.privacy_fay)
    client.post(detail_url(glass), {"outcome": "appropriate"})
    client.post(detail_url(claim), {"outcome": "referred-on"})
    third = Alert.objects.create(kind=Alert.Kind.SELF_CLAIM, reference="SC-THIRD000", username="ed.cara")

    text = client.get(reverse("records:alert-list")).content.decode()

    assert text.index(third.reference) < text.index(claim.reference) < text.index(glass.reference)


@pytest.mark.parametrize(
    ("kind", "who"),
    [
        (Alert.Kind.ACCESS_ADMINISTRATION, "admin.gus (back office, no clinical role)"),
        (Alert.Kind.SELF_GRANT_REFUSED, "admin.gus (back office, no clinical role)"),
        (Alert.Kind.FIRST_CONTACT, "Raised by sharedcare (feed check)"),
    ],
)
def test_an_alert_about_who_may_see_what_or_a_feed_says_who_raised_it_and_lists_no_accesses(
    client, cast, kind, who
):
    by_back_office = kind != Alert.Kind.FIRST_CONTACT
    alert = Alert.objects.create(
        kind=kind,
        reference="AA-TEST0001",
        user_id=cast.admin_gus.pk if by_back_office else None,
        username="admin.gus" if by_back_office else "",
        patient_id=None if by_back_office else cast.patient_b.pk,
        reason="what was found",
    )
    client.force_login(cast.privacy_fay)

    listed = client.get(reverse("records:alert-list")).content.decode()
    opened = client.get(detail_url(alert)).content.decode()

    assert who in listed and who in opened
    assert "events-heading" not in opened
    if by_back_office:
        assert "None: the alert is about who may see what, not an access to a record" in opened
    else:
        assert "999 000 0026" in opened
