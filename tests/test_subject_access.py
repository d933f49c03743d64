"""Subject access requests: the register, each step of a request, the patient's access report, deadlines and their
alerts, and that only the information-governance team reaches any of it."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent, Alert
from consent.access_report import REPORT_HEADER
from consent.models import Objection, SubjectAccessRequest
from consent.objections import calendar_month_after, objection_receive
from consent.subject_access import (
    CaseStepRefused,
    case_overdue_alerts_raise,
    subject_access_enter,
    subject_access_extend,
    subject_access_fulfil,
    subject_access_identity_verify,
    subject_access_overdue,
    subject_access_withdraw,
)
from consent.tasks import case_overdue_alerts_raise_task
from records.models import Patient
from sharedcare.celery import app
from tests.builders import make_user

Status = SubjectAccessRequest.Status
PATIENT_A = ("Alice", "Ashby", "ASHBY", "9990000018", "999 000 0018")
REQUEST = {
    "channel": Objection.Channel.LETTER,
    "requester_name": "Jo Bloggs",
    "contact_by": Objection.ContactBy.POST,
    "contact_detail": "12 Hills Road, Cambridge CB2 1PH",
}


def join_ig_team(user) -> None:
    user.user_permissions.add(
        Permission.objects.get(codename="manage_objections", content_type__app_label="consent")
    )


@pytest.fixture
def ig(cast):
    """privacy.fay, given the permission that makes her one of the IG team."""
    join_ig_team(cast.privacy_fay)
    return cast.privacy_fay


def received(**extra) -> SubjectAccessRequest:
    return subject_access_enter(**{**REQUEST, **extra})


def detail_url(case: SubjectAccessRequest, name: str = "subject-access-detail") -> str:
    return reverse(f"records:{name}", kwargs={"reference": case.reference})


def verify(client, case, nhs_number="9990000018", birth_date="1950-03-14"):
    return client.post(
        detail_url(case, "subject-access-verify"), {"nhs_number": nhs_number, "birth_date": birth_date}
    )


def rows_of(text: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == REPORT_HEADER
    return rows[1:]


def state(case: SubjectAccessRequest) -> tuple:
    case.refresh_from_db()
    return (
        case.status,
        case.patient_id,
        case.due_at,
        case.report,
        case.note,
        case.extension_reason,
        case.withdrawn_at,
    )


# Receiving.


def test_a_request_staff_take_is_received_due_one_calendar_month_later(cast, ig):
    case = received(received_at=datetime(2026, 1, 31, 9, tzinfo=UTC), nhs_number_text="999 000 0018")

    assert case.reference.startswith("SAR-")
    assert (case.status, case.patient) == (Status.RECEIVED, None)
    assert case.due_at == datetime(2026, 2, 28, 9, tzinfo=UTC)
    assert case.nhs_number == "9990000018"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"channel": "fax"}, "'fax' is not a way a request is received."),
        ({"contact_by": "pigeon"}, "'pigeon' is not a way to contact them."),
        ({"requester_name": "   "}, "Give the name of the person asking."),
        ({"contact_detail": ""}, "Give how to contact the person asking."),
        ({"requester_name": "x" * 201}, "A name has 200 characters at most."),
        ({"contact_detail": "x" * 301}, "A contact detail has 300 characters at most."),
        ({"nhs_number_text": "9876544321"}, "'9876544321' is not a valid NHS number."),
        ({"birth_date": date.today() + timedelta(days=2)}, "A birth date is not in the future."),
        ({"received_at": timezone.now() + timedelta(days=1)}, "A request is not received in the future."),
    ],
)
def test_a_request_with_bad_input_is_refused_and_nothing_is_stored(db, bad, message):
    with pytest.raises(CaseStepRefused) as refused:
        received(**bad)

    assert str(refused.value) == message
    assert not SubjectAccessRequest.objects.exists()


def test_the_team_records_a_request_from_the_register(client, cast, ig):
    client.force_login(ig)

    response = client.post(
        reverse("records:subject-access-new"),
        {**REQUEST, "received_on": "", "nhs_number": "999 000 0018", "birth_date": "1950-03-14"},
    )

    case = SubjectAccessRequest.objects.get()
    assert response.status_code == 303
    assert response["Location"] == detail_url(case)
    assert (case.entered_by, case.nhs_number, case.birth_date) == (ig, "9990000018", date(1950, 3, 14))
    assert not AccessEvent.objects.exists()


def test_a_request_received_earlier_is_due_a_month_after_that_day(client, cast, ig):
    client.force_login(ig)
    earlier = timezone.localdate() - timedelta(days=10)

    client.post(reverse("records:subject-access-new"), {**REQUEST, "received_on": earlier.isoformat()})

    case = SubjectAccessRequest.objects.get()
    assert timezone.localtime(case.received_at).date() == earlier
    assert case.due_at == calendar_month_after(case.received_at)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nhs_number", "9876544321", "This is not a valid NHS number"),
        ("birth_date", "2999-01-01", "The date of birth cannot be in the future."),
        ("received_on", "2999-01-01", "The date received cannot be in the future."),
        ("contact_detail", "x" * 301, "Ensure this value has at most 300 characters"),
        ("channel", "fax", "Choose from the list."),
        ("requester_name", "", "Enter the name of the person asking."),
    ],
)
def test_the_form_explains_bad_input_and_stores_nothing(client, cast, ig, field, value, message):
    client.force_login(ig)

    response = client.post(reverse("records:subject-access-new"), {**REQUEST, field: value})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not SubjectAccessRequest.objects.exists()


@pytest.mark.parametrize(
    ("contact_by", "detail", "message"),
    [
        ("email", "not an address", "Enter an email address"),
        ("phone", "call me", "A phone number has digits"),
    ],
)
def test_a_contact_detail_must_fit_how_to_reply(client, cast, ig, contact_by, detail, message):
    client.force_login(ig)

    response = client.post(
        reverse("records:subject-access-new"), {**REQUEST, "contact_by": contact_by, "contact_detail": detail}
    )

    assert message in response.content.decode()
    assert not SubjectAccessRequest.objects.exists()


def test_markup_typed_into_a_request_is_shown_as_text(client, cast, ig):
    client.force_login(ig)
    client.post(
        reverse("records:subject-access-new"), {**REQUEST, "requester_name": "<script>alert(1)</script>"}
    )
    case = SubjectAccessRequest.objects.get()

    body = (
        client.get(detail_url(case)).content.decode()
        + client.get(reverse("records:subject-access-list")).content.decode()
    )

    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


# Identity verified: matching a request to a patient.


def test_verifying_identity_matches_the_patient_by_nhs_number_and_birth_date_and_is_audited(client, cast, ig):
    case = received()
    client.force_login(ig)

    response = verify(client, case, nhs_number="999 000 0018")

    assert response.status_code == 303
    case.refresh_from_db()
    assert (case.status, case.patient, case.identity_checked_by) == (
        Status.IDENTITY_VERIFIED,
        cast.patient_a,
        ig,
    )
    assert case.identity_checked_at is not None
    event = AccessEvent.objects.get()
    assert (event.action, event.purpose, event.outcome) == ("match-patient", "patients-rights", "allowed")
    assert (event.patient_id, event.username, event.query) == (
        cast.patient_a.pk,
        "privacy.fay",
        case.reference,
    )


@pytest.mark.parametrize(
    ("nhs_number", "birth_date"),
    [("9990000018", "1950-03-15"), ("9449305552", "1950-03-14"), ("9990000026", "1950-03-14")],
)
def test_no_match_verifies_nothing_and_is_audited_as_not_found(client, cast, ig, nhs_number, birth_date):
    case = received()
    client.force_login(ig)

    response = verify(client, case, nhs_number=nhs_number, birth_date=birth_date)

    assert response.status_code == 200
    text = response.content.decode()
    assert "No patient held here has this NHS number and date of birth" in text
    for value in ("Brian", "Barton", "BARTON", "Alice", "ASHBY"):
        assert value not in text
    assert state(case)[:2] == (Status.RECEIVED, None)
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id) == ("match-patient", "not-found", None)


def test_a_merged_record_is_matched_to_the_record_it_was_merged_into(client, cast, ig):
    old = Patient.objects.create(
        nhs_number="9449305552", birth_date=date(1950, 3, 14), merged_into=cast.patient_a
    )
    case = received()
    client.force_login(ig)

    verify(client, case, nhs_number=old.nhs_number)

    assert state(case)[:2] == (Status.IDENTITY_VERIFIED, cast.patient_a.pk)


# Steps that cannot be taken.


def _verify(case, cast):
    subject_access_identity_verify(
        reference=case.reference,
        patient=cast.patient_a,
        nhs_number_text="9990000018",
        birth_date=date(1950, 3, 14),
        by_user_id=None,
    )


def _fulfil(case, cast):
    subject_access_fulfil(reference=case.reference, report="x", by_user_id=None)


def _extend(case, cast):
    subject_access_extend(
        reference=case.reference, due_on=timezone.localdate(case.due_at) + timedelta(days=7), reason="complex"
    )


def _withdraw(case, cast):
    subject_access_withdraw(reference=case.reference, note="changed their mind")


def at(status: str, cast) -> SubjectAccessRequest:
    case = received()
    if status in (Status.IDENTITY_VERIFIED, Status.FULFILLED):
        _verify(case, cast)
    if status == Status.FULFILLED:
        _fulfil(case, cast)
    if status == Status.WITHDRAWN:
        _withdraw(case, cast)
    case.refresh_from_db()
    assert case.status == status
    return case


@pytest.mark.parametrize(
    ("status", "step", "message"),
    [
        (Status.RECEIVED, _fulfil, "is received: only a request whose identity is verified is fulfilled."),
        (
            Status.IDENTITY_VERIFIED,
            _verify,
            "is identity verified: only a received request has its identity verified.",
        ),
        (Status.FULFILLED, _verify, "is fulfilled: only a received request has its identity verified."),
        (Status.FULFILLED, _fulfil, "is fulfilled: only a request whose identity is verified is fulfilled."),
        (Status.FULFILLED, _extend, "is fulfilled: only an open request is extended."),
        (Status.FULFILLED, _withdraw, "is fulfilled: only an open request is withdrawn."),
        (Status.WITHDRAWN, _verify, "is withdrawn: only a received request has its identity verified."),
        (Status.WITHDRAWN, _fulfil, "is withdrawn: only a request whose identity is verified is fulfilled."),
        (Status.WITHDRAWN, _extend, "is withdrawn: only an open request is extended."),
        (Status.WITHDRAWN, _withdraw, "is withdrawn: only an open request is withdrawn."),
    ],
)
def test_a_step_the_request_cannot_take_is_refused_and_changes_nothing(cast, status, step, message):
    case = at(status, cast)
    before = state(case)

    with pytest.raises(CaseStepRefused) as refused:
        step(case, cast)

    assert str(refused.value) == f"{case.reference} {message}"
    assert state(case) == before


@pytest.mark.parametrize("status", [Status.RECEIVED, Status.IDENTITY_VERIFIED])
def test_an_open_request_is_withdrawn_with_what_the_person_said(cast, status):
    case = at(status, cast)

    subject_access_withdraw(reference=case.reference, note="No longer needed")

    assert state(case)[0] == Status.WITHDRAWN
    assert (case.withdrawn_note, case.withdrawn_at is not None) == ("No longer needed", True)


def test_refused_steps_on_the_pages_say_why_and_change_nothing(client, cast, ig):
    case = at(Status.FULFILLED, cast)
    before = state(case)
    client.force_login(ig)

    responses = [
        verify(client, case),
        client.post(detail_url(case, "subject-access-fulfil")),
        client.post(detail_url(case, "subject-access-withdraw"), {"note": ""}),
    ]

    for response in responses:
        assert response.status_code == 303
        assert response["Location"] == detail_url(case)
    page = client.get(detail_url(case)).content.decode()
    assert "is fulfilled: only a received request has its identity verified." in page
    assert state(case) == before
    assert not AccessEvent.objects.exists()


# Extensions.


def test_an_extension_moves_the_due_date_later_at_the_same_time_of_day_with_its_reason(cast):
    case = received(received_at=datetime(2026, 1, 31, 9, tzinfo=UTC))

    subject_access_extend(
        reference=case.reference, due_on=date(2026, 4, 10), reason="  Records from 3 partners "
    )

    case.refresh_from_db()
    assert case.due_at == timezone.make_aware(
        datetime.combine(date(2026, 4, 10), timezone.localtime(datetime(2026, 2, 28, 9, tzinfo=UTC)).time())
    )
    assert case.extension_reason == "Records from 3 partners"


@pytest.mark.parametrize(
    ("due_on", "reason", "message"),
    [
        (
            date(2026, 2, 28),
            "complex",
            "An extension moves the due date later: {ref} is due 28 February 2026 already.",
        ),
        (
            date(2026, 2, 20),
            "complex",
            "An extension moves the due date later: {ref} is due 28 February 2026 already.",
        ),
        (
            date(2026, 5, 1),
            "complex",
            "The law allows two further months at most: {ref} can be due no later than 30 April 2026.",
        ),
        (date(2026, 3, 20), "  ", "Say why the request needs longer."),
    ],
)
def test_an_extension_earlier_too_long_or_without_a_reason_is_refused(cast, due_on, reason, message):
    case = received(received_at=datetime(2026, 1, 30, 9, tzinfo=UTC))
    before = state(case)

    with pytest.raises(CaseStepRefused) as refused:
        subject_access_extend(reference=case.reference, due_on=due_on, reason=reason)

    assert str(refused.value) == message.format(ref=case.reference)
    assert state(case) == before


def test_the_team_extends_a_request_on_its_page(client, cast, ig):
    case = received()
    client.force_login(ig)
    later = timezone.localdate(case.due_at) + timedelta(days=14)

    response = client.post(
        detail_url(case, "subject-access-extend"), {"due_on": later.isoformat(), "reason": "Several partners"}
    )
    earlier = client.post(
        detail_url(case, "subject-access-extend"), {"due_on": timezone.localdate().isoformat(), "reason": "x"}
    )

    assert response.status_code == 303
    case.refresh_from_db()
    assert timezone.localdate(case.due_at) == later
    assert "An extension moves the due date later" in earlier.content.decode()
    assert timezone.localdate(case.due_at) == later


# Fulfilment: the patient's access report.


def patient_a_history(cast) -> None:
    """Accesses to patient A, allowed and denied, and accesses to other patients around them."""
    for user, patient in [
        (cast.gp_ada, cast.patient_a),
        (cast.gp_ben, cast.patient_a),
        (cast.gp_ada, cast.patient_sensitive),
        (cast.gp_ben, cast.patient_b),
        (cast.ed_cara, cast.patient_a),
    ]:
        browser = Client()
        browser.force_login(user)
        browser.post(reverse("records:patient-search"), {"nhs_number": patient.nhs_number})
        browser.get(reverse("records:patient-detail", kwargs={"public_id": patient.public_id}))


def test_fulfilling_gives_a_csv_of_exactly_the_patients_accesses_allowed_and_denied(client, cast, ig):
    patient_a_history(cast)
    case = received()
    client.force_login(ig)
    verify(client, case)

    response = client.post(detail_url(case, "subject-access-fulfil"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="{case.reference}-access-report.csv"'
    rows = rows_of(response.content.decode())
    expected = AccessEvent.objects.filter(patient_id=cast.patient_a.pk).order_by("occurred_at", "id")
    assert [(row[1], row[4], row[6]) for row in rows] == [
        (event.username, event.get_action_display(), event.get_outcome_display()) for event in expected
    ]
    assert rows[0] == [
        expected[0].occurred_at.astimezone(UTC).isoformat(timespec="seconds"),
        "gp.ada",
        "Clinical practitioner (R8000)",
        "Riverside Surgery (D81001)",
        "Search",
        "Direct care",
        "Allowed",
        expected[0].basis,
    ]
    outcomes = {row[6] for row in rows}
    assert {"Allowed", "Denied"} <= outcomes
    assert {row[1] for row in rows} == {"gp.ada", "gp.ben", "ed.cara", "privacy.fay"}
    others = AccessEvent.objects.exclude(patient_id=cast.patient_a.pk).count()
    assert others > 0 and len(rows) == expected.count()
    case.refresh_from_db()
    assert (case.status, case.fulfilled_by, case.report) == (Status.FULFILLED, ig, response.content.decode())


def test_generating_the_report_is_audited_and_is_in_the_report(client, cast, ig):
    case = received()
    client.force_login(ig)
    verify(client, case)

    rows = rows_of(client.post(detail_url(case, "subject-access-fulfil")).content.decode())

    export = AccessEvent.objects.get(action=AccessEvent.Action.EXPORT)
    assert (export.purpose, export.outcome, export.patient_id) == (
        "patients-rights",
        "allowed",
        cast.patient_a.pk,
    )
    assert (export.username, export.basis) == ("privacy.fay", f"subject access request {case.reference}")
    assert [row[4] for row in rows] == ["Match a request to a patient", "Export"]
    assert rows[-1][5] == "A patient's objection or access request"


def test_the_report_is_kept_as_sent_and_each_download_is_audited(client, cast, ig):
    case = received()
    client.force_login(ig)
    verify(client, case)
    sent = client.post(detail_url(case, "subject-access-fulfil")).content.decode()
    patient_a_history(cast)

    again = client.get(detail_url(case, "subject-access-report"))

    assert again.status_code == 200
    assert again.content.decode() == sent
    exports = AccessEvent.objects.filter(action=AccessEvent.Action.EXPORT, patient_id=cast.patient_a.pk)
    assert exports.count() == 2
    assert exports.first().reason == "access report as sent, downloaded again"


def test_a_report_before_fulfilment_is_not_found(client, cast, ig):
    case = received()
    client.force_login(ig)

    assert client.get(detail_url(case, "subject-access-report")).status_code == 404
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id) == ("export", "not-found", None)


def test_the_report_includes_a_merged_records_accesses_and_defuses_formulas(client, cast, ig):
    old = Patient.objects.create(nhs_number="9449305552", birth_date=date(1950, 3, 14))
    sneaky = make_user("=cmd|calc", cast.practice_a, "R8000")
    browser = Client()
    browser.force_login(sneaky)
    browser.post(reverse("records:patient-search"), {"nhs_number": old.nhs_number})
    Patient.objects.filter(pk=old.pk).update(merged_into=cast.patient_a)
    case = received()
    client.force_login(ig)
    verify(client, case)

    rows = rows_of(client.post(detail_url(case, "subject-access-fulfil")).content.decode())

    assert rows[0][1] == "'=cmd|calc"
    assert rows[0][6] == "Denied"


# The register and a request's page.


def test_the_register_lists_open_requests_first_with_due_dates_and_marks_the_overdue(client, cast, ig):
    now = timezone.now()
    overdue = received(received_at=now - timedelta(days=40), requester_name="Overdue Person")
    due_soon = received(received_at=now - timedelta(days=20), requester_name="Due Soon")
    closed = at(Status.FULFILLED, cast)
    old_fulfilled = received(received_at=now - timedelta(days=90), requester_name="Old Fulfilled")
    SubjectAccessRequest.objects.filter(pk=old_fulfilled.pk).update(status=Status.FULFILLED)
    client.force_login(ig)

    response = client.get(reverse("records:subject-access-list"))

    text = response.content.decode()
    positions = [text.index(case.reference) for case in (overdue, due_soon, closed, old_fulfilled)]
    assert positions == sorted(positions)
    overdue_card = text[positions[0] : positions[1]]
    assert "Overdue" in overdue_card
    assert "Overdue" not in text[positions[1] :]
    assert timezone.localtime(overdue.due_at).strftime("%-d %b %Y") in overdue_card
    assert not AccessEvent.objects.exists()


def test_the_register_and_a_request_page_take_a_fixed_number_of_queries(
    client, cast, ig, django_assert_num_queries
):
    client.force_login(ig)
    for _ in range(3):
        case = received()
        verify(client, case)
    client.get(reverse("records:subject-access-list"))

    # Session, user, the session's second-factor device, the permission, the count and the page; the page frame's
    # role, grants and IG-team link.
    with django_assert_num_queries(9):
        assert client.get(reverse("records:subject-access-list")).status_code == 200
    # Session, user, the session's second-factor device, the permission, the request with its people, its history
    # with actors, the usernames the history names; the page frame's four.
    with django_assert_num_queries(10):
        assert client.get(detail_url(case)).status_code == 200


def test_the_request_page_shows_its_change_history_with_who_did_what(client, cast, ig):
    client.force_login(ig)
    client.post(reverse("records:subject-access-new"), REQUEST)
    case = SubjectAccessRequest.objects.get()
    verify(client, case)
    later = timezone.localdate(case.due_at) + timedelta(days=7)
    client.post(
        detail_url(case, "subject-access-extend"), {"due_on": later.isoformat(), "reason": "Many partners"}
    )
    client.post(detail_url(case, "subject-access-fulfil"))

    response = client.get(detail_url(case))

    text = response.content.decode()
    history = text[text.index('id="history-heading"') :]
    assert history.count("by privacy.fay") == 4
    assert "Status: Received → Identity verified" in history
    assert "Patient: — → matched to a patient" in history
    assert "Extension reason: — → Many partners" in history
    assert "Status: Identity verified → Fulfilled" in history
    assert "Report:" not in history  # the report is kept once, on the request, not again in its history
    assert "Identity checked by: — → privacy.fay" in history
    # The NHS number as verified is the case's own; nothing else about the patient is read.
    for value in ("Alice", "Ashby", "ASHBY", "Mill Road", str(cast.patient_a.public_id)):
        assert value not in text


# Only the IG team.


IG_PAGES = [
    ("get", "subject-access-list", False, {}),
    ("get", "subject-access-new", False, {}),
    ("post", "subject-access-new", False, REQUEST),
    ("get", "subject-access-detail", True, {}),
    ("post", "subject-access-verify", True, {"nhs_number": "9990000018", "birth_date": "1950-03-14"}),
    ("post", "subject-access-extend", True, {"due_on": "2099-01-01", "reason": "complex"}),
    ("post", "subject-access-fulfil", True, {}),
    ("get", "subject-access-report", True, {}),
    ("post", "subject-access-withdraw", True, {"note": "done"}),
]


@pytest.mark.parametrize("who", ["gp_ada", "admin_gus", "privacy_fay"])
def test_no_one_outside_the_ig_team_reaches_a_page_and_nothing_changes(client, cast, who):
    # privacy.fay is a privacy officer, but not in the IG team until she is given its permission.
    case = received()
    verified_case = at(Status.IDENTITY_VERIFIED, cast)
    fulfilled = at(Status.FULFILLED, cast)
    cases = {case.pk: state(case), verified_case.pk: state(verified_case), fulfilled.pk: state(fulfilled)}
    client.force_login(getattr(cast, who))

    for method, name, by_reference, data in IG_PAGES:
        for target in (case, verified_case, fulfilled) if by_reference else (None,):
            url = detail_url(target, name) if target else reverse(f"records:{name}")
            response = getattr(client, method)(url, data)
            assert response.status_code == 404, (name, target)
            text = response.content.decode()
            assert "Jo Bloggs" not in text
            for value in PATIENT_A:
                assert value not in text
            if target is not None:
                assert target.reference not in text

    assert SubjectAccessRequest.objects.count() == 3
    for pk, before in cases.items():
        assert state(SubjectAccessRequest.objects.get(pk=pk)) == before
    # The attempts to match, generate and download are in the trail, refused and naming no patient.
    refused = AccessEvent.objects.all()
    assert {event.action for event in refused} == {"match-patient", "export"}
    assert {(event.outcome, event.patient_id, event.purpose) for event in refused} == {
        ("denied", None, "patients-rights")
    }
    assert len(refused) == 3 + 3 + 3


def test_strangers_are_sent_to_log_in(client, cast):
    case = received()
    for method, name, by_reference, data in IG_PAGES:
        url = detail_url(case, name) if by_reference else reverse(f"records:{name}")
        response = getattr(client, method)(url, data)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert not AccessEvent.objects.exists()


def test_an_unknown_reference_is_not_found(client, cast, ig):
    client.force_login(ig)
    missing = SubjectAccessRequest(reference="SAR-AAAAAAAA")

    assert client.get(detail_url(missing)).status_code == 404
    assert verify(client, missing).status_code == 404
    assert client.post(detail_url(missing, "subject-access-fulfil")).status_code == 404
    assert client.post(detail_url(missing, "subject-access-withdraw"), {"note": ""}).status_code == 404
    assert {(event.outcome, event.patient_id) for event in AccessEvent.objects.all()} == {("not-found", None)}


# Deadlines and their alerts.


def test_overdue_means_open_and_past_its_due_date_when_asked(cast):
    now = timezone.now()
    overdue = received(received_at=now - timedelta(days=40))
    verified_overdue = received(received_at=now - timedelta(days=40))
    _verify(verified_overdue, cast)
    not_yet = received(received_at=now - timedelta(days=20))
    fulfilled_late = received(received_at=now - timedelta(days=40))
    _verify(fulfilled_late, cast)
    _fulfil(fulfilled_late, cast)
    withdrawn_late = received(received_at=now - timedelta(days=40))
    _withdraw(withdrawn_late, cast)
    extended = received(received_at=now - timedelta(days=40))
    SubjectAccessRequest.objects.filter(pk=extended.pk).update(due_at=now + timedelta(days=5))

    assert set(subject_access_overdue()) == {overdue, verified_overdue}
    assert set(subject_access_overdue(now + timedelta(days=12))) == {
        overdue,
        verified_overdue,
        not_yet,
        extended,
    }
    assert set(subject_access_overdue(now - timedelta(days=40))) == set()


def objection(received_at: datetime, **extra) -> Objection:
    return objection_receive(
        channel=Objection.Channel.PHONE,
        given_name="Brian",
        family_name="Barton",
        birth_date=date(1962, 7, 1),
        nhs_number="9990000026",
        contact_by=Objection.ContactBy.PHONE,
        contact_detail=f"01223 {received_at:%H%M%S%f}",
        scope_whole_record=True,
        received_at=received_at,
        **extra,
    )[0]


def test_the_beat_task_raises_one_alert_per_overdue_case_however_often_it_runs(cast):
    now = timezone.now()
    late_request = received(received_at=now - timedelta(days=45))
    late_verified = at(Status.IDENTITY_VERIFIED, cast)
    SubjectAccessRequest.objects.filter(pk=late_verified.pk).update(
        received_at=now - timedelta(days=50), due_at=now - timedelta(days=19)
    )
    received(received_at=now - timedelta(days=10))
    late_objections = {
        status: objection(now - timedelta(days=60, minutes=n))
        for n, status in enumerate(
            [
                Objection.Status.RECEIVED,
                Objection.Status.IDENTITY_VERIFIED,
                Objection.Status.UNDER_REVIEW,
                Objection.Status.UPHELD,
                Objection.Status.NOT_UPHELD,
                Objection.Status.NOT_FOUND,
                Objection.Status.WITHDRAWN,
            ]
        )
    }
    for status, case in late_objections.items():
        Objection.objects.filter(pk=case.pk).update(status=status)
    objection(now - timedelta(days=3))
    expected = {
        late_request.reference,
        late_verified.reference,
        *(late_objections[status].reference for status in Objection.OPEN),
    }

    counts = [case_overdue_alerts_raise_task.apply().get() for _ in range(3)]

    assert counts == [5, 0, 0]
    alerts = Alert.objects.all()
    assert {alert.reference for alert in alerts} == expected
    assert {(alert.kind, alert.patient_id, alert.user_id, alert.event_id) for alert in alerts} == {
        ("case-overdue", None, None, None)
    }
    for alert in alerts:
        for value in (*PATIENT_A, "Brian", "Barton", "9990000026"):
            assert value not in alert.reason
    request_alert = Alert.objects.get(reference=late_request.reference)
    due = timezone.localtime(late_request.due_at)
    assert request_alert.reason == (
        f"Subject access request {late_request.reference} was due on {due:%-d %B %Y} and is still received."
    )
    assert Alert.objects.get(
        reference=late_objections[Objection.Status.UNDER_REVIEW].reference
    ).reason.startswith("Objection ")


def test_a_case_that_falls_overdue_later_is_alerted_on_a_later_run(cast):
    now = timezone.now()
    case = received(received_at=now - timedelta(days=20))

    assert case_overdue_alerts_raise(now) == []
    assert case_overdue_alerts_raise(now + timedelta(days=15)) == [case.reference]
    assert case_overdue_alerts_raise(now + timedelta(days=16)) == []
    assert Alert.objects.get().raised_at == now + timedelta(days=15)


def test_the_overdue_task_is_on_the_beat_schedule():
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "consent.case_overdue_alerts_raise_task" in tasks
    assert "consent.case_overdue_alerts_raise_task" in app.tasks


def test_an_overdue_alert_reads_as_raised_by_sharedcare_and_lists_no_ones_events(client, cast):
    late = received(received_at=timezone.now() - timedelta(days=45))
    AccessEvent.objects.create(
        action=AccessEvent.Action.SEARCH, outcome=AccessEvent.Outcome.DENIED, query="x"
    )
    case_overdue_alerts_raise_task.apply()
    alert = Alert.objects.get(kind=Alert.Kind.CASE_OVERDUE)
    client.force_login(cast.privacy_fay)

    listing = client.get(reverse("records:alert-list")).content.decode()
    detail = client.get(reverse("records:alert-detail", kwargs={"alert_id": alert.pk})).content.decode()

    assert alert.reference == late.reference
    for page in (listing, detail):
        assert "Raised by sharedcare (deadline check)" in page
        assert ", at" not in page
    assert "did with this patient" not in detail and "Search" not in detail
    assert reverse("records:subject-access-detail", kwargs={"reference": late.reference}) in detail
