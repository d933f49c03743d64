"""Separation of duties in the back office: only the registration authority changes a user's access, nobody changes
their own, every change is alerted, and every refused attempt is in the change history and alerted."""

import lxml.html
import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from audit.models import AccessEvent, Alert
from consent.models import CareTeamMembership, StaffProfile
from consent.roles import JobRole
from consent.separation import REGISTRATION_AUTHORITY_GROUP, registration_authority_add
from consent.services import care_team_create
from tests.builders import PASSWORD, make_user

NEW_PASSWORD = "another-Fenland-heron-77"


@pytest.fixture
def ra_rita(cast):
    """The registration authority: back-office staff, not a superuser, in the RA group."""
    rita = make_user("ra.rita", None, None, is_staff=True)
    registration_authority_add(user_id=rita.pk)
    return rita


def signed_in_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_form(client: Client, url: str, form_id: str) -> dict[str, list[str]]:
    """What the browser would send back from the page's form, unchanged."""
    page = client.get(url)
    assert page.status_code == 200
    form = lxml.html.fromstring(page.content).get_element_by_id(form_id)
    values: dict[str, list[str]] = {}
    for name, value in form.form_values():
        values.setdefault(name, []).append(value)
    return values


def user_page(user) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


def with_new_profile(form: dict[str, list[str]], organisation, role: str) -> dict[str, list[str]]:
    """The form with one more role profile row, as the "add another" link would add it (or as crafted by hand)."""
    rows = int(form.get("staff_profiles-TOTAL_FORMS", ["0"])[0])
    crafted = dict(form)
    crafted.update(
        {
            "staff_profiles-TOTAL_FORMS": [str(rows + 1)],
            "staff_profiles-INITIAL_FORMS": form.get("staff_profiles-INITIAL_FORMS", ["0"]),
            f"staff_profiles-{rows}-organisation": [str(organisation.pk)],
            f"staff_profiles-{rows}-job_role": [role],
        }
    )
    return crafted


def refusals_of(user) -> list[LogEntry]:
    return list(LogEntry.objects.filter(actor=user, action=LogEntry.Action.ACCESS).order_by("pk"))


def assert_cannot_open_patient_a(user, cast) -> None:
    events = AccessEvent.objects.count()
    response = signed_in_as(user).get(
        reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id})
    )
    assert response.status_code == 404
    assert b"Ashby" not in response.content and b"diabetes" not in response.content
    event = AccessEvent.objects.order_by("pk").last()
    assert AccessEvent.objects.count() == events + 1
    assert (event.user_id, event.patient_id, event.outcome) == (
        user.pk,
        cast.patient_a.pk,
        AccessEvent.Outcome.DENIED,
    )


def cannot_sign_in(username: str, password: str) -> bool:
    client = Client()
    response = client.post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 200 and "_auth_user_id" not in client.session


# A superuser who is not the registration authority.


def test_the_user_page_shows_a_superuser_access_read_only_and_no_password_link(admin_client, cast):
    page = admin_client.get(user_page(cast.gp_ada)).content.decode()

    assert 'name="is_superuser"' not in page and 'name="groups"' not in page
    assert 'name="staff_profiles-0-job_role"' not in page and "staff_profiles-__prefix__" not in page
    assert "../password/" not in page
    assert "Only the registration authority sets another user&#x27;s password" in page


def test_a_superuser_cannot_give_himself_a_role_profile_by_a_crafted_post(admin_client, cast):
    form = page_form(admin_client, user_page(cast.admin_gus), "user_form")
    alerts = Alert.objects.count()

    response = admin_client.post(
        user_page(cast.admin_gus), with_new_profile(form, cast.practice_a, JobRole.CLINICAL_PRACTITIONER)
    )

    assert response.status_code == 302 and response["Location"] == user_page(cast.admin_gus)
    assert not StaffProfile.objects.filter(user=cast.admin_gus).exists()
    assert not cast.admin_gus.groups.exists()
    [refusal] = refusals_of(cast.admin_gus)
    assert refusal.object_id == cast.admin_gus.pk
    assert refusal.additional_data["refused"] == "change role profiles"
    assert "nobody changes their own access" in refusal.additional_data["why"]
    [alert] = Alert.objects.filter(kind=Alert.Kind.SELF_GRANT_REFUSED)
    assert Alert.objects.count() == alerts + 1
    assert alert.username == "admin.gus" and alert.patient_id is None
    assert "admin.gus tried to change the access of admin.gus" in alert.reason
    assert_cannot_open_patient_a(cast.admin_gus, cast)


def test_the_refusal_page_says_nothing_was_changed(admin_client, cast):
    form = page_form(admin_client, user_page(cast.admin_gus), "user_form")
    crafted = with_new_profile(form, cast.practice_a, JobRole.CLINICAL_PRACTITIONER)

    page = admin_client.post(user_page(cast.admin_gus), crafted, follow=True).content.decode()

    assert "Refused: nobody changes their own access" in page
    assert "Nothing was changed" in page


def test_a_superuser_cannot_set_gp_adas_password(admin_client, cast):
    before = cast.gp_ada.password
    url = reverse("admin:auth_user_password_change", args=[cast.gp_ada.pk])

    response = admin_client.post(
        url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    )

    assert response.status_code == 302 and response["Location"] == user_page(cast.gp_ada)
    cast.gp_ada.refresh_from_db()
    assert cast.gp_ada.password == before
    assert cannot_sign_in("gp.ada", NEW_PASSWORD)
    [refusal] = refusals_of(cast.admin_gus)
    assert refusal.object_id == cast.gp_ada.pk
    assert refusal.additional_data == {
        "refused": "set the user's password",
        "why": "only the registration authority changes a user's access",
    }
    assert Alert.objects.get(kind=Alert.Kind.SELF_GRANT_REFUSED).reason.startswith(
        "admin.gus tried to change the access of gp.ada"
    )
    assert_cannot_open_patient_a(cast.admin_gus, cast)


def test_the_password_page_turns_a_superuser_away_without_a_form(admin_client, cast):
    url = reverse("admin:auth_user_password_change", args=[cast.gp_ada.pk])

    response = admin_client.get(url)

    assert response.status_code == 302 and response["Location"] == user_page(cast.gp_ada)
    assert not refusals_of(cast.admin_gus)


def test_a_superuser_cannot_make_himself_the_registration_authority(admin_client, cast, ra_rita):
    registration_authority = Group.objects.get(name=REGISTRATION_AUTHORITY_GROUP)
    form = page_form(admin_client, user_page(cast.admin_gus), "user_form")
    form["groups"] = [str(registration_authority.pk)]

    response = admin_client.post(user_page(cast.admin_gus), form)

    assert response.status_code == 302
    assert not cast.admin_gus.groups.exists()
    [refusal] = refusals_of(cast.admin_gus)
    assert refusal.additional_data["refused"] == "change the user's groups"
    assert Alert.objects.filter(kind=Alert.Kind.SELF_GRANT_REFUSED).count() == 1
    assert_cannot_open_patient_a(cast.admin_gus, cast)


def test_a_superuser_cannot_give_a_group_he_could_join_the_registration_authoritys_permission(
    admin_client, cast, ra_rita
):
    group = Group.objects.create(name="Back office")
    permissions = Group.objects.get(name=REGISTRATION_AUTHORITY_GROUP).permissions.values_list(
        "pk", flat=True
    )
    url = reverse("admin:auth_group_change", args=[group.pk])

    response = admin_client.post(url, {"name": "Back office", "permissions": [str(pk) for pk in permissions]})

    assert response.status_code == 302
    assert not group.permissions.exists()
    assert refusals_of(cast.admin_gus)[0].additional_data["refused"] == (
        "rename the group; change the group's permissions"
    )


def test_a_superuser_cannot_add_a_user(admin_client, cast):
    response = admin_client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "sleeper",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "usable_password": "true",
        },
    )

    assert response.status_code == 302
    assert not Group.objects.filter(user__username="sleeper").exists()
    assert cannot_sign_in("sleeper", NEW_PASSWORD)
    assert refusals_of(cast.admin_gus)[0].object_repr == "a new user sleeper"


def test_a_superuser_still_edits_a_users_name(admin_client, cast):
    form = page_form(admin_client, user_page(cast.gp_ada), "user_form")
    form["first_name"] = ["Adaline"]

    response = admin_client.post(user_page(cast.gp_ada), form)

    assert response.status_code == 302
    cast.gp_ada.refresh_from_db()
    assert cast.gp_ada.first_name == "Adaline"
    assert StaffProfile.objects.filter(user=cast.gp_ada).count() == 1
    assert not refusals_of(cast.admin_gus)
    assert not Alert.objects.exists()


def test_each_refused_attempt_is_on_the_privacy_officers_change_history(admin_client, client, cast):
    form = page_form(admin_client, user_page(cast.admin_gus), "user_form")
    admin_client.post(user_page(cast.admin_gus), with_new_profile(form, cast.practice_a, JobRole.NURSE))
    admin_client.post(
        reverse("admin:auth_user_password_change", args=[cast.gp_ada.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    client.force_login(cast.privacy_fay)

    page = client.get(
        reverse("records:change-history"), {"actor": "admin.gus", "kind": "users"}
    ).content.decode()

    assert page.count('class="card card-body mb-2 change-entry"') == 2
    assert "change role profiles (refused: nobody changes their own access" in page
    assert "set the user&#x27;s password (refused: only the registration authority" in page


# The registration authority.


def test_the_registration_authority_gives_gp_ben_a_role_profile_audited_and_alerted(cast, ra_rita):
    rita = signed_in_as(ra_rita)
    form = page_form(rita, user_page(cast.gp_ben), "user_form")

    response = rita.post(user_page(cast.gp_ben), with_new_profile(form, cast.practice_a, JobRole.NURSE))

    assert response.status_code == 302
    added = StaffProfile.objects.get(user=cast.gp_ben, organisation=cast.practice_a)
    assert added.job_role == JobRole.NURSE
    assert LogEntry.objects.get_for_object(added).get().actor == ra_rita
    assert cast.gp_ben.groups.filter(pk=cast.practice_a.group_id).exists()
    [alert] = Alert.objects.all()
    assert alert.kind == Alert.Kind.ACCESS_ADMINISTRATION
    assert (alert.username, alert.patient_id) == ("ra.rita", None)
    assert alert.reason.startswith("ra.rita changed the access of gp.ben: role profile added: gp.ben (Nurse")
    assert not refusals_of(ra_rita)


def test_the_registration_authority_sets_gp_bens_password_audited_and_alerted(client, cast, ra_rita):
    rita = signed_in_as(ra_rita)

    response = rita.post(
        reverse("admin:auth_user_password_change", args=[cast.gp_ben.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert response.status_code == 302
    cast.gp_ben.refresh_from_db()
    assert cast.gp_ben.check_password(NEW_PASSWORD)
    entry = LogEntry.objects.get_for_object(cast.gp_ben).latest("timestamp")
    assert entry.actor == ra_rita and set(entry.changes_dict) == {"password"}
    [alert] = Alert.objects.all()
    assert alert.kind == Alert.Kind.ACCESS_ADMINISTRATION
    assert alert.reason == "ra.rita changed the access of gp.ben: password set."


def test_the_registration_authority_cannot_change_her_own_access(cast, ra_rita):
    rita = signed_in_as(ra_rita)
    form = page_form(rita, user_page(ra_rita), "user_form")
    assert "is_superuser" not in form

    response = rita.post(user_page(ra_rita), {**form, "is_superuser": ["on"]})

    assert response.status_code == 302
    ra_rita.refresh_from_db()
    assert not ra_rita.is_superuser
    assert refusals_of(ra_rita)[0].additional_data["refused"] == "make the user a superuser or not"
    assert Alert.objects.get().kind == Alert.Kind.SELF_GRANT_REFUSED


def test_the_registration_authority_changes_her_own_password_only_with_the_old_one(cast, ra_rita):
    rita = signed_in_as(ra_rita)
    url = reverse("admin:auth_user_password_change", args=[ra_rita.pk])

    response = rita.post(
        url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    )

    assert response.status_code == 302 and response["Location"] == reverse("password_change")
    ra_rita.refresh_from_db()
    assert ra_rita.check_password(PASSWORD)
    assert refusals_of(ra_rita)[0].additional_data["refused"] == "set the user's password"


def test_the_registration_authority_cannot_add_herself_to_a_care_team(cast, ra_rita):
    team = care_team_create(organisation=cast.county, name="North team", code="N")
    rita = signed_in_as(ra_rita)
    url = reverse("admin:consent_careteam_change", args=[team.pk])
    form = page_form(rita, url, "careteam_form")
    form.update({"memberships-TOTAL_FORMS": ["1"], "memberships-0-user": [str(ra_rita.pk)]})

    response = rita.post(url, form)

    assert response.status_code == 302
    assert not CareTeamMembership.objects.exists()
    assert refusals_of(ra_rita)[0].additional_data["refused"] == "add themselves to the care team"
    assert Alert.objects.get().kind == Alert.Kind.SELF_GRANT_REFUSED


def test_a_superuser_cannot_add_members_to_a_care_team(admin_client, cast):
    team = care_team_create(organisation=cast.county, name="North team", code="N")
    url = reverse("admin:consent_careteam_change", args=[team.pk])
    form = page_form(admin_client, url, "careteam_form")
    form.update({"memberships-TOTAL_FORMS": ["1"], "memberships-0-user": [str(cast.social_eli.pk)]})

    response = admin_client.post(url, form)

    assert response.status_code == 302
    assert not CareTeamMembership.objects.exists()
    assert refusals_of(cast.admin_gus)[0].additional_data["refused"] == "change members"


def test_the_registration_authority_adds_a_member_to_a_team_alerted(cast, ra_rita):
    team = care_team_create(organisation=cast.county, name="North team", code="N")
    rita = signed_in_as(ra_rita)
    url = reverse("admin:consent_careteam_change", args=[team.pk])
    form = page_form(rita, url, "careteam_form")
    form.update({"memberships-TOTAL_FORMS": ["1"], "memberships-0-user": [str(cast.social_eli.pk)]})

    response = rita.post(url, form)

    assert response.status_code == 302
    assert CareTeamMembership.objects.get().user == cast.social_eli
    [alert] = Alert.objects.all()
    assert alert.kind == Alert.Kind.ACCESS_ADMINISTRATION
    assert alert.reason.startswith(
        "ra.rita changed the access of social.eli: member added: social.eli in North team"
    )


def test_a_superuser_holds_no_access_administration_by_being_one(cast):
    from consent.separation import may_administer_access

    assert not may_administer_access(cast.admin_gus)
    assert not may_administer_access(cast.gp_ada)
