"""Self-claim, break-glass and the privacy officer's review in a real browser: Debian's Chromium driven by
Playwright against a live server and the cast, at desktop and phone widths.

ed.cara (hospital) has no relationship with Brian Barton or Tamsin Sedgwick (both registered at practices). She declares
one with Brian and breaks the glass on Sam; privacy.fay sees both alerts and records an outcome; once the grants have
expired (moved into the past: the rules judge expiry at every decision, so no clock needs to move), both records are
closed again.
"""

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from consent.models import BreakGlassGrant, SelfClaimedRelationship
from tests.builders import PASSWORD, in_own_thread, log_in, shoot

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}


@pytest.fixture
def live_cast(transactional_db, cast):
    """The cast, committed, so the live server's thread (its own connection) can see it."""
    return cast


@pytest.fixture
def contexts(live_cast, live_server, browser_contexts) -> Callable[[dict], BrowserContext]:
    return browser_contexts


def find(page: Page, typed: str) -> None:
    page.get_by_role("link", name="Find a patient").click()
    page.get_by_label("NHS number").fill(typed)
    page.get_by_role("button", name="Search").click()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_self_claim_and_break_glass_reach_the_privacy_officer_and_close_on_expiry(
    contexts, live_server, tmp_path, viewport
):
    width = viewport["width"]
    cara = contexts(viewport).new_page()
    log_in(cara, live_server.url, "ed.cara")

    # No relationship with Brian: the access page names only the number she typed.
    find(cara, "999 000 0026")
    expect(cara).to_have_url(re.compile(r"/patients/[0-9a-f-]{36}/access/$"))
    expect(cara.get_by_role("heading", level=1)).to_have_text("No care relationship recorded")
    expect(cara.locator("main")).to_contain_text("NHS number 999 000 0026 you searched for")
    expect(cara.locator("main")).not_to_contain_text("Brian")
    shoot(cara, tmp_path, f"access-page-{width}")
    claim = cara.locator("section", has=cara.get_by_role("heading", name="Declare a care relationship"))
    claim.get_by_label("Reason").select_option(label="Direct care (unplanned)")
    claim.get_by_label("Why you need this record").fill("Attended ED with chest pain")
    claim.get_by_role("button", name="Declare relationship and open the record").click()

    expect(cara).to_have_url(re.compile(r"/patients/[0-9a-f-]{36}/$"))
    expect(cara.get_by_role("heading", level=1)).to_have_text("Brian BARTON")
    expect(cara.locator(".self-claimed-marker")).to_have_text("Self-claimed")
    expect(cara.locator(".why-access")).to_contain_text("Self-claimed relationship SC-")
    brian_record = cara.url
    shoot(cara, tmp_path, f"self-claimed-record-{width}")

    # Break-glass on Sam: the password again, then a banner on every page.
    find(cara, "944 930 6613")
    expect(cara).to_have_url(re.compile(r"/access/$"))
    glass = cara.locator("section", has=cara.get_by_role("heading", name="Break the glass"))
    glass.get_by_label("Reason").select_option(label="Emergency: the patient is unable to consent")
    glass.get_by_label("Why you need this record now").fill("Collapsed in the car park, unresponsive")
    glass.get_by_label("Your password").fill(PASSWORD)
    glass.get_by_role("button", name="Break the glass and open the record").click()

    expect(cara.get_by_role("heading", level=1)).to_have_text("Tamsin SEDGWICK")
    banner = cara.locator(".break-glass-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("BG-")
    expect(banner).not_to_contain_text("Tamsin")
    sam_record = cara.url
    shoot(cara, tmp_path, f"break-glass-record-{width}")
    cara.get_by_role("link", name="sharedcare").click()
    expect(cara.locator(".break-glass-banner")).to_be_visible()
    cara.get_by_role("link", name="Find a patient").click()
    expect(cara.locator(".break-glass-banner")).to_be_visible()
    reference = re.search(r"BG-[A-Z0-9]{8}", banner.inner_text())
    assert reference is not None

    # privacy.fay sees both alerts, opens the break-glass one and records an outcome.
    fay = contexts(viewport).new_page()
    log_in(fay, live_server.url, "privacy.fay")
    fay.get_by_role("link", name="Alerts").click()
    expect(fay.get_by_role("heading", level=1)).to_have_text("Alerts to review")
    rows = fay.locator(".alert-row")
    expect(rows).to_have_count(2)
    expect(fay.locator("main")).to_contain_text("Self-claimed relationship")
    expect(fay.locator("main")).to_contain_text("ed.cara")
    expect(fay.locator("main")).not_to_contain_text("Brian")
    expect(fay.locator("main")).not_to_contain_text("Tamsin")
    shoot(fay, tmp_path, f"alert-queue-{width}")
    fay.get_by_role("link", name=reference.group(0)).click()
    expect(fay.locator("main")).to_contain_text("Tamsin SEDGWICK")
    expect(fay.locator("main")).to_contain_text("944 930 6613")
    expect(fay.locator(".events")).to_contain_text("Break glass")
    fay.get_by_label("Inappropriate").check()
    fay.get_by_label("Note (optional)").fill("No record of attendance; referred to line manager")
    fay.get_by_role("button", name="Record outcome").click()
    expect(fay.locator(".review-outcome")).to_contain_text("Inappropriate")
    expect(fay.locator(".review-outcome")).to_contain_text("privacy.fay")
    shoot(fay, tmp_path, f"alert-reviewed-{width}")
    fay.get_by_role("link", name="Back to alerts").click()
    expect(rows.first).to_contain_text("Open")
    expect(rows.last).to_contain_text("Inappropriate")

    # Time passes beyond both grants' ends: both records are closed again, and the banner has gone.
    def expire() -> None:
        past = timezone.now() - timedelta(minutes=1)
        SelfClaimedRelationship.objects.update(valid_until=past)
        BreakGlassGrant.objects.update(valid_until=past)

    in_own_thread(expire)
    for record in (brian_record, sam_record):
        cara.goto(record)
        expect(cara.get_by_role("heading", level=1)).to_have_text("Page not found")
        expect(cara.locator("main")).not_to_contain_text("BARTON")
        expect(cara.locator("main")).not_to_contain_text("SEDGWICK")
        expect(cara.locator(".break-glass-banner")).to_have_count(0)


def test_ending_break_glass_from_the_banner_closes_the_record_at_once(contexts, live_server):
    cara = contexts(DESKTOP).new_page()
    log_in(cara, live_server.url, "ed.cara")
    find(cara, "944 930 6613")
    glass = cara.locator("section", has=cara.get_by_role("heading", name="Break the glass"))
    glass.get_by_label("Reason").select_option(label="The patient has consented")
    glass.get_by_label("Why you need this record now").fill("Patient asked me to look")
    glass.get_by_label("Your password").fill(PASSWORD)
    glass.get_by_role("button", name="Break the glass and open the record").click()
    expect(cara.get_by_role("heading", level=1)).to_have_text("Tamsin SEDGWICK")
    record = cara.url

    cara.locator(".break-glass-banner").get_by_role("button", name=re.compile(r"^End BG-")).click()

    expect(cara.get_by_role("heading", level=1)).to_have_text("Shared care record")
    expect(cara.locator(".break-glass-banner")).to_have_count(0)
    cara.goto(record)
    expect(cara.get_by_role("heading", level=1)).to_have_text("Page not found")
