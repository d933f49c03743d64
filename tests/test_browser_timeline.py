"""The patient timeline in a real browser, on the demo: gp.ada filters her grandmother's timeline (999 000 0034)
by partner on a desk screen and on a phone, and the page stays accessible and never scrolls sideways."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import reverse
from playwright.sync_api import BrowserContext, expect

from records.models import Patient
from tests.builders import PASSWORD, axe_serious_problems, demo_loaded, log_in, shoot

pytestmark = pytest.mark.browser

VIEWPORTS = ({"width": 1366, "height": 900}, {"width": 390, "height": 844})


@pytest.fixture
def timeline_path(transactional_db, monkeypatch) -> str:
    """The demo, committed so the live server sees it, with the cast's password; the timeline of 999 000 0034."""
    demo_loaded(monkeypatch, PASSWORD)
    patient = Patient.objects.get(nhs_number="9990000034")
    return reverse("records:patient-timeline", kwargs={"public_id": patient.public_id})


def test_gp_filters_the_timeline_by_partner(
    timeline_path,
    live_server,
    browser_contexts: Callable[[dict], BrowserContext],
    axe_script,
    tmp_path,
):
    # Both widths on one load of the demo.
    for viewport in VIEWPORTS:
        width = viewport["width"]
        page = browser_contexts(viewport).new_page()
        log_in(page, live_server.url, "gp.ada")
        page.goto(live_server.url + timeline_path)
        expect(page.get_by_role("heading", level=1)).to_contain_text("timeline")
        sources = page.locator("td.source")
        everything = sources.count()
        assert len({text.strip() for text in sources.all_inner_texts()}) > 1, width
        assert axe_serious_problems(page, axe_script) == [], width
        shoot(page, tmp_path, f"timeline-{width}")

        page.get_by_label("Partner").select_option("RGT")
        page.get_by_role("button", name="Show events").click()

        expect(page.get_by_label("Partner")).to_have_value("RGT")
        shown = [text.strip() for text in sources.all_inner_texts()]
        assert shown, width
        assert all(text.endswith("(RGT)") for text in shown), width
        assert len(shown) < everything, width
        assert "partner=RGT" in page.url
        assert axe_serious_problems(page, axe_script) == [], width
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), width
        if width < 576:
            # On a phone each row is a card, every cell after its column's name.
            first = page.locator("table.stack-table tbody tr").first
            assert first.evaluate("row => getComputedStyle(row).display") == "block"
            label = first.locator("td.source").evaluate("cell => getComputedStyle(cell, '::before').content")
            assert label == '"Source: "'
        shoot(page, tmp_path, f"timeline-{width}-filtered")
