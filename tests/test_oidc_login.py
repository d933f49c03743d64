"""Signing in through NHS Care Identity (CIS2-shaped OpenID Connect) against a real local provider.

A user is found by the SDS user id on their role profiles and acts under the role they chose at the provider, when
sharedcare knows that role at the same organisation; anything else is refused with a plain page, no session, a log
line, and nothing created. The state and nonce of every sign-in are checked and spent.
"""

import logging
import re
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AccessEvent
from consent.models import BreakGlassGrant, StaffProfile
from consent.policy import SELECTED_PROFILE_SESSION_KEY
from tests.builders import OIDC_PASSWORD, PASSWORD

REFUSED = "Your selected role is not set up in sharedcare"
NOT_FINISHED = "Sign-in through NHS Care Identity did not finish"


def provider_sign_in(start_url: str, login: str, role_id: str | None = None) -> str:
    """Sign in at the provider's own pages (and choose a role when asked) from the sign-in start's redirect;
    the callback address the provider sends the browser back to."""
    browser = requests.Session()
    page = browser.get(start_url, timeout=30)
    action = re.search(r'action="([^"]+)"', page.text).group(1)
    response = browser.post(
        urljoin(page.url, action),
        data={"login": login, "password": OIDC_PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    if role_id is not None:
        action = re.search(r'action="([^"]+)"', response.text).group(1)
        response = browser.post(
            urljoin(page.url, action), data={"role": role_id}, allow_redirects=False, timeout=30
        )
    while response.is_redirect:
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith("http://testserver/"):
            parts = urlsplit(location)
            return f"{parts.path}?{parts.query}"
        response = browser.get(location, allow_redirects=False, timeout=30)
    raise AssertionError(
        f"the provider did not send the browser back: {response.status_code} {response.text[:300]}"
    )


def sign_in(client, login: str, role_id: str | None = None):
    start = client.get(reverse("oidc:sign-in"))
    assert start.status_code == 302
    return client.get(provider_sign_in(start["Location"], login, role_id))


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def profile_of(user, ods_code: str) -> StaffProfile:
    return StaffProfile.objects.get(user=user, organisation__ods_code=ods_code)


def test_a_user_with_a_known_selected_role_lands_on_home_acting_under_that_role(client, oidc_cast):
    response = sign_in(client, "ada", role_id="910000000011")

    assert (response.status_code, response["Location"]) == (302, "/")
    assert client.session[SELECTED_PROFILE_SESSION_KEY] == profile_of(oidc_cast.gp_ada, "D81001").pk
    home = client.get("/")
    assert home.status_code == 200
    assert home.context["user"] == oidc_cast.gp_ada
    assert "Clinical practitioner at Riverside Surgery" in home.content.decode()


def test_a_privacy_officer_signed_in_through_nhs_care_identity_is_not_asked_for_a_local_second_factor(
    client, oidc_cast
):
    # CIS2 asked for the smartcard or another second factor itself (MFA_EXEMPT_BACKENDS); a password sign-in would
    # be held at the code page.
    response = sign_in(client, "fay")

    assert (response.status_code, response["Location"]) == (302, "/")
    assert client.get("/").status_code == 200
    assert client.get(reverse("records:alert-list")).status_code == 200
    assert not TOTPDevice.objects.filter(user=oidc_cast.privacy_fay).exists()


def test_a_user_holding_several_profiles_acts_under_the_one_chosen_at_the_provider_without_the_chooser(
    client, oidc_cast
):
    # Ada holds a second profile at CUH: the role chosen at CIS2 decides, and no chooser is asked for.
    from tests.builders import add_role_profile

    add_role_profile(oidc_cast.gp_ada, oidc_cast.cuh, "R8000")

    sign_in(client, "ada", role_id="910000000011")

    home = client.get("/")
    assert home.status_code == 200
    assert "Clinical practitioner at Riverside Surgery" in home.content.decode()


def _assert_refused(client, response, caplog, reason: str) -> None:
    assert response.status_code == 403
    assert REFUSED in response.content.decode()
    assert not signed_in(client)
    assert SELECTED_PROFILE_SESSION_KEY not in client.session
    assert client.get("/")["Location"].startswith(reverse("login"))
    assert any(
        reason in record.getMessage() for record in caplog.records if record.levelno == logging.WARNING
    )


def _nothing_changed(before: tuple[int, int, list]) -> tuple[int, int, list]:
    return (
        get_user_model().objects.count(),
        AccessEvent.objects.count(),
        list(StaffProfile.objects.order_by("pk").values_list("pk", "user_id", "sds_role_profile_id")),
    )


@pytest.mark.parametrize(
    ("login", "role_id", "reason"),
    [
        ("ada", "910000000012", "no role profile of the user carries the selected role"),
        ("ben", None, "the selected role's organisation is not the role profile's"),
        ("dan", None, "the token names no selected role"),
        ("stranger", None, "no role profile carries this uid"),
    ],
    ids=["role-unknown-here", "organisation-mismatch", "no-role", "uid-not-ours"],
)
def test_a_sign_in_whose_role_or_uid_is_not_set_up_is_refused_with_no_session_and_nothing_created(
    client, oidc_cast, caplog, login, role_id, reason
):
    before = _nothing_changed(())

    with caplog.at_level(logging.WARNING, logger="sharedcare.oidc"):
        response = sign_in(client, login, role_id)

    _assert_refused(client, response, caplog, reason)
    assert "Riverside Surgery" not in response.content.decode()
    assert _nothing_changed(before) == before


def test_an_inactive_user_is_refused(client, oidc_cast, caplog):
    get_user_model().objects.filter(pk=oidc_cast.gp_ada.pk).update(is_active=False)

    with caplog.at_level(logging.WARNING, logger="sharedcare.oidc"):
        response = sign_in(client, "ada", role_id="910000000011")

    _assert_refused(client, response, caplog, "the user is not active")


def test_a_replayed_callback_is_refused_and_signs_the_session_out(client, oidc_cast, caplog):
    start = client.get(reverse("oidc:sign-in"))
    callback = provider_sign_in(start["Location"], "ada", role_id="910000000011")
    assert client.get(callback).status_code == 302
    assert signed_in(client)

    with caplog.at_level(logging.WARNING, logger="sharedcare.oidc_views"):
        replayed = client.get(callback)

    assert replayed.status_code == 400
    assert NOT_FINISHED in replayed.content.decode()
    assert not signed_in(client)
    assert any("state not found" in record.getMessage() for record in caplog.records)


def test_a_callback_in_another_browser_is_refused(client, oidc_cast):
    from django.test import Client

    start = client.get(reverse("oidc:sign-in"))
    callback = provider_sign_in(start["Location"], "ada", role_id="910000000011")

    elsewhere = Client()
    response = elsewhere.get(callback)

    assert response.status_code == 400
    assert "_auth_user_id" not in elsewhere.session


@pytest.mark.parametrize(
    ("pkce", "refused_by"), [(True, "invalid_grant"), (False, "Nonce")], ids=["pkce", "nonce-alone"]
)
def test_a_code_brought_back_under_another_sign_ins_state_is_refused(
    client, oidc_cast, caplog, settings, pkce, refused_by
):
    # With PKCE the provider refuses the code for the other state's verifier; without it, the nonce check does.
    settings.OIDC_USE_PKCE = pkce
    first = client.get(reverse("oidc:sign-in"))
    second = client.get(reverse("oidc:sign-in"))
    callback = provider_sign_in(first["Location"], "ada", role_id="910000000011")
    second_state = re.search(r"state=([^&]+)", second["Location"]).group(1)
    swapped = re.sub(r"state=[^&]+", f"state={second_state}", callback)

    with caplog.at_level(logging.WARNING, logger="sharedcare.oidc"):
        response = client.get(swapped)

    assert response.status_code == 400
    assert not signed_in(client)
    assert any(refused_by in record.getMessage() for record in caplog.records)


def test_the_login_page_offers_the_button_only_when_oidc_is_configured(client, oidc_cast, settings):
    assert "Sign in with NHS Care Identity" in client.get(reverse("login")).content.decode()

    settings.OIDC_ENABLED = False

    assert "Sign in with NHS Care Identity" not in client.get(reverse("login")).content.decode()
    assert client.get(reverse("oidc:sign-in")).status_code == 404
    assert client.get(reverse("oidc:callback"), {"code": "x", "state": "y"}).status_code == 404


def test_password_sign_in_still_works_beside_oidc(client, oidc_cast):
    response = client.post(reverse("login"), {"username": "gp.ada", "password": PASSWORD})

    assert (response.status_code, response["Location"]) == (302, "/")
    assert signed_in(client)


def _break_glass(client, patient, password: str):
    client.post(reverse("records:patient-search"), {"nhs_number": patient.nhs_number})
    return client.post(
        reverse("records:break-glass", kwargs={"public_id": patient.public_id}),
        {
            "glass-reason_code": "emergency-unable-to-consent",
            "glass-reason_text": "Unconscious on arrival",
            "glass-password": password,
        },
    )


def test_break_glass_after_an_oidc_sign_in_rechecks_the_local_password(client, oidc_cast):
    sign_in(client, "cara")

    response = _break_glass(client, oidc_cast.patient_sensitive, PASSWORD)

    assert response.status_code == 303
    assert BreakGlassGrant.objects.get().user_id == oidc_cast.ed_cara.pk


def test_break_glass_is_refused_to_an_oidc_user_without_a_local_password(client, oidc_cast):
    # Accounts made for CIS2 alone have no password to re-check: break-glass stays closed to them, not open.
    cara = oidc_cast.ed_cara
    cara.set_unusable_password()
    cara.save()
    sign_in(client, "cara")
    events_before = AccessEvent.objects.filter(action=AccessEvent.Action.BREAK_GLASS).count()

    response = _break_glass(client, oidc_cast.patient_sensitive, "")

    assert response.status_code == 400 or "Enter your password" in response.content.decode()
    assert not BreakGlassGrant.objects.exists()
    assert AccessEvent.objects.filter(action=AccessEvent.Action.BREAK_GLASS).count() == events_before
    assert "Sedgwick" not in response.content.decode()


def test_the_local_provider_is_given_each_sds_user_with_their_roles_in_cis2s_shape(oidc_cast):
    from sharedcare.oidc_accounts import oidc_accounts

    accounts = {account["login"]: account for account in oidc_accounts()}

    assert set(accounts) == {"gp.ada", "gp.ben", "reception.dan", "ed.cara", "privacy.fay"}
    assert accounts["gp.ada"]["uid"] == "900000000001"
    assert accounts["gp.ada"]["roles"] == [
        {
            "person_roleid": "910000000011",
            "person_orgid": "900000000001-D81001",
            "org_code": "D81001",
            "role_code": "S0000:G0000:R8000",
            "role_name": '"Clinical practitioner"',
        }
    ]
    assert "password" not in accounts["gp.ada"]
