"""The portal in a real browser: Debian's Chromium driven by Playwright, against a live server and the cast.

Never downloads a browser: the `browser` fixture in conftest launches /usr/bin/chromium, or skips on a
workstation without it (and fails in CI).
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.builders import PASSWORD

pytestmark = pytest.mark.browser

NHS_NUMBER = "9990000018"


@pytest.fixture
def live_cast(transactional_db, cast):
    """The cast, committed, so the live server's thread (its own connection) can see it."""
    return cast


@pytest.fixture
def page(live_cast, live_server, browser: Browser) -> Iterator[Page]:
    # The cast is written before Playwright starts: once its event loop runs, database work from this thread would
    # open a second connection that the test's teardown never closes.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Shared care record")


def test_gp_finds_a_patient_and_reads_entries_from_three_partners(page: Page, live_server, tmp_path):
    log_in(page, live_server.url, "gp.ada")
    page.get_by_label("NHS number").fill("999 000 0018")
    page.get_by_role("button", name="Search").click()

    expect(page).to_have_url(re.compile(r"/patients/[0-9a-f-]{36}/$"))
    assert NHS_NUMBER not in page.url
    expect(page.get_by_role("heading", level=1)).to_have_text("Alice ASHBY")
    sources = page.locator("td.source").all_inner_texts()
    partners = {
        "Riverside Surgery (D81001)",
        "Cambridge University Hospitals (RGT)",
        "Cambridgeshire and Peterborough NHS FT (RT1)",
        "Cambridgeshire County Council (CCC01)",
    }
    assert len(partners & {source.strip() for source in sources}) >= 3
    # Every entry row names its source.
    assert all(source.strip() for source in sources)
    hrefs = page.locator("a[href]").evaluate_all("links => links.map(link => link.href)")
    assert hrefs
    for href in hrefs:
        assert NHS_NUMBER not in href

    screenshot_dir = Path(os.environ.get("BROWSER_SCREENSHOT_DIR") or tmp_path)
    screenshot_dir.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot_dir / "record-page.png"), full_page=True)


def test_keyboard_user_skips_to_content_and_tabs_to_the_search_field(page: Page, live_server):
    log_in(page, live_server.url, "gp.ada")
    page.goto(f"{live_server.url}/patients/")

    page.keyboard.press("Tab")
    skip_link = page.get_by_role("link", name="Skip to main content")
    expect(skip_link).to_be_focused()
    expect(skip_link).to_be_visible()

    field = page.get_by_label("NHS number")
    for _ in range(15):
        if field.evaluate("element => element === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(field).to_be_focused()

    page.keyboard.type("999 000 0019")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("the check digit does not match")
    expect(page.get_by_role("link", name=re.compile("check digit"))).to_have_attribute(
        "href", "#id_nhs_number"
    )

    field.fill("")
    field.focus()
    page.keyboard.type("999 000 0018")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/patients/[0-9a-f-]{36}/$"))
    assert NHS_NUMBER not in page.url
