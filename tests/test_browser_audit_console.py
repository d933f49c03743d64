"""The privacy officer's audit console in a real browser: Debian's Chromium driven by Playwright against a live server
and the cast, at a laptop's width and a phone's.

gp.ada opens Alice Ashby's record (999 000 0018). privacy.fay opens the console from the nav, searches the trail by
Alice's NHS number, finds gp.ada's access, and opens gp.ada's timeline. The NHS number is in no address the browser
visits, and axe-core finds no serious or critical problem on any of the three pages.
"""

import re
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import BrowserContext, expect

from tests.builders import axe_serious_problems, in_own_thread, log_in, shoot

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
NHS_NUMBER_IN_URL = re.compile(r"999\D{0,3}000\D{0,3}0018")


@pytest.fixture
def live_cast(transactional_db, cast):
    """The cast, committed, so the live server's thread (its own connection) can see it."""
    return cast


@pytest.fixture
def contexts(live_cast, live_server, browser_contexts) -> Callable[[dict], BrowserContext]:
    return browser_contexts


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_privacy_officer_finds_gp_adas_access_by_nhs_number_and_opens_her_timeline(
    contexts, live_cast, live_server, axe_script, tmp_path, viewport
):
    cast = live_cast

    def ada_opens_alice() -> None:
        ada = Client()
        ada.force_login(cast.gp_ada)
        ada.post(reverse("records:patient-search"), {"nhs_number": cast.patient_a.nhs_number})
        ada.get(reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id}))

    in_own_thread(ada_opens_alice)
    width = viewport["width"]
    fay = contexts(viewport).new_page()
    visited: list[str] = []
    fay.on("framenavigated", lambda frame: visited.append(frame.url))
    log_in(fay, live_server.url, "privacy.fay")

    fay.get_by_role("link", name="Audit", exact=True).click()
    expect(fay.get_by_role("heading", level=1)).to_have_text("Audit console")
    expect(fay.locator("svg.bar-chart")).to_have_count(2)
    fay.get_by_text("Accesses per day as a table").click()
    expect(fay.get_by_role("table", name=re.compile("Accesses per day"))).to_be_visible()
    shoot(fay, tmp_path, f"audit-console-{width}")
    assert axe_serious_problems(fay, axe_script) == []

    fay.get_by_label("NHS number").fill("999 000 0018")
    fay.get_by_role("button", name="Search").click()
    expect(fay.get_by_role("heading", level=1)).to_have_text("Search the access trail")
    expect(fay).to_have_url(re.compile(r"/ig/audit/events/\?search=[\w-]+$"))
    expect(fay.locator(".searched-patient")).to_contain_text("Alice ASHBY")
    ada_rows = fay.locator("tr.event-row", has=fay.get_by_role("link", name="gp.ada"))
    expect(ada_rows.filter(has_text="View record")).to_have_count(1)
    expect(ada_rows.filter(has_text="View record")).to_contain_text("Riverside Surgery (D81001)")
    expect(ada_rows.filter(has_text="View record")).to_contain_text("Registered GP practice")
    shoot(fay, tmp_path, f"audit-search-{width}")
    assert axe_serious_problems(fay, axe_script) == []

    ada_rows.filter(has_text="View record").get_by_role("link", name="gp.ada").click()
    expect(fay.get_by_role("heading", level=1)).to_have_text("Activity of gp.ada")
    expect(fay.locator("tr.event-row").filter(has_text="View record")).to_contain_text("Alice ASHBY")
    shoot(fay, tmp_path, f"audit-timeline-{width}")
    assert axe_serious_problems(fay, axe_script) == []

    assert any("/ig/audit/users/" in url for url in visited)
    for url in visited:
        assert not NHS_NUMBER_IN_URL.search(url), url
