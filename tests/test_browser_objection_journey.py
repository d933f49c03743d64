"""A patient's objection from the public form to every read of their record, in a real browser (issue 10's journey).

Brian Barton (999 000 0026), on his phone and signed out, objects to what CPFT (RT1) records being shared. privacy.fay,
in the IG team, verifies him, records clinical advice and upholds the objection; the letter she downloads says so
(read back with pypdf) and the case's change history names her decision. gp.ben, his GP, then finds CPFT's entries
gone from the record with the notice that something is withheld at the patient's request, and Brian's status page
says "Upheld".
"""

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from playwright.sync_api import BrowserContext, Page, expect
from pypdf import PdfReader

from audit.models import AccessEvent
from consent.models import Objection
from records.portal.selectors import OBJECTION_WITHHELD
from records.sections import Section
from tests.builders import in_own_thread, log_in, make_entry

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
CPFT_ENTRY = "Crisis and contingency plan (CPFT)"


@pytest.fixture
def live_cast(transactional_db, cast):
    """The cast, committed so the live server's thread sees it: privacy.fay in the IG team, and an entry CPFT sent
    about Brian Barton beside his GP's."""
    cache.clear()  # the public form's rate limits start at nothing
    cast.privacy_fay.user_permissions.add(
        Permission.objects.get(codename="manage_objections", content_type__app_label="consent")
    )
    make_entry(cast.patient_b, cast.cpft_feed, Section.PLANS, CPFT_ENTRY)
    return cast


@pytest.fixture
def contexts(live_cast, live_server, browser_contexts) -> Callable[[dict], BrowserContext]:
    return browser_contexts


def date_of_birth(page: Page) -> None:
    page.get_by_label("Day").fill("1")
    page.get_by_label("Month").fill("7")
    page.get_by_label("Year").fill("1962")


def open_brians_record(page: Page) -> None:
    page.get_by_role("link", name="Find a patient").first.click()
    page.get_by_label("NHS number").fill("999 000 0026")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Brian BARTON")


def test_an_objection_from_the_public_form_is_upheld_and_holds_on_the_gps_next_read(contexts, live_server):
    base = live_server.url

    # Before: his GP sees CPFT's entry.
    ben = contexts(DESKTOP).new_page()
    log_in(ben, base, "gp.ben")
    open_brians_record(ben)
    expect(ben.locator("main")).to_contain_text(CPFT_ENTRY)

    # The patient, signed out, on a phone.
    brian = contexts(PHONE).new_page()
    brian.goto(f"{base}/object-to-share/")
    brian.get_by_label("Myself").check()
    brian.get_by_label("First name").fill("Brian")
    brian.get_by_label("Last name").fill("Barton")
    date_of_birth(brian)
    brian.get_by_label("NHS number (optional)").fill("999 000 0026")
    brian.get_by_label("Information from some organisations").check()
    brian.locator("#reveal-from-partners").get_by_label("Cambridgeshire and Peterborough NHS FT").check()
    brian.get_by_label("Email", exact=True).check()
    brian.get_by_label("Email address").fill("brian@example.org")
    brian.get_by_role("button", name="Continue").click()
    brian.get_by_role("button", name="Accept and send").click()
    expect(brian.get_by_role("heading", level=1)).to_have_text("Request sent")
    reference = brian.locator(".sc-reference").inner_text()

    # The IG team works the case.
    fay = contexts(DESKTOP).new_page()
    log_in(fay, base, "privacy.fay")
    fay.get_by_role("link", name="Objections").click()
    fay.get_by_role("link", name=reference).click()
    expect(fay.locator(".status-badge")).to_have_text("Received")
    identity = fay.locator("#identity")
    identity.get_by_role("button", name="Look up").click()
    candidate = fay.locator(".match-candidate")
    expect(candidate).to_contain_text("Brian BARTON")
    candidate.get_by_role("button", name="This is the patient: verify").click()
    expect(fay.locator(".status-badge")).to_have_text("Identity verified")
    clinical = fay.locator("#clinical-input")
    clinical.get_by_label("Clinician consulted (name and role)").fill("Dr Okafor, GP")
    clinical.get_by_label("What they advised").fill("No safeguarding concern; the GP keeps its own record.")
    clinical.get_by_role("button", name="Record clinical input").click()
    decision = fay.locator("#decision")
    decision.get_by_label("Upheld: everything that was asked").check()
    decision.get_by_role("button", name="Record the decision").click()
    expect(fay.locator(".status-badge")).to_have_text("Upheld")

    with fay.expect_download() as download_info:
        fay.get_by_role("link", name="Download the letter (PDF)").click()
    pdf = Path(download_info.value.path()).read_bytes()
    letter = " ".join(" ".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages).split())
    assert "Brian Barton" in letter
    assert f"Our reference: {reference}" in letter
    assert "Information from Cambridgeshire and Peterborough NHS FT will no longer be shown" in letter
    fay.get_by_role("button", name="The patient has been sent the letter").click()
    expect(fay.locator(".informed")).to_contain_text("Told by privacy.fay")
    history = fay.locator(".objection-history")
    decided = history.locator(".history-entry").filter(has_text="Under review → Upheld")
    expect(decided).to_have_count(1)
    expect(decided.locator(".history-actor")).to_have_text("privacy.fay")

    # His GP's next read: CPFT's entry is gone, and the page says something is withheld at his request.
    open_brians_record(ben)
    main = ben.locator("main")
    expect(main).not_to_contain_text(CPFT_ENTRY)
    expect(main).to_contain_text(OBJECTION_WITHHELD)
    expect(main).to_contain_text("Asthma")

    def audited() -> None:
        read = AccessEvent.objects.filter(action=AccessEvent.Action.VIEW_RECORD).order_by("pk").last()
        assert read.username == "gp.ben" and "RT1" not in read.partners_shown
        assert f"objection:{reference}" in read.withheld.split("; ")
        assert Objection.objects.get(reference=reference).status == Objection.Status.UPHELD

    in_own_thread(audited)

    # The patient's status page.
    brian.goto(f"{base}/object-to-share/status/")
    brian.get_by_label("Your reference").fill(reference)
    date_of_birth(brian)
    brian.get_by_role("button", name="Check").click()
    expect(brian.locator(".sc-status")).to_have_text("Upheld")
