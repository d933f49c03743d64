"""The back office's roles table and care teams: edited on pages, recorded by django-auditlog, obeyed at once."""

from auditlog.models import LogEntry
from django.urls import reverse

from consent.models import CareTeam, CareTeamMembership, LegitimateRelationship, Role
from consent.policy import Action, decide
from consent.roles import Activity, JobRole
from consent.separation import registration_authority_add
from consent.services import care_team_create, care_team_member_add
from records.sections import DEMOGRAPHIC_SECTIONS, Section
from tests.builders import make_user


def _role_form(role: Role, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": role.name,
        "sections": list(role.sections),
        "activities": list(role.activities),
        "self_claim_max_hours": role.self_claim_max_hours,
        "break_glass_max_hours": role.break_glass_max_hours,
    }
    if role.may_self_claim:
        data["may_self_claim"] = "on"
    if role.may_break_glass:
        data["may_break_glass"] = "on"
    data.update(changes)
    return data


def test_the_roles_page_lists_every_starting_role_with_ticked_boxes(admin_client):
    page = admin_client.get(reverse("admin:consent_role_changelist")).content.decode()
    for role in JobRole:
        assert role.value in page
    nurse = Role.objects.get(code=JobRole.NURSE)
    form = admin_client.get(reverse("admin:consent_role_change", args=[nurse.pk])).content.decode()
    assert 'type="checkbox" name="sections" value="problems-and-issues"' in form
    assert 'type="checkbox" name="activities" value="B1611"' in form


def test_taking_a_section_from_a_role_is_recorded_and_takes_effect_at_once(admin_client, cast):
    role = Role.objects.get(code=JobRole.CLINICAL_PRACTITIONER)
    assert Section.PROBLEMS in decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).sections
    kept = [section for section in role.sections if section != Section.PROBLEMS]

    response = admin_client.post(
        reverse("admin:consent_role_change", args=[role.pk]), _role_form(role, sections=kept)
    )

    assert response.status_code == 302
    role.refresh_from_db()
    assert Section.PROBLEMS not in role.sections
    assert Section.PROBLEMS not in decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).sections
    change = LogEntry.objects.get_for_object(role).latest("timestamp")
    assert change.actor == cast.admin_gus
    assert "sections" in change.changes_dict


def test_a_role_with_no_trace_activity_opens_nothing(admin_client, cast):
    role = Role.objects.get(code=JobRole.CLINICAL_PRACTITIONER)
    activities = [activity for activity in role.activities if activity != Activity.PATIENT_TRACE]

    admin_client.post(
        reverse("admin:consent_role_change", args=[role.pk]), _role_form(role, activities=activities)
    )

    decision = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)
    assert not decision.allowed
    assert decision.why_not == "role may not trace patients"


def test_a_role_form_refuses_an_unknown_section_and_a_zero_hour_grant(admin_client):
    role = Role.objects.get(code=JobRole.NURSE)
    before = (list(role.sections), role.break_glass_max_hours)

    response = admin_client.post(
        reverse("admin:consent_role_change", args=[role.pk]),
        _role_form(role, sections=["not-a-section"], break_glass_max_hours=0),
    )

    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    role.refresh_from_db()
    assert (list(role.sections), role.break_glass_max_hours) == before


def test_roles_cannot_be_deleted_from_the_back_office(admin_client):
    role = Role.objects.get(code=JobRole.NURSE)
    response = admin_client.post(reverse("admin:consent_role_delete", args=[role.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Role.objects.filter(code=JobRole.NURSE).exists()


def test_demographics_only_after_the_table_says_so(cast):
    Role.objects.filter(code=JobRole.SOCIAL_CARE_PRACTITIONER).update(sections=sorted(DEMOGRAPHIC_SECTIONS))
    assert decide(cast.social_eli, cast.patient_a, Action.VIEW_RECORD).sections == DEMOGRAPHIC_SECTIONS


def test_a_care_team_added_in_the_back_office_gets_its_group_and_members(client, cast):
    # Members are access: the registration authority adds them (tests/test_separation_of_duties.py).
    registrar = make_user("ra.rita", None, None, is_staff=True)
    registration_authority_add(user_id=registrar.pk)
    client.force_login(registrar)
    response = client.post(
        reverse("admin:consent_careteam_add"),
        {
            "organisation": cast.county.pk,
            "name": "Adult social care: north team",
            "code": "CCC-ASC-NORTH",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-user": cast.social_eli.pk,
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    team = CareTeam.objects.get(code="CCC-ASC-NORTH")
    assert team.organisation == cast.county
    assert team.group.name == "team:CCC01:CCC-ASC-NORTH"
    membership = CareTeamMembership.objects.get(team=team)
    assert membership.user == cast.social_eli
    assert LogEntry.objects.get_for_object(membership).latest("timestamp").actor == registrar


def test_a_team_relationship_reaches_members_only(cast):
    team = care_team_create(organisation=cast.county, name="North team", code="N")
    care_team_member_add(team=team, user_id=cast.social_eli.pk)
    colleague = make_user("social.other", cast.county, JobRole.SOCIAL_CARE_PRACTITIONER)
    LegitimateRelationship.objects.filter(content_object=cast.patient_a, group=cast.county.group).update(
        group=team.group
    )

    assert decide(cast.social_eli, cast.patient_a, Action.VIEW_RECORD).allowed
    assert not decide(colleague, cast.patient_a, Action.VIEW_RECORD).allowed
