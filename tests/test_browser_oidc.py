"""Signing in with NHS Care Identity in a real Chromium: the button on the sign-in page, the local provider's own
sign-in and role pages, and back to sharedcare acting under the chosen role, or to the refusal page."""

import pytest
from playwright.sync_api import expect

from tests.builders import OIDC_PASSWORD

pytestmark = pytest.mark.browser


def _sign_in_at_provider(page, base_url: str, role_label: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_role("link", name="Sign in with NHS Care Identity").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(OIDC_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Select your role")
    page.get_by_label(role_label).check()
    page.get_by_role("button", name="Continue").click()


def test_a_clinician_signs_in_through_nhs_care_identity_and_acts_under_the_role_she_chose(
    live_server, browser_contexts, oidc_cast
):
    page = browser_contexts({"width": 1280, "height": 800}).new_page()

    _sign_in_at_provider(page, live_server.url, "at D81001")

    expect(page.get_by_role("heading", level=1)).to_have_text("Shared care record")
    expect(page.locator(".acting-role")).to_contain_text("Clinical practitioner at Riverside Surgery")
    expect(page.get_by_role("link", name="Change role")).to_have_count(0)


def test_a_role_sharedcare_does_not_know_ends_on_the_refusal_page_signed_out(
    live_server, browser_contexts, oidc_cast
):
    page = browser_contexts({"width": 390, "height": 844}).new_page()

    _sign_in_at_provider(page, live_server.url, "at RGN")

    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your selected role is not set up in sharedcare"
    )
    page.goto(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
