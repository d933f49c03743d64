"""The national data opt-out: recorded by the back office or from a feed, removed with a reason, shown to the
information-governance team with every patient shown audited, and by default no change to direct care."""

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from audit.models import AccessEvent
from consent.models import NationalOptOut
from consent.opt_outs import national_opt_out_record, national_opt_out_remove
from consent.policy import decide
from consent.subject_access import CaseStepRefused
from records.access_requests import OPT_OUTS_PER_PAGE
from records.models import Patient
from tests.builders import condition, ingest

Action = AccessEvent.Action
PATIENT_A_FIELDS = ("Alice", "ASHBY", "Ashby", "9990000018", "999 000 0018")


@pytest.fixture
def ig(cast):
    """privacy.fay, given the permission that makes her one of the IG team."""
    cast.privacy_fay.user_permissions.add(
        Permission.objects.get(codename="manage_objections", content_type__app_label="consent")
    )
    return cast.privacy_fay


def record(client, nhs_number="999 000 0018", birth_date="1950-03-14", note=""):
    return client.post(
        reverse("records:opt-out-record"), {"nhs_number": nhs_number, "birth_date": birth_date, "note": note}
    )


def remove_url(opt_out: NationalOptOut) -> str:
    return reverse("records:opt-out-remove", kwargs={"opt_out_id": opt_out.pk})


def by_staff(patient: Patient, user) -> NationalOptOut:
    return national_opt_out_record(patient, NationalOptOut.Source.STAFF, recorded_by_id=user.pk)[0]


# Recording and removing.


def test_the_team_records_an_opt_out_for_the_patient_matching_nhs_number_and_birth_date(client, cast, ig):
    client.force_login(ig)

    response = record(client, note="Told us by phone")

    assert response.status_code == 303
    opt_out = NationalOptOut.objects.get()
    assert (opt_out.patient, opt_out.source, opt_out.recorded_by) == (cast.patient_a, "staff", ig)
    assert opt_out.note == "Told us by phone"
    event = AccessEvent.objects.get()
    assert (event.action, event.purpose, event.outcome) == ("match-patient", "patients-rights", "allowed")
    assert (event.patient_id, event.username, event.reason) == (
        cast.patient_a.pk,
        "privacy.fay",
        "national data opt-out recorded",
    )
    assert "National data opt-out recorded." in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("nhs_number", "birth_date"), [("9990000018", "1950-03-15"), ("9449305552", "1950-03-14")]
)
def test_no_matching_patient_records_nothing_and_is_audited_as_not_found(
    client, cast, ig, nhs_number, birth_date
):
    client.force_login(ig)

    response = record(client, nhs_number=nhs_number, birth_date=birth_date)

    assert response.status_code == 200
    assert "No patient held here has this NHS number and date of birth" in response.content.decode()
    assert not NationalOptOut.objects.exists()
    events = AccessEvent.objects.filter(action=Action.MATCH_PATIENT)
    assert [(event.outcome, event.patient_id) for event in events] == [("not-found", None)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nhs_number": "9876544321", "birth_date": "1950-03-14"}, "This is not a valid NHS number"),
        ({"nhs_number": "", "birth_date": "1950-03-14"}, "Enter an NHS number."),
        (
            {"nhs_number": "9990000018", "birth_date": "2999-01-01"},
            "The date of birth cannot be in the future.",
        ),
        ({"nhs_number": "9990000018", "birth_date": ""}, "Enter the date of birth."),
    ],
)
def test_bad_input_is_explained_and_nothing_is_recorded(client, cast, ig, data, message):
    client.force_login(ig)

    response = client.post(reverse("records:opt-out-record"), data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not NationalOptOut.objects.exists()
    assert not AccessEvent.objects.filter(action=Action.MATCH_PATIENT).exists()


def test_recording_an_opt_out_twice_keeps_one(client, cast, ig):
    client.force_login(ig)
    record(client)

    response = record(client)

    assert NationalOptOut.objects.count() == 1
    assert "was recorded already; nothing changed" in client.get(response["Location"]).content.decode()


def test_the_team_removes_an_opt_out_with_a_reason_and_the_removal_is_audited_and_logged(client, cast, ig):
    opt_out = by_staff(cast.patient_a, ig)
    client.force_login(ig)

    response = client.post(remove_url(opt_out), {"reason": "The patient changed their choice"})

    assert response.status_code == 303
    assert not NationalOptOut.objects.exists()
    event = AccessEvent.objects.get(action=Action.MATCH_PATIENT)
    assert (event.outcome, event.patient_id) == ("allowed", cast.patient_a.pk)
    assert event.reason == "national data opt-out removed: The patient changed their choice"
    deleted = LogEntry.objects.get(
        content_type=ContentType.objects.get_for_model(NationalOptOut), action=LogEntry.Action.DELETE
    )
    assert (deleted.object_pk, deleted.actor) == (str(opt_out.pk), ig)


def test_a_removal_without_a_reason_is_refused_and_the_opt_out_stays(client, cast, ig):
    opt_out = by_staff(cast.patient_a, ig)
    client.force_login(ig)

    response = client.post(remove_url(opt_out), {"reason": "  "})

    assert response.status_code == 200
    assert "Say why the opt-out is removed." in response.content.decode()
    assert NationalOptOut.objects.filter(pk=opt_out.pk).exists()
    assert not AccessEvent.objects.filter(action=Action.MATCH_PATIENT).exists()


def test_removing_an_opt_out_that_is_not_there_is_not_found(client, cast, ig):
    client.force_login(ig)

    response = client.post(reverse("records:opt-out-remove", kwargs={"opt_out_id": 999}), {"reason": "gone"})

    assert response.status_code == 404
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id) == ("match-patient", "not-found", None)


# From a feed: the service a feed's ingest calls.


def test_a_feed_records_an_opt_out_naming_its_feed_and_once(cast):
    opt_out, created = national_opt_out_record(
        cast.patient_b, NationalOptOut.Source.FEED, source_feed=cast.gp_b_feed
    )
    again, created_again = national_opt_out_record(
        cast.patient_b, NationalOptOut.Source.FEED, source_feed=cast.gp_b_feed
    )

    assert (created, created_again, again.pk) == (True, False, opt_out.pk)
    assert (opt_out.source, opt_out.source_feed, opt_out.recorded_by) == ("feed", cast.gp_b_feed, None)
    assert national_opt_out_remove(cast.patient_b) is True
    assert national_opt_out_remove(cast.patient_b) is False
    assert not NationalOptOut.objects.exists()


@pytest.mark.parametrize(
    ("source", "extra", "message"),
    [
        ("rumour", {}, "'rumour' is not a source of an opt-out."),
        (NationalOptOut.Source.FEED, {}, "An opt-out from a feed names its feed."),
        (NationalOptOut.Source.STAFF, {}, "An opt-out recorded by staff names who recorded it."),
    ],
)
def test_an_opt_out_without_a_known_source_is_refused(cast, source, extra, message):
    with pytest.raises(CaseStepRefused) as refused:
        national_opt_out_record(cast.patient_a, source, **extra)

    assert str(refused.value) == message
    assert not NationalOptOut.objects.exists()


# Shown to the back office.


def test_the_list_shows_patients_with_an_opt_out_by_nhs_number_and_audits_each_one_shown(client, cast, ig):
    by_staff(cast.patient_a, ig)
    national_opt_out_record(cast.patient_b, NationalOptOut.Source.FEED, source_feed=cast.gp_b_feed)
    client.force_login(ig)

    response = client.get(reverse("records:opt-out-list"))

    assert response.status_code == 200
    text = response.content.decode()
    assert "999 000 0018" in text and "999 000 0026" in text
    assert "944 930 6613" not in text
    assert "A partner&#x27;s feed: GP record (D81002)" in text
    assert "Recorded by staff" in text
    for name in ("Alice", "Ashby", "Brian", "Barton"):
        assert name not in text
    shown = AccessEvent.objects.filter(action=Action.SEARCH)
    assert sorted(event.patient_id for event in shown) == sorted([cast.patient_a.pk, cast.patient_b.pk])
    assert {(event.purpose, event.outcome, event.username) for event in shown} == {
        ("patients-rights", "allowed", "privacy.fay")
    }


def test_the_list_pages_and_audits_only_the_patients_on_the_page(client, cast, ig):
    # Stored as a feed would store them; the list reads what is held, whatever its check digit.
    patients = [Patient.objects.create(nhs_number=f"98{n:08d}") for n in range(OPT_OUTS_PER_PAGE + 2)]
    for patient in patients:
        by_staff(patient, ig)
    client.force_login(ig)

    first = client.get(reverse("records:opt-out-list"))
    first_shown = set(AccessEvent.objects.values_list("patient_id", flat=True))
    second = client.get(reverse("records:opt-out-list"), {"page": "2"})

    assert first.status_code == second.status_code == 200
    assert len(first_shown) == OPT_OUTS_PER_PAGE
    second_shown = set(AccessEvent.objects.values_list("patient_id", flat=True)) - first_shown
    assert second_shown == {patient.pk for patient in patients[:2]}
    assert AccessEvent.objects.count() == len(patients)
    assert "Page 2 of 2" in second.content.decode()


@pytest.mark.parametrize("who", ["gp_ada", "admin_gus", "privacy_fay"])
def test_no_one_outside_the_ig_team_reaches_the_opt_outs_and_nothing_changes(client, cast, who):
    # privacy.fay is a privacy officer, but not in the IG team until she is given its permission.
    opt_out = by_staff(cast.patient_a, cast.admin_gus)
    client.force_login(getattr(cast, who))

    responses = [
        client.get(reverse("records:opt-out-list")),
        record(client, nhs_number="9990000026", birth_date="1962-07-01"),
        client.post(remove_url(opt_out), {"reason": "not mine to remove"}),
    ]

    for response in responses:
        assert response.status_code == 404
        text = response.content.decode()
        for value in (*PATIENT_A_FIELDS, "999 000 0026", "9990000026"):
            assert value not in text
    assert list(NationalOptOut.objects.values_list("pk", "patient")) == [(opt_out.pk, cast.patient_a.pk)]
    events = AccessEvent.objects.all()
    assert len(events) == 3
    assert {(event.outcome, event.patient_id, event.purpose) for event in events} == {
        ("denied", None, "patients-rights")
    }


def test_strangers_are_sent_to_log_in(client, cast):
    opt_out = by_staff(cast.patient_a, cast.admin_gus)
    for response in (
        client.get(reverse("records:opt-out-list")),
        record(client),
        client.post(remove_url(opt_out), {"reason": "x"}),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert not AccessEvent.objects.exists()


# Direct care.


def test_by_default_an_opt_out_does_not_change_what_direct_care_sees(cast, ig):
    before = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)
    by_staff(cast.patient_a, ig)

    after = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)

    assert before.allowed and after.allowed
    assert (after.sections, after.withheld_sections, after.withheld_partners) == (
        before.sections,
        before.withheld_sections,
        before.withheld_partners,
    )


# From a feed: NHS England's opt-out Consent, through the real ingest pipeline.


def opt_out_consent(patient, status: str = "active", resource_id: str = "ndop-1") -> dict:
    return {
        "resourceType": "Consent",
        "id": resource_id,
        "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/NDOP-Consent-1"]},
        "status": status,
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": condition("x", patient)["subject"],
        "policy": [{"uri": "https://www.nhs.uk/your-nhs-data-matters/"}],
    }


def test_a_feeds_opt_out_consent_records_the_opt_out_and_a_later_inactive_one_lifts_it(cast):
    run = ingest(cast.gp_a_feed, opt_out_consent(cast.patient_a))

    opt_out = NationalOptOut.objects.get(patient=cast.patient_a)
    assert (opt_out.source, opt_out.source_feed) == (NationalOptOut.Source.FEED, cast.gp_a_feed)
    assert run.status == run.Status.SUCCEEDED

    ingest(cast.gp_a_feed, opt_out_consent(cast.patient_a, status="inactive"))

    assert not NationalOptOut.objects.filter(patient=cast.patient_a).exists()


def test_a_consent_that_is_not_the_national_opt_out_records_nothing(cast):
    other = {**opt_out_consent(cast.patient_a), "meta": {}}

    ingest(cast.gp_a_feed, other)

    assert not NationalOptOut.objects.exists()
    assert cast.patient_a.entries.filter(
        resource_type="Consent"
    ).exists()  # still in the record's legal section


def test_a_feed_never_lifts_an_opt_out_staff_recorded(cast):
    national_opt_out_record(cast.patient_a, NationalOptOut.Source.STAFF, recorded_by_id=cast.privacy_fay.pk)

    ingest(cast.gp_a_feed, opt_out_consent(cast.patient_a, status="rejected"))

    assert NationalOptOut.objects.get(patient=cast.patient_a).source == NationalOptOut.Source.STAFF
