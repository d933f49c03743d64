"""Sign-in lockout in a real browser (Debian's Chromium through Playwright): wrong passwords until the pair is locked
out, then the right one refused with a plain page; the privacy officer sees the failures."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.builders import PASSWORD, log_in

pytestmark = pytest.mark.browser


def test_the_right_password_is_refused_once_wrong_ones_reach_the_limit_and_the_privacy_officer_sees_them(
    transactional_db, cast, live_server, browser_contexts
):
    page = browser_contexts({"width": 390, "height": 844}).new_page()
    page.goto(f"{live_server.url}/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        page.get_by_label("Username").fill("gp.ada")
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    page.get_by_label("Username").fill("gp.ada")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in paused")

    page.goto(f"{live_server.url}/")
    page.get_by_label("Username").fill("gp.ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in paused")
    expect(page.locator("main")).to_contain_text(f"{settings.AXES_COOLOFF_TIME.seconds // 60} minutes")

    officer = browser_contexts({"width": 1366, "height": 900}).new_page()
    log_in(officer, live_server.url, "privacy.fay")
    officer.get_by_role("link", name="Audit").click()
    officer.get_by_role("link", name="Failed sign-ins").click()
    expect(officer.locator(".lockout")).to_contain_text("gp.ada")
    expect(officer.locator(".sign-in-failure")).to_have_count(settings.AXES_FAILURE_LIMIT + 1)
