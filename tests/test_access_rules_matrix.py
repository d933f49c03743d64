"""The access rules as one matrix, through the door: the role, how the user came to the patient, whether that is
still current (a relationship held by the organisation or a team, on any basis; a self-claim; break-glass, for
safeguarding or another reason), a restricted patient or not, the patient's objection, and the action.

Every case asserts the decision, what the record page then shows (sections, the restricted patient's whereabouts,
sensitive entries: the user's own organisation's shown, another's withheld with the notice; what an objection
withholds, said without saying what), the `AccessEvent` the door wrote, and that `visible_patients` agrees with
`decide`.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.http import QueryDict
from django.test import override_settings
from django.utils import timezone

from audit.models import AccessEvent, Alert
from consent.models import BreakGlassGrant, LegitimateRelationship, Objection, Role, SelfClaimedRelationship
from consent.policy import Action, decide, staff_profile_of, visible_patients
from consent.roles import JobRole
from consent.services import care_team_create, care_team_member_add, staff_profile_add
from records.access import PatientNotFound, RecordWithheld, get_patient_for_user, patient_search_for_user
from records.models import Organisation, Patient
from records.models.patients import ACCESS_RECORD_PERMISSION
from records.portal.selectors import OBJECTION_WITHHELD, SENSITIVE_WITHHELD, record_page_build
from records.sections import CLINICAL_SECTIONS, DEMOGRAPHIC_SECTIONS, Section
from records.services import feed_upsert, organisation_upsert
from tests.builders import FAST_HASHERS, SOCIAL_CARE_CLINICAL_SECTIONS, make_entry, make_user

ALL = DEMOGRAPHIC_SECTIONS | CLINICAL_SECTIONS
SOCIAL = DEMOGRAPHIC_SECTIONS | SOCIAL_CARE_CLINICAL_SECTIONS

# Role → (sections it opens, whether it sees a restricted patient's whereabouts). None: the role opens no record.
ROLES = {
    JobRole.CLINICAL_PRACTITIONER: (ALL, True),
    JobRole.NURSE: (ALL, False),
    JobRole.ADMIN_CLINICAL_SUPPORT: (DEMOGRAPHIC_SECTIONS, False),
    JobRole.SOCIAL_CARE_PRACTITIONER: (SOCIAL, False),
    JobRole.PRIVACY_OFFICER: None,
    "superuser": None,
}

# How the user came to the patient, and the basis an allowed decision names. A relationship is held by the
# user's organisation or by a care team of it (which reaches only its members); each holder with two bases.
ROUTES = {
    "none": None,
    "organisation-care-event": "care-event",
    "organisation-referral": "referral",
    "team-caseload": "caseload",
    "team-referral": "referral",
    "team-not-member": None,
    "self-claim": "self-claim",
    "break-glass": "break-glass",
    "break-glass-safeguarding": "break-glass",
}
ORGANISATION_ROUTES = {"organisation-care-event", "organisation-referral"}
TEAM_ROUTES = {"team-caseload": "caseload", "team-referral": "referral", "team-not-member": "caseload"}
# Each grant route's reference and reason: break-glass for safeguarding is the one that may set an objection aside.
GRANTS = {
    "self-claim": ("SC-MATRIX", SelfClaimedRelationship.Reason.PLANNED_CARE),
    "break-glass": ("BG-MATRIX", BreakGlassGrant.Reason.EMERGENCY),
    "break-glass-safeguarding": ("BG-SAFEGUARD", BreakGlassGrant.Reason.SAFEGUARDING),
}


@dataclass
class World:
    user: object
    patient: Patient
    home: Organisation
    elsewhere: Organisation


@dataclass(frozen=True)
class _Kept:
    """The rows every case shares, built once for the module: their keys, to be read afresh in each test."""

    home: int
    elsewhere: int
    patient: int
    users: dict[str, int]


@pytest.fixture(scope="module")
def kept(django_db_setup, django_db_blocker) -> Iterator[_Kept]:
    """The organisations, feeds, patient and entries, and one user of each role, built once inside a transaction
    the module's tests run within: each test's own transaction is a savepoint of it, rolled back after the test,
    so what a test adds (a relationship, a grant, a team, an objection, the door's events) is gone before the
    next, and the module's rows are gone with the transaction when the module ends."""
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHERS):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            built = _kept_build()
        except BaseException:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            raise
    yield built
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        atomic.__exit__(None, None, None)


def _kept_build() -> _Kept:
    home = organisation_upsert(ods_code="RGT", name="Hospital", kind=Organisation.Kind.ACUTE_TRUST)
    elsewhere = organisation_upsert(ods_code="D81001", name="Surgery", kind=Organisation.Kind.GP_PRACTICE)
    home_feed = feed_upsert(code="hospital", organisation=home, name="EPR", sections=[])
    gp_feed = feed_upsert(code="gp", organisation=elsewhere, name="GP record", sections=[])
    patient = Patient.objects.create(
        nhs_number="9990000018",
        given_name="Alice",
        family_name="Ames",
        address="1 Mill Road, Cambridge",
        postcode="CB1 2AB",
        phone="01223 000001",
        registered_practice=elsewhere,
        is_restricted=False,
    )
    make_entry(patient, gp_feed, Section.PROBLEMS, "Hypertension")
    make_entry(patient, gp_feed, Section.PROBLEMS, "Gonorrhoea at the surgery", is_sensitive=True)
    make_entry(patient, home_feed, Section.PROBLEMS, "Hospital clinic HIV care", is_sensitive=True)
    make_entry(patient, home_feed, Section.ASSESSMENTS, "Needs assessment")
    users = {}
    for number, role in enumerate(ROLES):
        if role == "superuser":
            user = make_user(f"someone-{number}", None, None, is_staff=True, is_superuser=True)
        else:
            user = make_user(f"someone-{number}", home, role)
        users[role] = user.pk
    return _Kept(home=home.pk, elsewhere=elsewhere.pk, patient=patient.pk, users=users)


def _world(kept: _Kept, role: str, route: str, current: bool, restricted: bool) -> World:
    """The case's world: the module's rows read afresh, the patient restricted or not, and the route."""
    organisations = Organisation.objects.select_related("group").in_bulk([kept.home, kept.elsewhere])
    home, elsewhere = organisations[kept.home], organisations[kept.elsewhere]
    patient = Patient.objects.get(pk=kept.patient)
    patient.registered_practice = elsewhere
    if restricted:
        patient.is_restricted = True
        patient.save(update_fields=["is_restricted"])
    user = get_user_model().objects.get(pk=kept.users[role])
    now = timezone.now()
    until = now + timedelta(hours=2) if current else now - timedelta(seconds=1)
    permission = Permission.objects.get(codename=ACCESS_RECORD_PERMISSION, content_type__app_label="records")
    relationship = {
        "content_object": patient,
        "permission": permission,
        "valid_from": now - timedelta(days=1),
        "valid_until": until,
    }
    if route in ORGANISATION_ROUTES:
        LegitimateRelationship.objects.create(group=home.group, basis=ROUTES[route], **relationship)
    elif route in TEAM_ROUTES:
        team = care_team_create(organisation=home, name="Outreach", code="OUT")
        if route != "team-not-member":
            care_team_member_add(team=team, user_id=user.pk)
        LegitimateRelationship.objects.create(group=team.group, basis=TEAM_ROUTES[route], **relationship)
    elif route in GRANTS:
        profile = staff_profile_of(user)
        if profile is not None:
            model = SelfClaimedRelationship if route == "self-claim" else BreakGlassGrant
            model.objects.create(
                user=user,
                content_object=patient,
                permission=permission,
                staff_profile=profile,
                reference=GRANTS[route][0],
                reason_code=GRANTS[route][1],
                reason_text="Seen in clinic",
                valid_from=now - timedelta(hours=1),
                valid_until=until,
            )
    user.refresh_from_db()
    return World(user=user, patient=patient, home=home, elsewhere=elsewhere)


def _expected_allowed(role: str, route: str, current: bool) -> bool:
    return ROLES[role] is not None and ROUTES[route] is not None and current


CASES = [
    pytest.param(
        role,
        route,
        current,
        restricted,
        id=f"{role}-{route}-{'current' if current else 'expired'}-"
        f"{'restricted' if restricted else 'ordinary'}",
    )
    for role in ROLES
    for route in ROUTES
    for current in (True, False)
    for restricted in (False, True)
    # A user with no route has nothing to expire.
    if route != "none" or current
]


@pytest.mark.parametrize(("role", "route", "current", "restricted"), CASES)
def test_record_view_matrix(db, kept, role, route, current, restricted):
    world = _world(kept, role, route, current, restricted)
    allowed = _expected_allowed(role, route, current)

    decision = decide(world.user, world.patient, Action.VIEW_RECORD)

    assert decision.allowed is allowed, decision.why_not
    assert (world.patient in visible_patients(world.user, Action.VIEW_RECORD)) is allowed
    if not allowed:
        assert decision.sections == frozenset()
        assert decision.why_not
        with pytest.raises(PatientNotFound):
            get_patient_for_user(
                user=world.user,
                public_id=world.patient.public_id,
                request=None,
                build=lambda patient, decision: record_page_build(
                    patient, decision, requested_pages=QueryDict()
                ),
            )
        event = AccessEvent.objects.get()
        assert (event.outcome, event.patient_id, event.sections_shown) == ("denied", world.patient.pk, [])
        return

    sections, sees_whereabouts = ROLES[role]
    assert decision.sections == sections
    assert decision.basis_kind == ROUTES[route]
    assert decision.provenance
    access = get_patient_for_user(
        user=world.user,
        public_id=world.patient.public_id,
        request=None,
        build=lambda patient, decision: record_page_build(patient, decision, requested_pages=QueryDict()),
    )
    page = access.content
    event = AccessEvent.objects.get()
    assert (event.outcome, event.patient_id) == ("allowed", world.patient.pk)
    assert event.basis.startswith(f"{ROUTES[route]}:RGT")

    # The restricted patient's whereabouts: shown to B1611 and audited by name, otherwise hidden with a notice.
    whereabouts_hidden = restricted and not sees_whereabouts
    assert page.demographics.is_restricted_hidden is whereabouts_hidden
    assert (page.demographics.address == "") is whereabouts_hidden
    assert ("restricted-demographics" in event.sections_shown) is (restricted and sees_whereabouts)
    assert ("restricted-demographics" in event.withheld) is whereabouts_hidden

    # Sensitive entries: the user's own organisation's are shown, another's are withheld and the page says so.
    shown = {entry.summary for section in page.sections for entry in section.entries}
    if Section.PROBLEMS in sections:
        assert "Hypertension" in shown
        assert "Hospital clinic HIV care" in shown
        assert "Gonorrhoea at the surgery" not in shown
        assert SENSITIVE_WITHHELD in page.withheld
        assert "sensitive-entries:1" in event.withheld
    else:
        assert not shown & {"Hypertension", "Hospital clinic HIV care", "Gonorrhoea at the surgery"}
        assert "sensitive-entries" not in event.withheld


@pytest.mark.parametrize(("role", "route", "current", "restricted"), CASES)
def test_search_matrix(db, kept, role, route, current, restricted):
    world = _world(kept, role, route, current, restricted)
    allowed = _expected_allowed(role, route, current)

    assert decide(world.user, world.patient, Action.SEARCH).allowed is allowed
    assert (world.patient in visible_patients(world.user, Action.SEARCH)) is allowed
    if allowed:
        assert (
            patient_search_for_user(user=world.user, nhs_number_text="9990000018", request=None)
            == world.patient
        )
    else:
        with pytest.raises(PatientNotFound):
            patient_search_for_user(user=world.user, nhs_number_text="9990000018", request=None)
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.query) == (
        "search",
        "allowed" if allowed else "denied",
        "9990000018",
    )


def test_a_grant_counts_only_under_the_role_profile_it_was_made_under(db, kept):
    world = _world(kept, JobRole.CLINICAL_PRACTITIONER, "self-claim", True, False)
    other = organisation_upsert(
        ods_code="RT1", name="Mental health trust", kind=Organisation.Kind.MENTAL_HEALTH_TRUST
    )
    second = staff_profile_add(
        user_id=world.user.pk, organisation=other, job_role=JobRole.CLINICAL_PRACTITIONER
    )
    world.user.refresh_from_db()

    # Two role profiles and none chosen: nothing opens until the user chooses.
    assert not decide(world.user, world.patient, Action.VIEW_RECORD).allowed
    world.user.selected_staff_profile_id = second.pk
    assert not decide(world.user, world.patient, Action.VIEW_RECORD).allowed
    first = next(profile for profile in world.user.staff_profiles.all() if profile.pk != second.pk)
    world.user.selected_staff_profile_id = first.pk
    assert decide(world.user, world.patient, Action.VIEW_RECORD).allowed


def test_a_grant_ended_early_closes_the_record_at_once(db, kept):
    world = _world(kept, JobRole.NURSE, "break-glass", True, False)
    assert decide(world.user, world.patient, Action.VIEW_RECORD).allowed
    BreakGlassGrant.objects.update(ended_at=timezone.now())
    assert not decide(world.user, world.patient, Action.VIEW_RECORD).allowed
    assert not visible_patients(world.user).exists()


@pytest.mark.parametrize(
    ("role", "may_claim", "may_break"),
    [
        (JobRole.CLINICAL_PRACTITIONER, True, True),
        (JobRole.NURSE, True, True),
        (JobRole.SOCIAL_CARE_PRACTITIONER, True, False),
        (JobRole.ADMIN_CLINICAL_SUPPORT, False, False),
    ],
)
def test_a_denial_for_want_of_a_relationship_says_what_the_role_may_do_about_it(
    db, kept, role, may_claim, may_break
):
    world = _world(kept, role, "none", True, False)
    decision = decide(world.user, world.patient, Action.VIEW_RECORD)
    assert (decision.allowed, decision.may_self_claim, decision.may_break_glass) == (
        False,
        may_claim,
        may_break,
    )


def test_the_roles_table_is_what_decides(db, kept):
    world = _world(kept, JobRole.NURSE, "organisation-care-event", True, False)
    assert Section.PROBLEMS in decide(world.user, world.patient, Action.VIEW_RECORD).sections

    Role.objects.filter(code=JobRole.NURSE).update(sections=sorted(DEMOGRAPHIC_SECTIONS))

    assert decide(world.user, world.patient, Action.VIEW_RECORD).sections == DEMOGRAPHIC_SECTIONS


# The patient's objection: its status and decided scope, against a user at the hospital (RGT) and the GP practice
# (D81001) that sent the patient's problems. What it does to a user who may otherwise see the record: nothing,
# refuse the record, withhold sections, or withhold a partner's entries; and whether a break-glass for
# safeguarding may set it aside.
OBJECTIONS = {
    "none": (None, "nothing", False),
    "whole-record": ({"status": "upheld", "upheld_whole_record": True}, "refuse", False),
    "whole-record-overridable": (
        {"status": "upheld", "upheld_whole_record": True, "break_glass_may_override": True},
        "refuse",
        True,
    ),
    "sections": (
        {"status": "partly-upheld", "upheld_sections": [Section.ASSESSMENTS, Section.VACCINATIONS]},
        "sections",
        False,
    ),
    "sections-overridable": (
        {
            "status": "partly-upheld",
            "upheld_sections": [Section.ASSESSMENTS, Section.VACCINATIONS],
            "break_glass_may_override": True,
        },
        "sections",
        True,
    ),
    "from-another-partner": ({"status": "upheld", "upheld_from_partners": ["D81001"]}, "partner", False),
    # The objection is to sharing a partner's data: its own staff still see it.
    "from-own-organisation": ({"status": "upheld", "upheld_from_partners": ["RGT"]}, "nothing", False),
    "to-own-organisation": ({"status": "upheld", "upheld_to_partners": ["RGT"]}, "refuse", False),
    "to-another-partner": ({"status": "upheld", "upheld_to_partners": ["D81001"]}, "nothing", False),
    # Only an upheld or partly upheld objection counts, whatever scope it carries.
    "under-review": ({"status": "under-review", "upheld_whole_record": True}, "nothing", False),
    "not-upheld": ({"status": "not-upheld", "upheld_whole_record": True}, "nothing", False),
    "withdrawn": ({"status": "withdrawn", "upheld_whole_record": True}, "nothing", False),
}
OBJECTION_ROLES = [
    JobRole.CLINICAL_PRACTITIONER,
    JobRole.SOCIAL_CARE_PRACTITIONER,
    JobRole.ADMIN_CLINICAL_SUPPORT,
]
OBJECTION_ROUTES = [
    "none",
    "organisation-care-event",
    "self-claim",
    "break-glass",
    "break-glass-safeguarding",
]
OBJECTION_SECTIONS = frozenset({Section.ASSESSMENTS, Section.VACCINATIONS})


def _objection_world(kept: _Kept, role: str, route: str, objection: str) -> World:
    world = _world(kept, role, route, True, False)
    fields = OBJECTIONS[objection][0]
    if fields is not None:
        Objection.objects.create(
            reference="OB-MATRIX",
            channel=Objection.Channel.WEB_FORM,
            given_name="Alice",
            family_name="Ames",
            birth_date=timezone.localdate(),
            contact_by=Objection.ContactBy.EMAIL,
            contact_detail="alice@example.org",
            due_at=timezone.now() + timedelta(days=30),
            patient=world.patient,
            **fields,
        )
    return world


@dataclass(frozen=True)
class Expected:
    allowed: bool
    told_withheld: bool
    overridden: bool
    sections: frozenset[Section]
    partners: frozenset[str]


def _expected(role: str, route: str, objection: str) -> Expected:
    _, effect, overridable = OBJECTIONS[objection]
    opened = ROLES[role][0] & CLINICAL_SECTIONS
    reaches_role = effect == "refuse" or bool(effect == "sections" and opened & OBJECTION_SECTIONS)
    reaches_role = reaches_role or bool(effect == "partner" and opened)
    overridden = route == "break-glass-safeguarding" and overridable and reaches_role
    if route == "none":
        return Expected(False, False, False, frozenset(), frozenset())
    if effect == "refuse" and not overridden:
        return Expected(False, True, False, frozenset(), frozenset())
    sections = opened & OBJECTION_SECTIONS if effect == "sections" and not overridden else frozenset()
    partners = frozenset({"D81001"}) if effect == "partner" and opened else frozenset()
    return Expected(True, False, overridden, sections, partners)


OBJECTION_CASES = [
    pytest.param(role, route, objection, id=f"{role}-{route}-{objection}")
    for role in OBJECTION_ROLES
    for route in OBJECTION_ROUTES
    for objection in OBJECTIONS
]


def _open_record(world: World):
    return get_patient_for_user(
        user=world.user,
        public_id=world.patient.public_id,
        request=None,
        build=lambda patient, decision: record_page_build(patient, decision, requested_pages=QueryDict()),
    )


@pytest.mark.parametrize(("role", "route", "objection"), OBJECTION_CASES)
def test_objection_matrix_record_view(db, kept, role, route, objection):
    world = _objection_world(kept, role, route, objection)
    expected = _expected(role, route, objection)

    decision = decide(world.user, world.patient, Action.VIEW_RECORD)

    assert decision.allowed is expected.allowed, decision.why_not
    assert (world.patient in visible_patients(world.user, Action.VIEW_RECORD)) is expected.allowed
    assert decision.withholds_whole_record is expected.told_withheld
    assert decision.objection_overridden is expected.overridden
    assert decision.withheld_sections == expected.sections
    assert decision.withheld_partners == expected.partners
    if not expected.allowed:
        refusal = RecordWithheld if expected.told_withheld else PatientNotFound
        with pytest.raises(refusal) as raised:
            _open_record(world)
        assert isinstance(raised.value, RecordWithheld) is expected.told_withheld
        event = AccessEvent.objects.get()
        assert (event.outcome, event.patient_id, event.sections_shown) == ("denied", world.patient.pk, [])
        assert ("OB-MATRIX" in event.reason) is expected.told_withheld
        assert not Alert.objects.exists()
        return

    page = _open_record(world).content
    events = list(AccessEvent.objects.order_by("id"))
    shown = {entry.summary for section in page.sections for entry in section.entries}
    withholds = bool(expected.sections or expected.partners)
    assert (OBJECTION_WITHHELD in page.withheld) is withholds
    assert [event.action for event in events] == ["view-record"] + [
        "objection-override"
    ] * expected.overridden
    assert ("objection:OB-MATRIX" in events[0].withheld.split("; ")) is withholds
    if expected.overridden:
        assert decision.basis_kind == "break-glass"
        assert events[1].basis == events[0].basis == decision.basis
        assert "OB-MATRIX" in events[1].reason
        alert = Alert.objects.get()
        assert (alert.kind, alert.reference, alert.event_id) == (
            "objection-override",
            "BG-SAFEGUARD",
            events[1].pk,
        )
    else:
        assert not Alert.objects.exists()
    opened = ROLES[role][0]
    # The page names no section or partner the objection covers; what it withholds is neither read nor shown.
    for sentence in page.withheld:
        assert "Assessments" not in sentence or "Your role" in sentence
        assert "Surgery" not in sentence
    assert ("Needs assessment" in shown) is (Section.ASSESSMENTS in opened - expected.sections)
    assert ("Hypertension" in shown) is (Section.PROBLEMS in opened and not expected.partners)
    assert ("D81001" in events[0].partners_shown) is (Section.PROBLEMS in opened and not expected.partners)
    assert (Section.ASSESSMENTS.value in events[0].sections_shown) is (
        Section.ASSESSMENTS in opened - expected.sections
    )
    facts = events[0].withheld.split("; ")
    withheld_sections = ",".join(sorted(section.value for section in expected.sections))
    assert (f"objection-sections:{withheld_sections}" in facts) is bool(expected.sections)
    assert ("objection-partners:D81001" in facts) is bool(expected.partners)


@pytest.mark.parametrize(("role", "route", "objection"), OBJECTION_CASES)
def test_objection_matrix_search(db, kept, role, route, objection):
    world = _objection_world(kept, role, route, objection)
    expected = _expected(role, route, objection)

    decision = decide(world.user, world.patient, Action.SEARCH)

    assert decision.allowed is expected.allowed, decision.why_not
    assert (world.patient in visible_patients(world.user, Action.SEARCH)) is expected.allowed
    assert decision.withholds_whole_record is expected.told_withheld
    if expected.allowed:
        found = patient_search_for_user(user=world.user, nhs_number_text="9990000018", request=None)
        assert found == world.patient
    else:
        with pytest.raises(PatientNotFound) as raised:
            patient_search_for_user(user=world.user, nhs_number_text="9990000018", request=None)
        assert isinstance(raised.value, RecordWithheld) is expected.told_withheld
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.query) == (
        "search",
        "allowed" if expected.allowed else "denied",
        "9990000018",
    )
    # A search shows nothing of the record, so it sets nothing aside and raises no alert.
    assert not Alert.objects.exists()
