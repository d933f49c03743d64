"""The back office in a real browser, as admin.gus at a desktop's width and a phone's: reached from the portal, a
feed's list readable without scrolling sideways, its sections ticked, Run now, a CSV mapping previewed on the demo's
extract, and a quarantined record fixed and replayed on its own page; no serious or critical axe-core violation on
any of those pages.

Debian's Chromium driven by Playwright (the `browser` fixture in conftest); never downloads a browser.
"""

import json
import os
import time
from datetime import date

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from consent.services import feed_support_grant
from records.demo.generator import caseload_extract, demo_patients
from records.demo.partners import CASELOAD_MAPPING
from records.models import Feed, QuarantinedRecord, RecordEntry
from records.sections import Section
from tests.builders import axe_serious_problems, condition, ingest, invalid_condition, log_in, ndjson, shoot

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
REFERENCE = date(2025, 3, 1)


@pytest.fixture
def back_office(transactional_db, cast, settings, tmp_path) -> dict:
    """Committed before the browser starts: an inbox feed with a file waiting, the council's CSV caseload feed, and
    an invalid record quarantined from the hospital, whose feeds admin.gus supports."""
    settings.FEED_INBOX_ROOT = tmp_path / "inbox"
    feed = cast.cuh_feed
    feed.source = Feed.Source.INBOX
    feed.save(update_fields=["source"])
    incoming = tmp_path / "inbox" / feed.code / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "waiting.ndjson").write_bytes(ndjson(condition("browser-run", cast.patient_a)))
    settled = time.time() - 60
    os.utime(incoming / "waiting.ndjson", (settled, settled))
    caseload = Feed.objects.create(
        code="county-caseload",
        organisation=cast.county,
        name="Adult social care caseload extract",
        format=Feed.Format.CSV,
        state=Feed.State.LIVE,
        csv_mapping=dict(CASELOAD_MAPPING),
    )
    feed_support_grant(user_id=cast.admin_gus.pk, organisations=[cast.cuh])
    ingest(cast.cuh_feed, invalid_condition("browser-fix", cast.patient_a))
    return {
        "feed": feed,
        "caseload": caseload,
        "record": QuarantinedRecord.objects.get(source_id="browser-fix"),
        "sample": caseload_extract(demo_patients(60, 7, REFERENCE), REFERENCE),
    }


def _accessible(page: Page, axe_script, where: str) -> None:
    assert axe_serious_problems(page, axe_script) == [], where


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1366", "390"])
def test_admin_gus_works_the_back_office_from_the_portal(
    back_office, cast, live_server, browser_contexts, axe_script, tmp_path, viewport
):
    width = viewport["width"]
    page = browser_contexts(viewport).new_page()
    log_in(page, live_server.url, "admin.gus")

    # From the portal's header to the back office's index.
    page.get_by_role("link", name="Back office").click()
    expect(page.locator("#site-name")).to_have_text("sharedcare back office")
    _accessible(page, axe_script, "index")
    shoot(page, tmp_path, f"backoffice-index-{width}")

    # The feed list: its key columns without scrolling sideways on a desktop.
    page.goto(live_server.url + reverse("admin:records_feed_changelist"))
    expect(page.locator("#result_list")).to_contain_text("cuh-epr")
    shoot(page, tmp_path, f"backoffice-feeds-{width}")
    if width == DESKTOP["width"]:
        for column in (
            "feed",
            "organisation",
            "format_and_source",
            "state",
            "last_success",
            "quarantine_pending",
        ):
            expect(page.locator(f"#result_list th.column-{column}")).to_be_in_viewport()
        overflow = page.evaluate(
            "() => { const r = document.querySelector('#changelist .results');"
            " return [r.scrollWidth - r.clientWidth, document.documentElement.scrollWidth - innerWidth]; }"
        )
        assert overflow == [0, 0]
    _accessible(page, axe_script, "feed list")

    # A feed's page: sections ticked from the PRSB headings, then Run now.
    feed = back_office["feed"]
    page.goto(live_server.url + reverse("admin:records_feed_change", args=[feed.pk]))
    _accessible(page, axe_script, "feed page")
    shoot(page, tmp_path, f"backoffice-feed-{width}")
    page.get_by_label("Problems and diagnoses").check()
    page.get_by_label("Encounters").check()
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    feed.refresh_from_db()
    assert feed.sections == [Section.PROBLEMS, Section.ENCOUNTERS]
    page.get_by_role("button", name="Run now").click()
    expect(page.locator(".messagelist")).to_contain_text("Queued a run of cuh-epr.")

    # The CSV mapping, previewed on the demo council's extract.
    caseload = back_office["caseload"]
    page.goto(live_server.url + reverse("admin:records_feed_csv_mapping", args=[caseload.pk]))
    expect(page.get_by_label("NHS number")).to_have_value("NHS Number")
    page.get_by_label("A sample extract (CSV)").set_input_files(
        files=[{"name": "caseload.csv", "mimeType": "text/csv", "buffer": back_office["sample"]}]
    )
    page.get_by_role("button", name="Preview the sample").click()
    preview = page.locator(".csv-preview")
    expect(preview).to_contain_text("Columns in the sample: NHS Number, Record Type, Case Ref")
    expect(preview.locator(".row-ok").first).to_contain_text("EpisodeOfCare ASC-")
    _accessible(page, axe_script, "CSV mapping preview")
    shoot(page, tmp_path, f"backoffice-csv-preview-{width}")

    # A quarantined record: fixed, checked and replayed on its own page.
    record = back_office["record"]
    page.goto(live_server.url + reverse("admin:records_quarantinedrecord_change", args=[record.pk]))
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)
    _accessible(page, axe_script, "quarantined record")
    shoot(page, tmp_path, f"backoffice-quarantined-{width}")
    page.get_by_role("button", name="Fix and replay…").click()
    payload = page.get_by_label("What the partner sent")
    expect(payload).to_have_value(record.raw_payload)
    payload.fill(json.dumps(condition("browser-fix", cast.patient_a, display="Asthma, fixed in the browser")))
    page.get_by_role("button", name="Check").click()
    expect(page.locator(".check-passed")).to_contain_text("Condition browser-fix")
    _accessible(page, axe_script, "fix and replay")
    page.get_by_role("button", name="Save and replay").click()
    expect(page.locator(".messagelist")).to_contain_text("1 ingested, 0 quarantined again")
    expect(page.locator(".quarantine-actions")).to_contain_text("nothing more to do")
    shoot(page, tmp_path, f"backoffice-replayed-{width}")
    assert RecordEntry.objects.get(source_id="browser-fix").display == "Asthma, fixed in the browser"
