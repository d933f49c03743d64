"""The public object-to-share form in a real browser: Debian's Chromium driven by Playwright against a live server and
the cast, on a phone and on a desktop.

Brian Barton (999 000 0026) objects to what CPFT (RT1) records being shared: he meets the error summary first, then
fills the form, checks his answers, sends it, is given a reference and finds his request on the status page. axe-core
checks every page at both widths and finds no serious or critical problem, and no page scrolls sideways at 320 px.
"""

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.cache import cache
from playwright.sync_api import Browser, Page, expect

from consent.models import Objection
from tests.builders import axe_serious_problems, in_own_thread, shoot

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
NARROWEST = {"width": 320, "height": 640}


@pytest.fixture
def live_cast(transactional_db, cast):
    """The cast, committed, so the live server's thread (its own connection) can see it; rate limits start at
    nothing."""
    cache.clear()
    return cast


@pytest.fixture
def phone_or_desktop(request, live_cast, live_server, browser: Browser) -> Iterator[Callable[[dict], Page]]:
    pages: list[Page] = []

    def open_page(viewport: dict) -> Page:
        context = browser.new_context(viewport=viewport, locale="en-GB")
        context.set_default_timeout(15_000)
        page = context.new_page()
        pages.append(page)
        return page

    try:
        yield open_page
    finally:
        for page in pages:
            page.context.close()


def scrolls_sideways(page: Page) -> bool:
    return bool(
        page.evaluate("() => document.documentElement.scrollWidth > document.documentElement.clientWidth")
    )


def assert_accessible(page: Page, axe: Path, viewport: dict) -> None:
    assert axe_serious_problems(page, axe) == []
    assert not scrolls_sideways(page)
    if viewport == PHONE:
        page.set_viewport_size(NARROWEST)
        assert not scrolls_sideways(page)
        page.set_viewport_size(PHONE)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_patient_objects_to_cpft_sharing_gets_a_reference_and_finds_the_request(
    phone_or_desktop, live_server, axe_script, tmp_path, viewport
):
    width = viewport["width"]
    page = phone_or_desktop(viewport)
    page.goto(f"{live_server.url}/object-to-share/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Object to your record being shared")
    expect(page.locator("main")).to_contain_text("your allergies, the medicines you take")
    assert_accessible(page, axe_script, viewport)
    shoot(page, tmp_path, f"public-form-{width}")

    # Sent empty: the error summary takes focus and each message leads to its question.
    page.get_by_role("button", name="Continue").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Select who you are asking for")
    expect(summary).to_contain_text("Enter the date of birth")
    expect(summary).to_contain_text("Select what you want to stop being shared")
    expect(page).to_have_title(re.compile(r"^Error: "))
    assert_accessible(page, axe_script, viewport)
    shoot(page, tmp_path, f"public-form-errors-{width}")
    summary.get_by_role("link", name="Enter the date of birth").click()
    expect(page.get_by_label("Day")).to_be_focused()

    page.get_by_label("Myself").check()
    page.get_by_label("First name").fill("Brian")
    page.get_by_label("Last name").fill("Barton")
    page.get_by_label("Day").fill("1")
    page.get_by_label("Month").fill("7")
    page.get_by_label("Year").fill("1962")
    page.get_by_label("NHS number (optional)").fill("999 000 0026")
    page.get_by_label("Information from some organisations").check()
    page.locator("#reveal-from-partners").get_by_label("Cambridgeshire and Peterborough NHS FT").check()
    expect(page.locator("#reveal-to-partners")).to_be_hidden()
    page.get_by_label("Why do you object? (optional)").fill("My mental health care is private to me.")
    page.get_by_label("Email", exact=True).check()
    page.get_by_label("Email address").fill("brian@example.org")
    assert_accessible(page, axe_script, viewport)
    shoot(page, tmp_path, f"public-form-filled-{width}")
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Check your answers before sending your request"
    )
    answers = page.locator(".nhsuk-summary-list")
    expect(answers).to_contain_text("Brian Barton")
    expect(answers).to_contain_text("999 000 0026")
    expect(answers).to_contain_text("Information from: Cambridgeshire and Peterborough NHS FT")
    assert_accessible(page, axe_script, viewport)
    shoot(page, tmp_path, f"public-check-{width}")
    page.get_by_role("button", name="Accept and send").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Request sent")
    reference = page.locator(".sc-reference").inner_text()
    assert re.fullmatch(r"OB-[A-Z0-9]{8}", reference)
    expect(page.locator("main")).to_contain_text("one calendar month")
    assert "OB-" not in page.url
    assert_accessible(page, axe_script, viewport)
    shoot(page, tmp_path, f"public-sent-{width}")

    page.get_by_role("link", name="Check where your request stands").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check where your request stands")
    assert_accessible(page, axe_script, viewport)
    page.get_by_label("Your reference").fill(reference.lower())
    page.get_by_label("Day").fill("2")
    page.get_by_label("Month").fill("7")
    page.get_by_label("Year").fill("1962")
    page.get_by_role("button", name="Check").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text(
        "We could not find a request with that reference and date of birth"
    )
    assert_accessible(page, axe_script, viewport)
    shoot(page, tmp_path, f"public-status-not-found-{width}")

    page.get_by_label("Your reference").fill(reference)
    page.get_by_label("Day").fill("1")
    page.get_by_label("Month").fill("7")
    page.get_by_label("Year").fill("1962")
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Where your request stands")
    expect(page.locator(".sc-status")).to_have_text("Received")
    expect(page.locator("main")).to_contain_text("Reply due by")
    assert_accessible(page, axe_script, viewport)
    shoot(page, tmp_path, f"public-status-{width}")

    stored: list[Objection] = []
    in_own_thread(lambda: stored.extend(Objection.objects.all()))
    assert len(stored) == 1
    objection = stored[0]
    assert objection.reference == reference
    assert (objection.nhs_number, objection.scope_from_partners) == ("9990000026", ["RT1"])
    assert objection.patient_id is None


def test_the_robot_trap_cannot_be_reached_by_keyboard(phone_or_desktop, live_server):
    page = phone_or_desktop(DESKTOP)
    page.goto(f"{live_server.url}/object-to-share/")
    page.get_by_label("Your full name").focus()

    reached = []
    while page.evaluate("() => document.activeElement.tagName") != "BUTTON" and len(reached) < 200:
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.getAttribute('name')"))

    assert "contact_by" in reached and "website" not in reached
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Continue"
