"""Sessions end on the server: after fifteen minutes without activity, twelve hours after sign-in whatever the
activity, and at the next request once the account is disabled, a role profile it signed in with is removed or
changed, or its password is set by someone else. Time passes by moving the recorded times back in the session store.
"""

from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent.models import StaffProfile
from consent.roles import JobRole
from consent.services import staff_profile_add, staff_profile_set
from records.models import PushAttempt
from sharedcare.sessions import LAST_ACTIVITY_AT, SIGNED_IN_AT, STANDING
from tests.builders import PASSWORD, bundle, condition, push

IDLE_MESSAGE = "You were signed out after 15 minutes without activity."
LIFETIME_MESSAGE = "You were signed out because you had been signed in for 12 hours."
CHANGED_MESSAGE = "You were signed out because your account or role changed."


def move_back(client: Client, key: str, by: timedelta) -> float:
    """Move one recorded time of the client's session back, as if that much time had passed; the new value."""
    session = client.session
    session[key] = session[key] - by.total_seconds()
    session.save()
    return session[key]


def recorded(client: Client, key: str) -> float:
    return client.session[key]


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def home(client: Client):
    return client.get(reverse("records:home"))


def test_a_sign_in_records_its_time_its_activity_and_the_role_profiles_it_was_granted_on(client, cast):
    before = timezone.now().timestamp()
    response = client.post(reverse("login"), {"username": "gp.ada", "password": PASSWORD})
    assert response.status_code == 302
    session = client.session
    assert before <= session[SIGNED_IN_AT] == session[LAST_ACTIVITY_AT] <= timezone.now().timestamp()
    profile = StaffProfile.objects.get(user=cast.gp_ada)
    assert session[STANDING] == [f"{profile.pk}:{cast.practice_a.pk}:{JobRole.CLINICAL_PRACTITIONER}::"]


def test_a_session_idle_for_fifteen_minutes_is_signed_out_and_the_login_page_says_why(client, cast):
    client.force_login(cast.gp_ada)
    move_back(client, LAST_ACTIVITY_AT, timedelta(minutes=15))

    response = home(client)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not signed_in(client)
    login_page = client.get(response["Location"])
    assert IDLE_MESSAGE in login_page.content.decode()
    assert home(client).status_code == 302


def test_a_request_within_the_idle_limit_keeps_the_session_and_counts_as_activity(client, cast):
    client.force_login(cast.gp_ada)
    moved = move_back(client, LAST_ACTIVITY_AT, timedelta(minutes=14, seconds=50))

    assert home(client).status_code == 200

    assert signed_in(client)
    assert recorded(client, LAST_ACTIVITY_AT) >= moved + 14 * 60


def test_activity_is_written_at_most_once_a_minute(client, cast):
    client.force_login(cast.gp_ada)
    moved = move_back(client, LAST_ACTIVITY_AT, timedelta(seconds=30))

    assert home(client).status_code == 200

    assert recorded(client, LAST_ACTIVITY_AT) == moved


def test_a_session_twelve_hours_old_is_signed_out_however_active(client, cast):
    client.force_login(cast.gp_ada)
    move_back(client, SIGNED_IN_AT, timedelta(hours=12))

    response = home(client)

    assert response.status_code == 302
    assert not signed_in(client)
    assert LIFETIME_MESSAGE in client.get(response["Location"]).content.decode()


def test_the_limits_follow_the_settings(client, cast, settings):
    settings.SESSION_IDLE_MINUTES = 5
    client.force_login(cast.gp_ada)
    move_back(client, LAST_ACTIVITY_AT, timedelta(minutes=5))

    response = home(client)

    assert not signed_in(client)
    assert (
        "You were signed out after 5 minutes without activity."
        in client.get(response["Location"]).content.decode()
    )


def test_staying_signed_in_starts_the_idle_limit_again_but_not_the_lifetime(client, cast):
    client.force_login(cast.gp_ada)
    move_back(client, LAST_ACTIVITY_AT, timedelta(minutes=14))
    signed_in_at = move_back(client, SIGNED_IN_AT, timedelta(hours=2))

    response = client.post(reverse("session-keep-alive"))

    assert response.status_code == 200
    body = response.json()
    assert body["signed_in"] is True
    assert 14 * 60 < body["idle_seconds"] <= 15 * 60
    assert 9 * 60 * 60 < body["lifetime_seconds"] <= 10 * 60 * 60
    assert recorded(client, LAST_ACTIVITY_AT) >= timezone.now().timestamp() - 60
    assert recorded(client, SIGNED_IN_AT) == signed_in_at


def test_asking_how_long_is_left_is_not_activity(client, cast, django_assert_num_queries):
    client.force_login(cast.gp_ada)
    moved = move_back(client, LAST_ACTIVITY_AT, timedelta(minutes=14))

    # 1. the session; 2. the user; 3. the role profiles, checked against those the session was granted on, with
    # their roles, which the second-factor check reads to ask whether one reviews alerts (consent.mfa).
    with django_assert_num_queries(3):
        response = client.get(reverse("session-status"))

    assert response.status_code == 200
    assert 0 < response.json()["idle_seconds"] <= 60
    assert recorded(client, LAST_ACTIVITY_AT) == moved


def test_asking_after_the_end_signs_out_and_answers_signed_out(client, cast):
    client.force_login(cast.gp_ada)
    move_back(client, LAST_ACTIVITY_AT, timedelta(minutes=16))

    response = client.get(reverse("session-status"))

    assert (response.status_code, response.json()) == (401, {"signed_in": False})
    assert not signed_in(client)
    assert IDLE_MESSAGE in client.get(reverse("login")).content.decode()


def test_staying_signed_in_is_refused_to_a_visitor_a_get_and_a_post_without_its_token(client, cast):
    anonymous = client.post(reverse("session-keep-alive"))
    assert (anonymous.status_code, anonymous.json()) == (401, {"signed_in": False})
    assert "sessionid" not in anonymous.cookies

    client.force_login(cast.gp_ada)
    moved = move_back(client, LAST_ACTIVITY_AT, timedelta(minutes=5))
    guarded = Client(enforce_csrf_checks=True)
    guarded.cookies = client.cookies
    refused = guarded.post(reverse("session-keep-alive"))

    assert refused.status_code == 403
    assert "idle_seconds" not in refused.content.decode()
    assert recorded(client, LAST_ACTIVITY_AT) == moved
    assert client.get(reverse("session-keep-alive")).status_code == 405


@pytest.mark.usefixtures("_no_queueing")
def test_the_partner_api_has_no_session_to_end(api, cast, hospital_feed, hospital_key):
    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)

    assert response.status_code == 202
    assert "sessionid" not in response.cookies
    assert PushAttempt.objects.get().outcome == PushAttempt.Outcome.ACCEPTED


# The account's standing changes: every session of the user ends at its next request.


def two_sessions(user) -> tuple[Client, Client]:
    first, second = Client(), Client()
    first.force_login(user)
    second.force_login(user)
    assert home(first).status_code == home(second).status_code == 200
    return first, second


def assert_both_signed_out(first: Client, second: Client, message: str | None = CHANGED_MESSAGE) -> None:
    for client in (first, second):
        response = home(client)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
        assert not signed_in(client)
        if message is not None:
            assert message in client.get(response["Location"]).content.decode()


def test_disabling_an_account_ends_all_its_sessions(cast):
    first, second = two_sessions(cast.gp_ada)

    cast.gp_ada.is_active = False
    cast.gp_ada.save(update_fields=["is_active"])

    assert_both_signed_out(first, second)


def test_removing_a_role_profile_ends_all_the_users_sessions(cast):
    first, second = two_sessions(cast.gp_ada)

    staff_profile_set(user_id=cast.gp_ada.pk, organisation=cast.cuh, job_role=JobRole.CLINICAL_PRACTITIONER)

    assert_both_signed_out(first, second)


def test_changing_a_role_profile_ends_all_the_users_sessions(cast):
    first, second = two_sessions(cast.gp_ada)

    StaffProfile.objects.filter(user=cast.gp_ada).update(job_role=JobRole.ADMIN_CLINICAL_SUPPORT)

    assert_both_signed_out(first, second)


def test_a_new_role_profile_leaves_the_sessions_alone(cast):
    first, second = two_sessions(cast.gp_ada)

    staff_profile_add(user_id=cast.gp_ada.pk, organisation=cast.cuh, job_role=JobRole.CLINICAL_PRACTITIONER)

    # Holding two profiles now, each session is asked to choose one: still signed in.
    for client in (first, second):
        assert home(client)["Location"].startswith(reverse("records:role-select"))
        assert signed_in(client)


def test_a_password_set_by_someone_else_ends_all_the_users_sessions(cast):
    first, second = two_sessions(cast.gp_ada)
    back_office = Client()
    back_office.force_login(cast.admin_gus)

    # As the back office's password form saves it; who may use that form is tests/test_back_office_roles.py's concern.
    cast.gp_ada.set_password("a-new-passphrase-for-ada-2")
    cast.gp_ada.save(update_fields=["password"])

    # Django refuses a session whose password hash no longer matches and empties it before any page runs, so the
    # login page has nothing of ours to say; the back office's own session stays.
    assert_both_signed_out(first, second, message=None)
    assert back_office.get(reverse("admin:index")).status_code == 200


def test_changing_ones_own_password_keeps_that_session_and_ends_the_others(cast):
    first, second = two_sessions(cast.gp_ada)
    new_password = "a-new-passphrase-for-ada-2"

    response = first.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )

    assert response.status_code == 302
    assert home(first).status_code == 200
    response = home(second)
    assert response.status_code == 302 and not signed_in(second)
