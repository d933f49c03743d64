"""Sign-in lockout: wrong passwords for one username from one address lock that pair out, on the portal's and the
back office's sign-in pages; every failure is kept and shown to the privacy officer, whose reading is audited."""

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.test import Client
from django.urls import reverse

from audit.models import AccessEvent
from consent.models import BreakGlassGrant
from tests.builders import PASSWORD

ATTACKER = "203.0.113.9"
ELSEWHERE = "198.51.100.20"


def sign_in(client: Client, page: str, username: str, password: str, address: str = ATTACKER):
    return client.post(reverse(page), {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("page", ["login", "admin:login"])
def test_the_right_password_is_refused_after_the_limit_of_wrong_ones(client, cast, page):
    user = cast.admin_gus if page == "admin:login" else cast.gp_ada
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, page, user.username, "not-the-password")

    refused = sign_in(client, page, user.username, PASSWORD)

    assert refused.status_code == 429
    body = refused.content.decode()
    assert "Sign-in paused" in body and f"{settings.AXES_COOLOFF_TIME.seconds // 60} minutes" in body
    assert "_auth_user_id" not in client.session
    failures = AccessFailureLog.objects.filter(username=user.username, ip_address=ATTACKER)
    assert failures.count() == settings.AXES_FAILURE_LIMIT + 1
    assert failures.filter(locked_out=True).exists()


def test_one_wrong_password_short_of_the_limit_still_signs_in_and_starts_the_count_again(client, cast):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "login", "gp.ada", "not-the-password").status_code == 200

    signed_in = sign_in(client, "login", "gp.ada", PASSWORD)

    assert signed_in.status_code == 302
    assert client.session["_auth_user_id"] == str(cast.gp_ada.pk)
    assert not AccessAttempt.objects.filter(username="gp.ada").exists()


def test_the_lockout_holds_one_username_at_one_address_only(client, cast):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "login", "gp.ada", "not-the-password")

    # The same person elsewhere, and a colleague at the attacker's address, still sign in.
    assert sign_in(Client(), "login", "gp.ada", PASSWORD, address=ELSEWHERE).status_code == 302
    assert sign_in(Client(), "login", "gp.ben", PASSWORD).status_code == 302
    assert sign_in(Client(), "login", "gp.ada", PASSWORD).status_code == 429


def test_the_lockout_ends_after_its_time(client, cast):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "login", "gp.ada", "not-the-password")
    attempt = AccessAttempt.objects.get(username="gp.ada")
    # As if the lockout's minutes had passed: the attempt is dated back rather than the test waiting.
    AccessAttempt.objects.filter(pk=attempt.pk).update(
        attempt_time=attempt.attempt_time - settings.AXES_COOLOFF_TIME
    )

    assert sign_in(client, "login", "gp.ada", PASSWORD).status_code == 302


def test_the_privacy_officer_sees_failures_and_lockouts_and_the_reading_is_audited(client, cast):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "login", "gp.ada", "not-the-password")
    sign_in(Client(), "admin:login", "nobody.known", "guess", address=ELSEWHERE)
    client.force_login(cast.privacy_fay)

    page = client.get(reverse("records:sign-in-failures"))

    assert page.status_code == 200
    body = page.content.decode()
    assert body.count('class="border-bottom py-2 sign-in-failure"') == settings.AXES_FAILURE_LIMIT + 1
    assert "nobody.known" in body and ELSEWHERE in body and "/admin/login/" in body
    assert body.count('class="card card-body mb-2 lockout"') == 1
    assert "not-the-password" not in body and "guess" not in body
    event = AccessEvent.objects.get()
    assert (event.username, event.action, event.purpose, event.outcome, event.patient_id) == (
        "privacy.fay",
        AccessEvent.Action.READ_AUDIT,
        AccessEvent.Purpose.AUDIT,
        AccessEvent.Outcome.ALLOWED,
        None,
    )


@pytest.mark.parametrize("who", ["gp_ada", "admin_gus"])
def test_no_one_else_reads_the_failed_sign_ins_and_the_refusal_is_audited(client, cast, who):
    sign_in(Client(), "login", "gp.ben", "not-the-password")
    user = getattr(cast, who)
    client.force_login(user)

    page = client.get(reverse("records:sign-in-failures"))

    assert page.status_code == 404
    assert "gp.ben" not in page.content.decode()
    event = AccessEvent.objects.get()
    assert (event.username, event.action, event.outcome) == (
        user.username,
        AccessEvent.Action.READ_AUDIT,
        AccessEvent.Outcome.DENIED,
    )
    assert AccessFailureLog.objects.count() == 1


def test_the_failures_page_takes_the_same_queries_however_many_failures_it_lists(
    client, cast, django_assert_num_queries
):
    client.force_login(cast.privacy_fay)
    client.get(reverse("records:sign-in-failures"))
    for _ in range(3):
        sign_in(Client(), "login", "gp.ben", "not-the-password")
    with django_assert_num_queries(13):
        client.get(reverse("records:sign-in-failures"))
    for _ in range(3):
        sign_in(Client(), "login", "gp.ada", "not-the-password", address=ELSEWHERE)
    with django_assert_num_queries(13):
        client.get(reverse("records:sign-in-failures"))


def test_wrong_passwords_at_break_glass_count_towards_the_lockout(client, cast):
    client.force_login(cast.ed_cara)
    patient = cast.patient_sensitive
    client.post(reverse("records:patient-search"), {"nhs_number": patient.nhs_number}, REMOTE_ADDR=ATTACKER)
    url = reverse("records:break-glass", kwargs={"public_id": patient.public_id})
    data = {"glass-reason_code": "emergency-unable-to-consent", "glass-reason_text": "Unconscious on arrival"}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        guessed = client.post(url, {**data, "glass-password": "a-guess"}, REMOTE_ADDR=ATTACKER)
        assert "The password is not right." in guessed.content.decode()
    assert client.post(url, {**data, "glass-password": "a-guess"}, REMOTE_ADDR=ATTACKER).status_code == 429

    # Even the right password no longer opens the glass, nor signs in from that address.
    refused = client.post(url, {**data, "glass-password": PASSWORD}, REMOTE_ADDR=ATTACKER)
    assert refused.status_code == 429
    assert not BreakGlassGrant.objects.exists()
    assert sign_in(Client(), "login", "ed.cara", PASSWORD).status_code == 429
