"""In a real Chromium at a phone's width and a laptop's: privacy.fay signs in with her password, is sent to set up
an authenticator, reads the key off the page, confirms a code, is shown her recovery codes once and reaches the
portal; signing in again she is asked for a code, a wrong one is refused, and one of her recovery codes opens it.
Every page is axe-clean (no serious or critical problem) and nothing scrolls sideways."""

import time
from base64 import b32decode
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse
from django_otp.oath import TOTP
from playwright.sync_api import BrowserContext, Page, expect

from tests.builders import PASSWORD, axe_serious_problems

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
NARROWEST = {"width": 320, "height": 640}


@pytest.fixture
def live_cast(transactional_db, cast):
    """The cast, committed, so the live server's thread (its own connection) can see it."""
    cache.clear()
    return cast


def assert_accessible(page: Page, axe: Path, viewport: dict) -> None:
    assert axe_serious_problems(page, axe) == []
    widths = [viewport, NARROWEST] if viewport == PHONE else [viewport]
    for width in widths:
        page.set_viewport_size(width)
        assert not page.evaluate(
            "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
    page.set_viewport_size(viewport)


def code_now(key: bytes, steps_ahead: int = 0) -> str:
    clock = TOTP(key)
    clock.time = time.time() + 30 * steps_ahead
    return f"{clock.token():06d}"


def password_step(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_privacy_officer_sets_up_her_authenticator_and_then_signs_in_with_a_code(
    live_cast, live_server, browser_contexts: Callable[[dict], BrowserContext], axe_script, viewport
):
    page = browser_contexts(viewport).new_page()
    password_step(page, live_server.url, "privacy.fay")

    expect(page.get_by_role("heading", level=1)).to_have_text("Set up your security code")
    expect(page.locator(".mfa-qr-code svg")).to_be_visible()
    assert_accessible(page, axe_script, viewport)
    key = b32decode(page.locator(".mfa-secret").inner_text().replace(" ", ""))
    page.get_by_label("Security code").fill(code_now(key))
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Your recovery codes")
    codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    recovery_code = codes.first.inner_text().strip()
    assert_accessible(page, axe_script, viewport)
    page.get_by_role("link", name="I have kept them, continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Shared care record")
    expect(page.get_by_role("link", name="Alerts")).to_be_visible()

    again = browser_contexts(viewport).new_page()
    password_step(again, live_server.url, "privacy.fay")
    expect(again.get_by_role("heading", level=1)).to_have_text("Enter your security code")
    assert_accessible(again, axe_script, viewport)
    again.goto(f"{live_server.url}{reverse('records:alert-list')}")
    expect(again.get_by_role("heading", level=1)).to_have_text("Enter your security code")
    again.get_by_label("Security code").fill("000000" if code_now(key, 1) != "000000" else "111111")
    again.get_by_role("button", name="Continue").click()
    expect(again.get_by_role("alert")).to_contain_text("That code is not right")
    assert_accessible(again, axe_script, viewport)
    expect(again.get_by_text("Enter one of the recovery codes")).to_be_visible()
    again.get_by_label("Security code").fill(recovery_code)
    again.get_by_role("button", name="Continue").click()
    expect(again.get_by_role("heading", level=1)).to_have_text("Alerts to review")
