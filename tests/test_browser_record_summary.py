"""The record's summary in a real browser: what a clinician must not miss is on the first screen, at a desktop width
and at a phone's, nothing scrolls sideways, and axe-core finds nothing serious.

Against the demo (loaded once for the test), as gp.ada opening the showcase patient 9990000034 of their practice.
Debian's Chromium driven by Playwright; never downloads a browser.
"""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import BrowserContext, Page, expect

from records.models import Patient
from tests.builders import axe_serious_problems, demo_loaded, shoot

pytestmark = pytest.mark.browser

DEMO_PASSWORD = "demo-Fenland-heron-42"
SHOWCASE = "9990000034"
# What the first screen must show, as the banners word it.
MUST_NOT_MISS = {
    "allergies": re.compile(r"peanut", re.I),
    "legal": re.compile(r"Advance decision to refuse treatment", re.I),
    "safeguarding": re.compile(r"safeguarding enquiry", re.I),
    "communication": re.compile(r"British Sign Language interpreter", re.I),
}
WIDTHS = ({"width": 1366, "height": 900}, {"width": 390, "height": 844})


@pytest.fixture
def showcase(transactional_db, monkeypatch) -> Patient:
    """The demo, committed, so the live server's thread sees it; loaded before Playwright starts."""
    demo_loaded(monkeypatch, DEMO_PASSWORD, patients=12)
    return Patient.objects.get(nhs_number=SHOWCASE)


def sign_in(context: BrowserContext, base_url: str) -> Page:
    page = context.new_page()
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill("gp.ada")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Shared care record")
    return page


def test_what_must_not_be_missed_is_on_the_first_screen(
    showcase, live_server, browser_contexts, axe_script, tmp_path
):
    # Both widths on one load of the demo.
    for viewport in WIDTHS:
        width = viewport["width"]
        page = sign_in(browser_contexts(viewport), live_server.url)

        page.goto(
            live_server.url + reverse("records:patient-detail", kwargs={"public_id": showcase.public_id})
        )

        expect(page.get_by_role("heading", level=1)).to_contain_text("Charlotte")
        shoot(page, tmp_path, f"record-summary-{width}")
        banners = page.locator("#must-not-miss")
        for kind, words in MUST_NOT_MISS.items():
            item = banners.locator(f".record-banner-{kind} .record-item").filter(has_text=words).first
            expect(item).to_be_visible()
            box = item.bounding_box()
            assert box is not None, (width, kind)
            # Wholly inside the first screen, without scrolling.
            assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], (width, kind, box)
            # Its source and date are on it.
            expect(item.locator(".record-item-source time")).to_have_count(1)
        expect(page.locator(".why-access")).to_be_visible()
        assert page.locator(".why-access").bounding_box()["y"] < viewport["height"], width
        # Nothing scrolls sideways; on a phone every row still names its source.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        sources = page.locator("td.source")
        assert sources.count() > 10, width
        for index in range(sources.count()):
            box = sources.nth(index).bounding_box()
            assert box is not None and box["x"] + box["width"] <= width + 1, (width, index)
        assert axe_serious_problems(page, axe_script) == [], width
