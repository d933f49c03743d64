"""Every URL in the project is accounted for: public, staff-only back office, or the portal's own list."""

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent
from records.models import IngestRun, QuarantinedRecord
from tests.builders import PORTAL_URLS, url_names

# Reachable without signing in, and none shows patient data.
PUBLIC = {"login", "public:objection-form", "public:objection-status"}
# The public form's later steps: without the visitor's own answers (or reference) in their session, back to the form.
PUBLIC_STEPS = {"public:objection-check", "public:objection-sent"}
# Signed-in account pages that show no patient data.
ACCOUNT = {"logout", "password_change", "password_change_done"}
# The second factor's code and enrolment pages: the signed-in user's own device, never a patient (tests/test_mfa.py).
SECOND_FACTOR = {"mfa-verify", "mfa-enrol"}
# The session-timeout warning's time left and stay signed in: the signed-in user's own session, never a patient
# (tests/test_sessions.py).
SESSION = {"session-status", "session-keep-alive"}
# The partner API: a partner key only (tests/test_push_api.py), and no patient data in any answer.
PARTNER_API = {"api:batch-push", "api:batch-detail"}
# Sign-in through NHS Care Identity: 404 unless configured, then no patient data (tests/test_oidc_login.py).
SIGN_IN_PROVIDER = {"oidc:sign-in", "oidc:callback"}


def _all_names() -> set[str]:
    from django.urls import get_resolver

    return url_names(get_resolver().url_patterns)


# Back-office views that can show patient data, and how each is kept to the rules. A new admin URL fails
# `test_every_url_is_public_account_back_office_or_portal` until someone puts it here or in BACK_OFFICE_STAFF_ONLY.
FEED_SUPPORT_DOOR = (
    "door: records.access.feed_support_open, masked until an audited reveal (tests/test_back_office_door.py)"
)
BACK_OFFICE_PATIENT_VIEWS = {
    "admin:records_quarantinedrecord_changelist": (
        "door: only supported partners' records; the NHS-number search goes through feed_support_search"
    ),
    "admin:records_quarantinedrecord_change": FEED_SUPPORT_DOOR,
    "admin:records_quarantinedrecord_reveal": FEED_SUPPORT_DOOR,
    # One record's replay, fix (a reveal of its payload) and discard, from its page.
    "admin:records_quarantinedrecord_replay": FEED_SUPPORT_DOOR,
    "admin:records_quarantinedrecord_fix": FEED_SUPPORT_DOOR,
    "admin:records_quarantinedrecord_discard": FEED_SUPPORT_DOOR,
    "admin:records_ingestrun_change": FEED_SUPPORT_DOOR,
    "admin:records_ingestrun_reveal": FEED_SUPPORT_DOOR,
    "admin:records_pushedbatch_change": FEED_SUPPORT_DOOR,
    "admin:records_pushedbatch_reveal": FEED_SUPPORT_DOOR,
    # Entries about models that name patients are left out (records/backoffice/change_log.py).
    "admin:auditlog_logentry_changelist": "change log of staff-only models",
    "admin:auditlog_logentry_change": "change log of staff-only models",
    # The access trail names patients by id and searches by NHS number; reading it is itself audited (audit/admin.py).
    "admin:audit_accessevent_changelist": "audited read of the access trail",
    "admin:audit_accessevent_change": "audited read of the access trail",
}
# Back-office views for staff that show no patient data: partners, feeds and their monitor, keys, users and roles,
# and run or batch lists whose columns are counts; the add, delete and history pages of read-only records.
BACK_OFFICE_STAFF_ONLY = {
    "admin:index",
    "admin:app_list",
    "admin:login",
    "admin:logout",
    "admin:password_change",
    "admin:password_change_done",
    "admin:jsi18n",
    "admin:autocomplete",
    "admin:view_on_site",
    "admin:audit_accessevent_add",
    "admin:audit_accessevent_delete",
    "admin:audit_accessevent_history",
    "admin:auditlog_logentry_add",
    "admin:auditlog_logentry_delete",
    "admin:auditlog_logentry_history",
    "admin:auth_group_add",
    "admin:auth_group_change",
    "admin:auth_group_changelist",
    "admin:auth_group_delete",
    "admin:auth_group_history",
    "admin:auth_user_add",
    "admin:auth_user_change",
    "admin:auth_user_changelist",
    "admin:auth_user_delete",
    "admin:auth_user_history",
    "admin:auth_user_password_change",
    # The roles table and care teams: who opens what, and who is in which team; no patient.
    "admin:consent_role_add",
    "admin:consent_role_change",
    "admin:consent_role_changelist",
    "admin:consent_role_delete",
    "admin:consent_role_history",
    "admin:consent_careteam_add",
    "admin:consent_careteam_change",
    "admin:consent_careteam_changelist",
    "admin:consent_careteam_delete",
    "admin:consent_careteam_history",
    "admin:consent_sensitivecode_add",
    "admin:consent_sensitivecode_change",
    "admin:consent_sensitivecode_changelist",
    "admin:consent_sensitivecode_delete",
    "admin:consent_sensitivecode_history",
    "admin:consent_conceptisa_add",
    "admin:consent_conceptisa_change",
    "admin:consent_conceptisa_changelist",
    "admin:consent_conceptisa_delete",
    "admin:consent_conceptisa_history",
    "admin:records_feed_add",
    "admin:records_feed_change",
    "admin:records_feed_changelist",
    "admin:records_feed_delete",
    "admin:records_feed_history",
    "admin:records_feed_monitor",
    # A feed's Run now and Pause, and its CSV mapping (a sample's preview is the uploader's own file, not stored).
    "admin:records_feed_run_now",
    "admin:records_feed_pause",
    "admin:records_feed_csv_mapping",
    "admin:records_ingestrun_add",
    "admin:records_ingestrun_changelist",
    "admin:records_ingestrun_delete",
    "admin:records_ingestrun_history",
    "admin:records_organisation_add",
    "admin:records_organisation_change",
    "admin:records_organisation_changelist",
    "admin:records_organisation_delete",
    "admin:records_organisation_history",
    "admin:records_partnercredential_add",
    "admin:records_partnercredential_change",
    "admin:records_partnercredential_changelist",
    "admin:records_partnercredential_delete",
    "admin:records_partnercredential_history",
    # Attempts hold no text from the partner: who pushed, when, how big, what answer.
    "admin:records_pushattempt_add",
    "admin:records_pushattempt_change",
    "admin:records_pushattempt_changelist",
    "admin:records_pushattempt_delete",
    "admin:records_pushattempt_history",
    "admin:records_pushedbatch_add",
    "admin:records_pushedbatch_changelist",
    "admin:records_pushedbatch_delete",
    "admin:records_pushedbatch_history",
    "admin:records_quarantinedrecord_add",
    "admin:records_quarantinedrecord_delete",
    "admin:records_quarantinedrecord_history",
    # Sign-in attempts, lockouts and the failure log (django-axes): usernames and addresses, no patient.
    "admin:axes_accessattempt_add",
    "admin:axes_accessattempt_change",
    "admin:axes_accessattempt_changelist",
    "admin:axes_accessattempt_delete",
    "admin:axes_accessattempt_history",
    "admin:axes_accessfailurelog_add",
    "admin:axes_accessfailurelog_change",
    "admin:axes_accessfailurelog_changelist",
    "admin:axes_accessfailurelog_delete",
    "admin:axes_accessfailurelog_history",
    "admin:axes_accesslog_add",
    "admin:axes_accesslog_change",
    "admin:axes_accesslog_changelist",
    "admin:axes_accesslog_delete",
    "admin:axes_accesslog_history",
}


def test_every_url_is_public_account_back_office_or_portal():
    unexplained = {
        name
        for name in _all_names()
        if name
        not in PUBLIC | PUBLIC_STEPS | ACCOUNT | SECOND_FACTOR | SESSION | PARTNER_API | SIGN_IN_PROVIDER
        and name not in PORTAL_URLS
        and name not in BACK_OFFICE_PATIENT_VIEWS
        and name not in BACK_OFFICE_STAFF_ONLY
    }
    assert unexplained == set()


def test_the_back_office_lists_name_only_urls_that_exist_and_each_once():
    assert set(BACK_OFFICE_PATIENT_VIEWS).isdisjoint(BACK_OFFICE_STAFF_ONLY)
    assert set(BACK_OFFICE_PATIENT_VIEWS) | BACK_OFFICE_STAFF_ONLY <= _all_names()


@pytest.mark.parametrize(
    "name",
    sorted(name for name in BACK_OFFICE_STAFF_ONLY if name.endswith(("_changelist", "monitor", "index"))),
)
def test_staff_only_back_office_lists_show_no_patient_and_audit_nothing(client, cast, name):
    # What a partner sent about a patient, quoted the way real feeds quote it: a failed run's error text and a
    # quarantined record naming the patient. None of it may surface on a staff-only list.
    patient = cast.patient_a
    quoted = f"Patient {patient.nhs_number} {patient.family_name}: birth date does not match"
    run = IngestRun.objects.create(
        feed=cast.gp_a_feed, status=IngestRun.Status.FAILED, finished_at=timezone.now(), error=quoted
    )
    QuarantinedRecord.objects.create(
        feed=cast.gp_a_feed,
        ingest_run=run,
        reason=QuarantinedRecord.Reason.DEMOGRAPHIC_MISMATCH,
        detail=quoted,
        raw_payload=quoted,
        payload_hash="0" * 64,
        nhs_number=patient.nhs_number,
    )
    client.force_login(cast.admin_gus)

    response = client.get(reverse(name))

    assert response.status_code == 200
    body = response.content.decode()
    for patient in (cast.patient_a, cast.patient_b, cast.patient_sensitive):
        assert patient.nhs_number not in body and patient.family_name not in body
    assert not AccessEvent.objects.exists()


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_pages_open_without_signing_in(client, db, name):
    assert client.get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", sorted(PUBLIC_STEPS))
def test_the_public_forms_later_steps_send_a_visitor_without_answers_back_to_the_form(client, name):
    response = client.get(reverse(name))
    assert (response.status_code, response["Location"]) == (302, reverse("public:objection-form"))


@pytest.mark.parametrize("name", ["password_change", "password_change_done"])
def test_account_pages_need_a_signed_in_user(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_back_office_turns_away_clinicians(client, cast):
    client.force_login(cast.gp_ada)
    for name in (
        "admin:index",
        "admin:records_quarantinedrecord_changelist",
        "admin:audit_accessevent_changelist",
    ):
        response = client.get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("admin:login"))
    assert not AccessEvent.objects.exists()
