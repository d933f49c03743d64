"""The back office in a real browser: a quarantined payload is masked, and the Reveal button shows it, audited.

Debian's Chromium driven by Playwright (the `browser` fixture in conftest); never downloads a browser.
"""

import re
from collections.abc import Iterator

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect

from consent.services import feed_support_grant
from records.models import IngestRun, QuarantinedRecord
from tests.builders import PASSWORD, second_factor_pass

pytestmark = pytest.mark.browser

PAYLOAD = '{"resourceType": "Condition", "id": "browser-marker", "note": "ONLY-IN-THE-PAYLOAD"}'


@pytest.fixture
def quarantined(transactional_db, cast) -> QuarantinedRecord:
    """Committed before the browser starts, so the live server's thread sees it."""
    feed_support_grant(user_id=cast.admin_gus.pk, organisations=[cast.cuh])
    run = IngestRun.objects.create(feed=cast.cuh_feed, status=IngestRun.Status.SUCCEEDED)
    return QuarantinedRecord.objects.create(
        feed=cast.cuh_feed,
        ingest_run=run,
        reason=QuarantinedRecord.Reason.UNKNOWN_PATIENT,
        detail="no such patient",
        resource_type="Condition",
        source_id="browser-marker",
        raw_payload=PAYLOAD,
        payload_hash="0" * 64,
        nhs_number=cast.patient_a.nhs_number,
    )


@pytest.fixture
def page(quarantined, live_server, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


def test_the_payload_is_masked_until_the_reveal_button_and_both_are_in_the_trail(
    page: Page, live_server, quarantined
):
    page.goto(live_server.url + reverse("admin:login"))
    page.get_by_label("Username").fill("admin.gus")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    second_factor_pass(page, "admin.gus")

    page.goto(live_server.url + reverse("admin:records_quarantinedrecord_change", args=[quarantined.pk]))
    expect(page.locator("#content-main")).to_contain_text("browser-marker")
    expect(page.locator("#content-main")).not_to_contain_text("ONLY-IN-THE-PAYLOAD")
    expect(page.locator(".masked").first).to_contain_text("Masked")

    page.get_by_role("button", name="Reveal (this is audited)").last.click()

    expect(page).to_have_url(re.compile(r"/reveal/$"))
    expect(page.locator("pre.revealed").last).to_contain_text("ONLY-IN-THE-PAYLOAD")
    page.goto(live_server.url + reverse("admin:audit_accessevent_changelist"))
    expect(page.locator("#result_list")).to_contain_text("Reveal masked data")
    expect(page.locator("#result_list")).to_contain_text("View document")
