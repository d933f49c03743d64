"""The access rules as one matrix: who, which patient, which action → allowed, sections, basis, audit row."""

import re
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent
from consent.models import LegitimateRelationship
from consent.policy import CLINICAL_ACTIONS, Action, decide, visible_patients
from records.access import PatientNotFound, get_patient_for_user, patient_search_for_user
from records.disclosure import Shown
from records.models import Patient
from records.sections import CLINICAL_SECTIONS, DEMOGRAPHIC_SECTIONS
from tests.builders import SOCIAL_CARE_CLINICAL_SECTIONS

ALL = DEMOGRAPHIC_SECTIONS | CLINICAL_SECTIONS
SOCIAL = DEMOGRAPHIC_SECTIONS | SOCIAL_CARE_CLINICAL_SECTIONS

MATRIX = [
    # user, patient, allowed, sections, basis prefix
    ("gp_ada", "patient_a", True, ALL, "registered-practice"),
    ("gp_ada", "patient_b", False, None, None),
    ("gp_ben", "patient_a", False, None, None),
    ("gp_ben", "patient_b", True, ALL, "registered-practice"),
    ("ed_cara", "patient_a", True, ALL, "care-event"),
    ("ed_cara", "patient_b", False, None, None),
    ("reception_dan", "patient_a", True, DEMOGRAPHIC_SECTIONS, "registered-practice"),
    ("reception_dan", "patient_b", False, None, None),
    ("social_eli", "patient_a", True, SOCIAL, "care-event"),
    ("social_eli", "patient_b", False, None, None),
    ("privacy_fay", "patient_a", False, None, None),
    ("admin_gus", "patient_a", False, None, None),
    ("admin_gus", "patient_b", False, None, None),
]


def _open(user, patient):
    return get_patient_for_user(
        user=user, public_id=patient.public_id, request=None, build=lambda p, d: (None, Shown(sections=["x"]))
    )


@pytest.mark.parametrize(("who", "whom", "allowed", "sections", "basis"), MATRIX)
@pytest.mark.parametrize("action", [Action.SEARCH, Action.VIEW_RECORD])
def test_access_matrix(cast, who, whom, allowed, sections, basis, action):
    user, patient = getattr(cast, who), getattr(cast, whom)
    decision = decide(user, patient, action)
    assert decision.allowed is allowed
    assert (patient in visible_patients(user, action)) is allowed
    if allowed:
        assert decision.sections == sections
        assert decision.basis.startswith(basis)
        assert decision.withholds_sensitive
    else:
        assert decision.sections == frozenset()
        assert decision.why_not


@pytest.mark.parametrize(("who", "whom", "allowed", "sections", "basis"), MATRIX)
def test_door_audits_every_view_allowed_or_denied(cast, who, whom, allowed, sections, basis):
    user, patient = getattr(cast, who), getattr(cast, whom)
    before = AccessEvent.objects.count()
    if allowed:
        access = _open(user, patient)
        assert access.patient == patient
    else:
        with pytest.raises(PatientNotFound):
            _open(user, patient)
    assert AccessEvent.objects.count() == before + 1
    event = AccessEvent.objects.order_by("-id").first()
    assert event.patient_id == patient.pk
    assert event.user_id == user.pk
    assert event.action == AccessEvent.Action.VIEW_RECORD
    assert event.outcome == (AccessEvent.Outcome.ALLOWED if allowed else AccessEvent.Outcome.DENIED)
    assert event.sections_shown == (["x"] if allowed else [])
    assert event.basis.startswith(basis) if allowed else event.basis == ""


def test_every_action_decide_knows_is_one_the_audit_trail_names():
    assert set(AccessEvent.Action) >= CLINICAL_ACTIONS
    assert CLINICAL_ACTIONS


# Every action and purpose the audit trail names, so the actions decide allows and the ones it refuses are both
# compared with the list.
@pytest.mark.parametrize("action", list(AccessEvent.Action))
@pytest.mark.parametrize("purpose", list(AccessEvent.Purpose))
def test_decide_and_visible_patients_never_disagree(cast, action, purpose):
    users = [cast.gp_ada, cast.gp_ben, cast.ed_cara, cast.reception_dan, cast.social_eli, cast.privacy_fay]
    users.append(cast.admin_gus)
    for user in users:
        visible = set(visible_patients(user, action, purpose))
        for patient in Patient.objects.all():
            assert decide(user, patient, action, purpose).allowed == (patient in visible), (user, patient)


def test_expired_relationship_denies_at_once(cast):
    LegitimateRelationship.objects.filter(content_object=cast.patient_a, group=cast.cuh.group).update(
        valid_until=timezone.now() - timedelta(seconds=1)
    )
    assert not decide(cast.ed_cara, cast.patient_a, Action.VIEW_RECORD).allowed
    assert cast.patient_a not in visible_patients(cast.ed_cara)


def test_relationship_not_yet_started_denies(cast):
    LegitimateRelationship.objects.filter(content_object=cast.patient_a, group=cast.practice_a.group).update(
        valid_from=timezone.now() + timedelta(hours=1)
    )
    assert not decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).allowed


def test_inactive_user_is_denied(cast):
    cast.gp_ada.is_active = False
    cast.gp_ada.save()
    assert not decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).allowed
    assert not visible_patients(cast.gp_ada).exists()


def test_user_of_inactive_organisation_is_denied(cast):
    cast.practice_a.is_active = False
    cast.practice_a.save()
    cast.gp_ada.refresh_from_db()
    assert not decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).allowed
    assert not visible_patients(cast.gp_ada).exists()


def test_superuser_with_clinical_role_still_needs_a_relationship(cast):
    cast.gp_ben.is_superuser = True
    cast.gp_ben.save()
    assert not decide(cast.gp_ben, cast.patient_a, Action.VIEW_RECORD).allowed


def test_unknown_action_and_purpose_are_denied(cast):
    assert not decide(cast.gp_ada, cast.patient_a, "export").allowed
    assert not decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD, purpose="research").allowed


MISSING_ID = "00000000-0000-0000-0000-000000000000"


def test_denied_and_missing_look_the_same_to_the_caller(client, cast):
    with pytest.raises(PatientNotFound) as denied:
        _open(cast.gp_ben, cast.patient_a)
    with pytest.raises(PatientNotFound) as missing:
        get_patient_for_user(
            user=cast.gp_ben,
            public_id=MISSING_ID,
            request=None,
            build=lambda p, d: (None, Shown()),
        )
    assert type(denied.value) is type(missing.value) is PatientNotFound
    assert (denied.value.args, vars(denied.value)) == (missing.value.args, vars(missing.value)) == ((), {})
    client.force_login(cast.gp_ben)
    pages = {
        str(public_id): client.get(reverse("records:patient-detail", kwargs={"public_id": public_id}))
        for public_id in (cast.patient_a.public_id, MISSING_ID)
    }
    assert {page.status_code for page in pages.values()} == {404}
    # Only what differs on every page may differ: the id asked for, the request id, the per-response CSRF mask, the
    # session's seconds left.
    bodies = {
        re.sub(
            r'(csrfmiddlewaretoken" value="|class="request-id">|data-csrf-token="|data-idle-seconds="'
            r'|data-lifetime-seconds=")[^"<]+',
            r"\1<varies>",
            page.content.decode().replace(public_id, "<id>"),
        )
        for public_id, page in pages.items()
    }
    assert len(bodies) == 1
    assert "<varies>" in bodies.pop()
    assert AccessEvent.objects.filter(outcome=AccessEvent.Outcome.NOT_FOUND, patient_id=None).exists()


def test_search_audits_hit_miss_and_denial(cast):
    assert (
        patient_search_for_user(user=cast.gp_ada, nhs_number_text="999 000 0018", request=None)
        == cast.patient_a
    )
    with pytest.raises(PatientNotFound):
        patient_search_for_user(user=cast.gp_ada, nhs_number_text="9000000009", request=None)
    with pytest.raises(PatientNotFound):
        patient_search_for_user(user=cast.gp_ben, nhs_number_text="9990000018", request=None)
    outcomes = list(
        AccessEvent.objects.filter(action=AccessEvent.Action.SEARCH)
        .order_by("id")
        .values_list("outcome", "query")
    )
    assert outcomes == [("allowed", "9990000018"), ("not-found", "9000000009"), ("denied", "9990000018")]


def test_access_fails_when_the_audit_row_cannot_be_written(cast):
    built = []
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit store down'; END $$"
            " LANGUAGE plpgsql;"
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_accessevent FOR EACH ROW EXECUTE FUNCTION refuse_audit();"
        )
    with pytest.raises(DatabaseError, match="audit store down"):
        get_patient_for_user(
            user=cast.gp_ada,
            public_id=cast.patient_a.public_id,
            request=None,
            build=lambda p, d: (built.append(p) or "record", Shown()),
        )
    # The page was built, but nothing of it reached the caller and no access went unrecorded.
    assert built == [cast.patient_a]
    assert not AccessEvent.objects.exists()


def test_merged_record_opens_as_its_survivor_and_is_never_listed(cast):
    retired = Patient.objects.create(
        nhs_number="9449305552",
        family_name="Ashby",
        registered_practice=cast.practice_a,
        merged_into=cast.patient_a,
    )
    from consent.services import relationships_refresh

    relationships_refresh([retired.pk])
    assert not decide(cast.gp_ada, retired, Action.VIEW_RECORD).allowed
    assert retired not in visible_patients(cast.gp_ada)
    access = _open(cast.gp_ada, retired)
    assert access.patient == cast.patient_a
    assert (
        patient_search_for_user(user=cast.gp_ada, nhs_number_text="9449305552", request=None)
        == cast.patient_a
    )
    with pytest.raises(PatientNotFound):
        _open(cast.gp_ben, retired)


def test_entries_deleted_at_source_give_no_relationship(cast):
    from consent.services import relationships_refresh

    cast.patient_a.entries.filter(resource_type="Encounter").update(is_deleted_at_source=True)
    relationships_refresh([cast.patient_a.pk])
    assert not decide(cast.ed_cara, cast.patient_a, Action.VIEW_RECORD).allowed
