"""The second factor after the password: who must pass it, enrolment with recovery codes, verification, what stays
shut until then, wrong codes, and the back office's reset of someone else's. Every sign-in here goes through the
real pages (the password, then the code read off the enrolment page), never `force_login`."""

import re
import time
from base64 import b32decode

import pytest
from auditlog.models import LogEntry
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AccessEvent, Alert
from consent.mfa import mfa_required
from consent.roles import JobRole
from records.models import PushedBatch
from tests.builders import PASSWORD, add_role_profile, bundle, condition, push

ATTACKER = "203.0.113.9"


def code_now(key: bytes, steps_ahead: int = 0) -> str:
    """What the user's app shows now, or `steps_ahead` 30-second steps on: a code is taken once per step, and the
    next step's code is accepted too, so a test that signs in twice in one step uses the next one."""
    clock = TOTP(key)
    clock.time = time.time() + 30 * steps_ahead
    return f"{clock.token():06d}"


def sign_in(client: Client, username: str, address: str = "127.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": PASSWORD}, REMOTE_ADDR=address)


def enrol(client: Client) -> tuple[bytes, list[str]]:
    """Enrol through the pages as a user would: read the key off the page, type the app's code, keep the
    recovery codes the next page shows."""
    page = client.get(reverse("mfa-enrol"))
    assert page.status_code == 200
    secret = re.search(r'class="mfa-secret[^"]*">([A-Z2-7 ]+)<', page.content.decode())
    assert secret is not None
    key = b32decode(secret.group(1).replace(" ", ""))
    shown = client.post(reverse("mfa-enrol"), {"code": code_now(key), "next": "/"})
    assert shown.status_code == 200
    codes = re.findall(r'<li><code class="fs-5">([a-z2-7]+)</code></li>', shown.content.decode())
    return key, codes


def verify(client: Client, code: str, address: str = "127.0.0.1"):
    return client.post(reverse("mfa-verify"), {"code": code, "next": "/"}, REMOTE_ADDR=address)


@pytest.fixture
def fay_enrolled(cast) -> bytes:
    """privacy.fay has enrolled an authenticator (in a session of her own, now ended); her key."""
    client = Client()
    sign_in(client, "privacy.fay")
    key, _ = enrol(client)
    return key


def test_who_must_pass_a_second_factor(cast):
    assert mfa_required(cast.admin_gus)
    assert mfa_required(cast.privacy_fay)
    assert not any(
        mfa_required(user) for user in (cast.gp_ada, cast.ed_cara, cast.reception_dan, cast.social_eli)
    )


def test_a_privacy_officer_enrols_at_first_sign_in_and_gets_ten_recovery_codes_once(client, cast):
    signed_in = sign_in(client, "privacy.fay")
    home = client.get(signed_in["Location"])

    assert home.status_code == 302 and home["Location"].startswith(reverse("mfa-enrol"))
    page = client.get(home["Location"])
    body = page.content.decode()
    assert "<svg" in body and "<script" not in body.split("<main", 1)[1].split("</main>", 1)[0]
    _, codes = enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get(reverse("records:alert-list")).status_code == 200
    # Enrolled once: the page does not offer another secret, and the codes are not shown again.
    again = client.get(reverse("mfa-enrol"))
    assert again.status_code == 302
    assert not any(code in client.get("/").content.decode() for code in codes)
    assert TOTPDevice.objects.filter(user=cast.privacy_fay, confirmed=True).count() == 1


def test_a_wrong_code_at_enrolment_confirms_nothing(client, cast, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    sign_in(client, "privacy.fay")
    client.get(reverse("mfa-enrol"))

    refused = client.post(reverse("mfa-enrol"), {"code": "000000"})

    assert refused.status_code == 400
    assert "That code is not right" in refused.content.decode()
    assert not TOTPDevice.objects.filter(user=cast.privacy_fay, confirmed=True).exists()
    assert not StaticDevice.objects.filter(user=cast.privacy_fay).exists()
    assert client.get(reverse("records:alert-list")).status_code == 302


def test_an_enrolled_user_is_asked_for_a_code_and_nothing_opens_before_it(client, cast, fay_enrolled):
    sign_in(client, "privacy.fay")
    events_before = AccessEvent.objects.count()

    for url in (
        reverse("records:home"),
        reverse("records:alert-list"),
        reverse("records:audit-console"),
        reverse("records:patient-detail", args=[cast.patient_a.public_id]),
        reverse("records:role-select"),
        reverse("mfa-enrol"),
        reverse("password_change"),
    ):
        held = client.get(url)
        assert held.status_code == 302, url
        assert held["Location"].startswith(reverse("mfa-verify")), url
    held = client.post(reverse("records:patient-search"), {"nhs_number": cast.patient_a.nhs_number})
    assert held.status_code == 302 and held["Location"] == reverse("mfa-verify")
    assert AccessEvent.objects.count() == events_before

    passed = verify(client, code_now(fay_enrolled, steps_ahead=1))

    assert passed.status_code == 302
    assert client.get(reverse("records:alert-list")).status_code == 200


def test_the_back_office_stays_shut_until_the_code(client, cast):
    sign_in(client, "admin.gus")
    held = client.get(reverse("admin:index"))
    assert held.status_code == 302 and held["Location"].startswith(reverse("mfa-enrol"))
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 302
    enrol(client)
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200


def test_verification_returns_to_the_page_first_asked_for(client, cast, fay_enrolled):
    sign_in(client, "privacy.fay")
    held = client.get(reverse("records:alert-list"))
    form = client.get(held["Location"])
    assert f'value="{reverse("records:alert-list")}"' in form.content.decode()

    passed = client.post(
        reverse("mfa-verify"),
        {"code": code_now(fay_enrolled, steps_ahead=1), "next": reverse("records:alert-list")},
    )

    assert passed["Location"] == reverse("records:alert-list")
    # Never somewhere else.
    other = Client()
    sign_in(other, "privacy.fay")
    outside = other.post(reverse("mfa-verify"), {"code": "000000", "next": "https://evil.example/"})
    assert "https://evil.example/" not in outside.content.decode()


def test_a_wrong_code_is_refused_and_the_right_one_then_passes(client, cast, fay_enrolled, settings):
    # The throttle is its own test; here the right code may follow a wrong one at once.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    sign_in(client, "privacy.fay")

    refused = verify(client, "123456" if code_now(fay_enrolled, 1) != "123456" else "654321")

    assert refused.status_code == 400
    assert "That code is not right" in refused.content.decode()
    assert client.get(reverse("records:alert-list")).status_code == 302
    assert AccessFailureLog.objects.filter(username="privacy.fay").count() == 1
    assert verify(client, code_now(fay_enrolled, steps_ahead=1)).status_code == 302
    assert client.get(reverse("records:alert-list")).status_code == 200


def test_after_a_wrong_code_even_the_right_one_is_refused_while_the_device_is_throttled(
    client, cast, fay_enrolled, settings
):
    settings.OTP_TOTP_THROTTLE_FACTOR = 3600
    sign_in(client, "privacy.fay")
    verify(client, "000000")

    refused = verify(client, code_now(fay_enrolled, steps_ahead=1))

    assert refused.status_code == 400
    assert client.get(reverse("records:alert-list")).status_code == 302
    # Signing in again does not clear the wait.
    again = Client()
    sign_in(again, "privacy.fay")
    assert verify(again, code_now(fay_enrolled, steps_ahead=1)).status_code == 400


def test_wrong_codes_count_towards_the_sign_in_lockout_which_signs_the_user_out(client, cast, fay_enrolled):
    sign_in(client, "privacy.fay", ATTACKER)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert verify(client, "000000", ATTACKER).status_code == 400

    locked = verify(client, "000000", ATTACKER)

    assert locked.status_code == 429
    assert "Sign-in paused" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    assert AccessFailureLog.objects.filter(username="privacy.fay", ip_address=ATTACKER).count() == 5
    assert "000000" not in "".join(AccessAttempt.objects.values_list("post_data", flat=True))
    # The password alone no longer signs in from there, and nothing opens.
    assert sign_in(client, "privacy.fay", ATTACKER).status_code == 429
    assert client.get(reverse("records:alert-list")).status_code == 302
    assert not client.get(reverse("records:alert-list"))["Location"].startswith(reverse("mfa-verify"))


def test_a_recovery_code_passes_once(client, cast, settings):
    settings.OTP_STATIC_THROTTLE_FACTOR = 0
    sign_in(client, "privacy.fay")
    _, codes = enrol(client)
    client.post(reverse("logout"))

    sign_in(client, "privacy.fay")
    passed = verify(client, codes[0].upper())
    assert passed.status_code == 302
    assert client.get(reverse("records:alert-list")).status_code == 200
    assert StaticToken.objects.filter(device__user=cast.privacy_fay).count() == 9
    client.post(reverse("logout"))

    sign_in(client, "privacy.fay")
    assert verify(client, codes[0]).status_code == 400
    assert client.get(reverse("records:alert-list")).status_code == 302
    assert verify(client, codes[1]).status_code == 302


def test_a_user_without_the_requirement_is_not_asked(client, cast):
    signed_in = sign_in(client, "gp.ada")

    assert client.get(signed_in["Location"]).status_code == 200
    assert not TOTPDevice.objects.filter(user=cast.gp_ada).exists()


def test_a_clinician_may_enrol_of_her_own_accord_and_is_then_asked_at_every_sign_in(client, cast):
    sign_in(client, "gp.ada")
    link = f'href="{reverse("mfa-enrol")}"'
    assert link in client.get(reverse("records:home")).content.decode()
    key, codes = enrol(client)
    assert len(codes) == 10
    client.post(reverse("logout"))

    sign_in(client, "gp.ada")
    held = client.get(reverse("records:home"))
    assert held["Location"].startswith(reverse("mfa-verify"))
    assert verify(client, code_now(key, steps_ahead=1)).status_code == 302
    home = client.get(reverse("records:home"))
    assert home.status_code == 200
    assert link not in home.content.decode()


def test_holding_a_privacy_officers_profile_among_others_requires_it_before_any_role_is_chosen(client, cast):
    add_role_profile(cast.gp_ada, cast.icb, JobRole.PRIVACY_OFFICER)
    sign_in(client, "gp.ada")

    held = client.get(reverse("records:role-select"))

    assert held.status_code == 302 and held["Location"].startswith(reverse("mfa-enrol"))


def test_a_user_who_has_an_authenticator_cannot_enrol_another(client, cast, fay_enrolled):
    sign_in(client, "privacy.fay")
    assert client.get(reverse("mfa-enrol"))["Location"] == reverse("mfa-verify")
    assert verify(client, code_now(fay_enrolled, steps_ahead=1)).status_code == 302
    assert client.get(reverse("mfa-enrol")).status_code == 302
    assert TOTPDevice.objects.filter(user=cast.privacy_fay).count() == 1


def test_the_pages_need_a_signed_in_user(client, cast):
    for name in ("mfa-verify", "mfa-enrol"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not TOTPDevice.objects.exists()


def test_the_partner_api_is_unaffected_by_a_session_that_has_not_passed(
    client, cast, hospital_feed, hospital_key, _no_queueing
):
    sign_in(client, "admin.gus")
    assert client.get(reverse("admin:index")).status_code == 302

    without_key = push(client, hospital_feed.code, bundle(condition("c1", cast.patient_a)), None)
    with_key = push(client, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)

    assert without_key.status_code == 401
    assert with_key.status_code == 202
    assert PushedBatch.objects.count() == 1


def test_django_otp_device_pages_are_not_in_the_back_office(cast):
    for name in ("admin:otp_totp_totpdevice_changelist", "admin:otp_static_staticdevice_changelist"):
        with pytest.raises(NoReverseMatch):
            reverse(name)


def _reset(client: Client, user) -> object:
    return client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "mfa_reset_action", "_selected_action": [user.pk]},
        follow=True,
    )


def test_no_one_resets_their_own_second_factor(client, cast):
    sign_in(client, "admin.gus")
    enrol(client)

    response = _reset(client, cast.admin_gus)

    assert "You cannot reset your own second factor" in response.content.decode()
    assert TOTPDevice.objects.filter(user=cast.admin_gus, confirmed=True).count() == 1
    assert StaticToken.objects.filter(device__user=cast.admin_gus).count() == 10
    refused = Alert.objects.get(kind=Alert.Kind.SELF_GRANT_REFUSED)
    assert refused.username == "admin.gus"
    assert not Alert.objects.filter(kind=Alert.Kind.ACCESS_ADMINISTRATION).exists()


def test_the_back_office_resets_another_users_second_factor_audited_and_alerted(client, cast, fay_enrolled):
    fay = Client()
    sign_in(fay, "privacy.fay")
    verify(fay, code_now(fay_enrolled, steps_ahead=1))
    assert fay.get(reverse("records:alert-list")).status_code == 200
    sign_in(client, "admin.gus")
    enrol(client)

    _reset(client, cast.privacy_fay)

    assert not TOTPDevice.objects.filter(user=cast.privacy_fay).exists()
    assert not StaticDevice.objects.filter(user=cast.privacy_fay).exists()
    removals = LogEntry.objects.filter(
        action=LogEntry.Action.DELETE,
        content_type__in=ContentType.objects.get_for_models(TOTPDevice, StaticDevice).values(),
    )
    assert removals.count() == 2
    assert {entry.actor for entry in removals} == {cast.admin_gus}
    alert = Alert.objects.get(kind=Alert.Kind.ACCESS_ADMINISTRATION)
    assert alert.username == "admin.gus" and "privacy.fay" in alert.reason
    assert alert.patient_id is None
    # Her session verified by the removed device is held again, at enrolment.
    held = fay.get(reverse("records:alert-list"))
    assert held.status_code == 302 and held["Location"].startswith(reverse("mfa-enrol"))


def test_a_user_without_permission_cannot_reset_anyone(client, cast, fay_enrolled):
    sign_in(client, "gp.ada")

    response = client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "mfa_reset_action", "_selected_action": [cast.privacy_fay.pk]},
    )

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    assert TOTPDevice.objects.filter(user=cast.privacy_fay, confirmed=True).exists()
    assert not Alert.objects.exists()


def test_the_verification_page_takes_exact_queries(client, cast, fay_enrolled, django_assert_num_queries):
    sign_in(client, "privacy.fay")
    client.get(reverse("mfa-verify"))

    with django_assert_num_queries(8):
        response = client.get(reverse("mfa-verify"))

    assert response.status_code == 200
