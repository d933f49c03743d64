"""Finding a patient by name and date of birth in a real browser (Debian's Chromium via Playwright) at desktop and
phone widths: gp.ada types a family name, misspelt, and a birth date, sees her patient and opens the record; a
search that finds nobody keeps what she typed; no name or birth date reaches a URL; axe-core finds nothing serious.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.builders import axe_serious_problems, log_in, shoot

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def live_cast(transactional_db, cast):
    """The cast, committed, so the live server's thread (its own connection) can see it."""
    return cast


def find_by_name(page: Page, family_name: str, birth_date: str) -> None:
    form = page.locator("#name-search")
    form.get_by_label("Family name").fill(family_name)
    form.get_by_label("Date of birth").fill(birth_date)
    form.get_by_role("button", name="Find patients").click()


def no_sideways_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_gp_finds_her_patient_by_name_and_birth_date_and_a_miss_keeps_the_input(
    live_cast, live_server, browser_contexts, axe_script, tmp_path, viewport
):
    width = viewport["width"]
    page = browser_contexts(viewport).new_page()
    log_in(page, live_server.url, "gp.ada")
    page.get_by_role("link", name="Search by name and date of birth").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Find a patient")
    expect(page.get_by_role("heading", name="By NHS number")).to_be_visible()
    expect(page.get_by_role("heading", name="By name and date of birth")).to_be_visible()
    assert axe_serious_problems(page, axe_script) == []
    shoot(page, tmp_path, f"name-search-empty-{width}")

    # Another practice's patient, exact name and birth date: nobody, and what she typed is still there.
    find_by_name(page, "Barton", "1962-07-01")
    expect(page.locator(".name-search-miss")).to_contain_text("No patient found with those details")
    expect(page.get_by_label("Family name")).to_have_value("Barton")
    expect(page.get_by_label("Date of birth")).to_have_value("1962-07-01")
    expect(page.locator("main")).not_to_contain_text("BARTON")
    assert "Barton" not in page.url and "1962" not in page.url
    assert axe_serious_problems(page, axe_script) == []
    shoot(page, tmp_path, f"name-search-miss-{width}")

    # Her own patient, the family name misspelt.
    find_by_name(page, "Ashbey", "1950-03-14")
    rows = page.locator(".name-search-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Alice ASHBY")
    expect(rows.first).to_contain_text("999 000 0018")
    expect(rows.first).to_contain_text("Riverside Surgery (D81001)")
    assert "Ashbey" not in page.url and "1950" not in page.url
    assert no_sideways_scroll(page)
    if width < 576:
        # Stacked rows: each cell on its own line, named by its column.
        cell = rows.first.locator('td[data-label="NHS number"]')
        assert cell.evaluate("cell => getComputedStyle(cell).display") == "block"
        assert "NHS number" in cell.evaluate("cell => getComputedStyle(cell, '::before').content")
    assert axe_serious_problems(page, axe_script) == []
    shoot(page, tmp_path, f"name-search-found-{width}")

    rows.first.get_by_role("link", name="Alice ASHBY").click()
    expect(page).to_have_url(re.compile(r"/patients/[0-9a-f-]{36}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Alice ASHBY")
    shoot(page, tmp_path, f"name-search-record-{width}")
