"""An objection case worked in a real browser: Debian's Chromium driven by Playwright against a live server and the
cast, at desktop and phone widths.

privacy.fay, in the IG team, records Brian Barton's phoned objection to sharing his mental health trust's data and his
problems list, looks him up and verifies him, records clinical input, upholds the objection in part with ticked boxes,
downloads the letter (read back with pypdf) and records that he was told; the change history names her at each step.
gp.ada, outside the team, finds neither the link nor the pages.
"""

import re
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect
from pypdf import PdfReader

from consent.models import Objection
from tests.builders import in_own_thread, log_in, shoot

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}


@pytest.fixture
def live_cast(transactional_db, cast):
    """The cast, committed, with privacy.fay in the IG team, so the live server's thread can see them."""
    cast.privacy_fay.user_permissions.add(
        Permission.objects.get(codename="manage_objections", content_type__app_label="consent")
    )
    return cast


@pytest.fixture
def contexts(live_cast, live_server, browser_contexts) -> Callable[[dict], BrowserContext]:
    return browser_contexts


def fits_the_screen(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_ig_team_works_a_phoned_objection_from_receipt_to_the_letter(
    contexts, live_server, tmp_path, viewport
):
    width = viewport["width"]
    fay = contexts(viewport).new_page()
    log_in(fay, live_server.url, "privacy.fay")

    fay.get_by_role("link", name="Objections").click()
    expect(fay.get_by_role("heading", level=1)).to_have_text("Objections")
    expect(fay.locator(".no-cases")).to_have_text("No cases.")
    fay.get_by_role("link", name="Record an objection").click()

    fay.get_by_role("group", name="How the patient told us").get_by_label("Phone").check()
    fay.get_by_label("Date received").fill(timezone.localdate().isoformat())
    fay.get_by_label("Patient's first name").fill("Brian")
    fay.get_by_label("Patient's last name").fill("Barton")
    fay.get_by_label("Patient's date of birth").fill("1962-07-01")
    fay.get_by_label("NHS number, if known").fill("999 000 0026")
    fay.get_by_role("group", name="How to reply").get_by_label("Email").check()
    fay.get_by_label("Email address, phone number or postal address to reply to").fill("brian@example.org")
    fay.get_by_role("group", name="Who is asking").get_by_label("The patient themselves").check()
    fay.get_by_role("group", name="Particular parts of the record").get_by_label(
        "Problems and diagnoses"
    ).check()
    fay.get_by_role("group", name="Data these partners sent").get_by_label(
        "Cambridgeshire and Peterborough NHS FT (RT1)"
    ).check()
    assert fits_the_screen(fay)
    shoot(fay, tmp_path, f"objection-new-{width}")
    fay.get_by_role("button", name="Record the objection").click()

    expect(fay.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Objection OB-[A-Z2-9]{8}$"))
    reference = fay.get_by_role("heading", level=1).inner_text().removeprefix("Objection ")
    expect(fay.locator(".status-badge")).to_have_text("Received")
    expect(fay.locator(".objection-asked")).to_contain_text("Section: Problems and diagnoses")

    # Identity: the look-up shows only what the comparison needs, then the match is confirmed.
    identity = fay.locator("#identity")
    expect(identity.get_by_label("NHS number to look up")).to_have_value("9990000026")
    identity.get_by_role("button", name="Look up").click()
    candidate = fay.locator(".match-candidate")
    expect(candidate).to_contain_text("Brian BARTON")
    expect(candidate).not_to_contain_text("Asthma")
    shoot(fay, tmp_path, f"objection-match-{width}")
    candidate.get_by_label("How identity was checked (optional)").fill("Called back; date of birth agrees.")
    candidate.get_by_role("button", name="This is the patient: verify").click()
    expect(fay.locator(".status-badge")).to_have_text("Identity verified")
    expect(fay.locator(".matched-nhs-number")).to_have_text("999 000 0026")

    clinical = fay.locator("#clinical-input")
    clinical.get_by_label("Clinician consulted (name and role)").fill("Dr Hale, GP partner")
    clinical.get_by_label("What they advised").fill(
        "The problems list is needed by out-of-hours; CPFT data may be held back."
    )
    clinical.get_by_role("button", name="Record clinical input").click()
    expect(fay.locator(".status-badge")).to_have_text("Under review")

    decision = fay.locator("#decision")
    decision.get_by_label("Partly upheld: only the parts ticked below").check()
    decision.get_by_role("group", name="Partners whose data is not shared").get_by_label(
        "Cambridgeshire and Peterborough NHS FT (RT1)"
    ).check()
    decision.get_by_label(re.compile(r"Reason for refusing")).select_option(
        label="Care cannot otherwise be delivered safely"
    )
    decision.get_by_role("button", name="Record the decision").click()
    expect(fay.locator(".status-badge")).to_have_text("Partly upheld")
    expect(fay.locator(".objection-decision")).to_contain_text(
        "Data from Cambridgeshire and Peterborough NHS FT (RT1) not shared"
    )

    with fay.expect_download() as download_info:
        fay.get_by_role("link", name="Download the letter (PDF)").click()
    download = download_info.value
    assert download.suggested_filename == f"objection-{reference}.pdf"
    letter = " ".join(
        " ".join(
            page.extract_text() for page in PdfReader(BytesIO(Path(download.path()).read_bytes())).pages
        ).split()
    )
    assert "We have agreed to part of your objection" in letter
    assert "Information from Cambridgeshire and Peterborough NHS FT will no longer be shown" in letter
    assert "These parts of your record will still be shown: Problems and diagnoses." in letter
    assert f"Our reference: {reference}" in letter

    fay.get_by_role("button", name="The patient has been sent the letter").click()
    expect(fay.locator(".informed")).to_contain_text("Told by privacy.fay")

    history = fay.locator(".objection-history")
    expect(history.locator(".history-entry")).to_have_count(5)
    expect(history.locator(".history-actor")).to_have_text(["privacy.fay"] * 5)
    assert fits_the_screen(fay)
    shoot(fay, tmp_path, f"objection-case-{width}")

    def case_state() -> None:
        objection = Objection.objects.get(reference=reference)
        assert (objection.status, objection.upheld_from_partners, objection.entered_by.get_username()) == (
            Objection.Status.PARTLY_UPHELD,
            ["RT1"],
            "privacy.fay",
        )

    in_own_thread(case_state)

    fay.get_by_role("link", name="Back to objections").click()
    expect(fay.locator(".objection-case")).to_have_count(1)
    expect(fay.locator(".objection-case")).to_contain_text("Partly upheld")
    expect(fay.locator("main")).not_to_contain_text("Barton")

    # Outside the team: no link, and the case is not found.
    ada = contexts(viewport).new_page()
    log_in(ada, live_server.url, "gp.ada")
    expect(ada.get_by_role("link", name="Objections")).to_have_count(0)
    ada.goto(f"{live_server.url}/ig/objections/{reference}/")
    expect(ada.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(ada.locator("main")).not_to_contain_text("Barton")
