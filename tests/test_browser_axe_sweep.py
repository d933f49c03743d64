"""Every page a demo user can open, in Chromium at a desk (1366 x 900) and on a phone (390 x 844): axe-core finds no
serious or critical problem on any, and on the phone no page scrolls sideways and every region that scrolls can be
reached from the keyboard.

One demo load for the whole sweep, one browser, one context per user and width. The users are the clinician
(gp.ada), the hospital doctor offered access to a patient she has no relationship with (ed.cara), the receptionist
(reception.dan), the social worker (social.eli), the psychiatrist who chooses a role (mh.ivy), the privacy officer
(privacy.fay), the back office (admin.gus), and a patient signed out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import Browser, Page

from audit.models import Alert
from consent.models import Objection
from consent.models import SubjectAccessRequest as AccessRequest
from records.models import Patient, RecordEntry
from records.sections import Section
from tests.builders import PASSWORD, authenticator_of, axe_serious_problems, demo_loaded, second_factor_pass

pytestmark = pytest.mark.browser

DESK = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth + 1"
# Elements that scroll (overflow auto or scroll, and their content does overflow) but cannot take keyboard focus.
UNREACHABLE_SCROLLERS = """() => [...document.querySelectorAll('body *')].filter(element => {
    const style = getComputedStyle(element);
    const scrolls = value => value === 'auto' || value === 'scroll';
    const across = scrolls(style.overflowX) && element.scrollWidth > element.clientWidth + 1;
    const down = scrolls(style.overflowY) && element.scrollHeight > element.clientHeight + 1;
    return (across || down) && element.tabIndex < 0;
}).map(element => element.tagName.toLowerCase() + (element.id ? '#' + element.id : '')
    + [...element.classList].map(name => '.' + name).join(''))"""


@dataclass
class Findings:
    axe: Path
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    def add(self, label: str, width: int, rule: str, where: list[str]) -> None:
        self.problems.append(f"{label} at {width}px: {rule} {where}")

    def check(self, page: Page, label: str, width: int) -> None:
        """axe on the page as it is now; on a phone, no sideways scroll and no scroller out of the keyboard's reach."""
        self.checked += 1
        for rule, _impact, where in axe_serious_problems(page, self.axe):
            self.add(label, width, rule, where)
        if width < 576:
            if not page.evaluate(NO_SIDEWAYS_SCROLL):
                self.add(label, width, "page-scrolls-sideways", [page.url])
            unreachable = page.evaluate(UNREACHABLE_SCROLLERS)
            if unreachable:
                self.add(label, width, "scroller-not-keyboard-reachable", unreachable)

    def visit(self, page: Page, base: str, label: str, path: str, width: int) -> None:
        response = page.goto(base + path)
        status = response.status if response is not None else 0
        if status != 200:
            self.problems.append(f"{label} at {width}px: answered {status}")
            return
        self.check(page, label, width)


Visit = tuple[str, str]


def _record_pages(patient: Patient) -> list[Visit]:
    kwargs = {"public_id": patient.public_id}
    return [
        ("records:patient-detail", reverse("records:patient-detail", kwargs=kwargs)),
        ("records:patient-timeline", reverse("records:patient-timeline", kwargs=kwargs)),
    ]


def _plan() -> dict[str, list[Visit]]:
    """What each user opens, as (page name, path); read from the database before the browser starts."""
    patients = {patient.nhs_number: patient for patient in Patient.objects.filter(merged_into__isnull=True)}
    grandmother = patients["9990000034"]
    document = (
        RecordEntry.objects.filter(patient=grandmother, section=Section.DOCUMENTS).order_by("pk").first()
    )
    home = [
        ("records:home", reverse("records:home")),
        ("records:patient-search", reverse("records:patient-search")),
    ]
    ada = [
        *home,
        *_record_pages(patients["9990000018"]),
        *_record_pages(grandmother),
        (
            "records:patient-print",
            reverse("records:patient-print", kwargs={"public_id": patients["9990000018"].public_id}),
        ),
        (
            "records:objection-new-for-patient",
            reverse(
                "records:objection-new-for-patient", kwargs={"public_id": patients["9990000018"].public_id}
            ),
        ),
        ("mfa-enrol", reverse("mfa-enrol")),
        ("password_change", reverse("password_change")),
    ]
    if document is not None:
        ada.append(
            (
                "records:document-view",
                reverse(
                    "records:document-view",
                    kwargs={"public_id": grandmother.public_id, "entry_id": document.pk},
                ),
            )
        )
    fay = [
        ("records:alert-list", reverse("records:alert-list")),
        ("records:access-report", reverse("records:access-report")),
        (
            "records:access-report-patient",
            reverse("records:access-report-patient", kwargs={"public_id": patients["9990000018"].public_id}),
        ),
        ("records:change-history", reverse("records:change-history")),
        ("records:audit-console", reverse("records:audit-console")),
        ("records:audit-events", reverse("records:audit-events")),
        (
            "records:audit-user-timeline",
            reverse(
                "records:audit-user-timeline",
                kwargs={"user_id": get_user_model().objects.get(username="gp.ada").pk},
            ),
        ),
        ("records:sign-in-failures", reverse("records:sign-in-failures")),
        ("records:objection-list", reverse("records:objection-list")),
        ("records:objection-new", reverse("records:objection-new")),
        ("records:subject-access-list", reverse("records:subject-access-list")),
        ("records:subject-access-new", reverse("records:subject-access-new")),
        ("records:opt-out-list", reverse("records:opt-out-list")),
    ]
    alert = Alert.objects.order_by("-pk").first()
    if alert is not None:
        fay.append(("records:alert-detail", reverse("records:alert-detail", kwargs={"alert_id": alert.pk})))
    # A case in each state shows its own forms.
    for case in Objection.objects.order_by("status", "pk").distinct("status"):
        fay.append(
            (
                f"records:objection-detail ({case.status})",
                reverse("records:objection-detail", kwargs={"reference": case.reference}),
            )
        )
    for request in AccessRequest.objects.order_by("status", "pk").distinct("status"):
        fay.append(
            (
                f"records:subject-access-detail ({request.status})",
                reverse("records:subject-access-detail", kwargs={"reference": request.reference}),
            )
        )
    gus = [("admin:index", reverse("admin:index"))]
    for model in sorted(admin.site._registry, key=lambda model: model._meta.label):
        # Every model the back office lists, its own and the libraries' (users, groups, devices, sign-in failures).
        meta = model._meta
        name = f"admin:{meta.app_label}_{meta.model_name}"
        gus.append((f"{name}_changelist", reverse(f"{name}_changelist")))
        first = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        if first is not None:
            gus.append((f"{name}_change", reverse(f"{name}_change", args=[first])))
    return {
        "gp.ada": ada,
        "ed.cara": home,
        "reception.dan": [*home, *_record_pages(patients["9990000018"])],
        "social.eli": [*home, *_record_pages(patients["9990000077"])],
        "mh.ivy": [],
        "privacy.fay": fay,
        "admin.gus": gus,
    }


def _password_step(page: Page, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(base + reverse("login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def _signed_in(page: Page, base: str, username: str, width: int, found: Findings) -> None:
    """Sign in; the pages met on the way (the second factor's, the role choice) are checked as they come."""
    _password_step(page, base, username)
    for name in ("mfa-enrol", "mfa-verify"):
        if page.url.split("?")[0].endswith(reverse(name)):
            found.check(page, name, width)
            second_factor_pass(page, username)
    if page.url.split("?")[0].endswith(reverse("records:role-select")):
        found.check(page, "records:role-select", width)


def _signed_out(page: Page, base: str, width: int, found: Findings) -> None:
    found.visit(page, base, "login", reverse("login"), width)
    _password_step(page, base, "nobody.here", "not-the-password")
    found.check(page, "login (refused)", width)
    found.visit(page, base, "public:objection-form", reverse("public:objection-form"), width)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()
    found.check(page, "public:objection-form (errors)", width)
    found.visit(page, base, "public:objection-status", reverse("public:objection-status"), width)
    page.get_by_role("button", name="Check").click()
    page.wait_for_load_state()
    found.check(page, "public:objection-status (errors)", width)


def _after_pages(page: Page, base: str, username: str, width: int, found: Findings) -> None:
    """The pages a user reaches only by sending a form: a search that fails, an offer of access, console results."""
    if username in ("gp.ada", "ed.cara"):
        page.goto(base + reverse("records:patient-search"))
        page.get_by_label("NHS number").fill("999 000 0069" if username == "ed.cara" else "999 000 0019")
        page.get_by_role("button", name="Search").click()
        page.wait_for_load_state()
        found.check(
            page,
            "records:patient-access" if username == "ed.cara" else "records:patient-search (error)",
            width,
        )
    if username == "privacy.fay":
        page.goto(base + reverse("records:audit-events"))
        page.get_by_label("Username").fill("gp.ada")
        page.get_by_role("button", name="Search").click()
        page.wait_for_load_state()
        found.check(page, "records:audit-events (results)", width)


@pytest.fixture
def sweep_plan(transactional_db, monkeypatch) -> dict[str, list[Visit]]:
    """The demo, committed so the live server sees it, every demo user with the tests' password; the back-office
    user already holds an authenticator (he is asked for its code) and the privacy officer not yet (she sets one
    up at her first sign-in), so both second-factor pages are met."""
    demo_loaded(monkeypatch, PASSWORD)
    authenticator_of(get_user_model().objects.get(username="admin.gus"))
    return _plan()


def test_every_page_passes_axe_at_desk_and_phone_widths_and_fits_a_phone(
    sweep_plan, live_server, browser: Browser, axe_script
):
    found = Findings(axe=axe_script)
    base = live_server.url
    for viewport in (DESK, PHONE):
        width = viewport["width"]
        for username, visits in [("", []), *sweep_plan.items()]:
            context = browser.new_context(viewport=viewport, locale="en-GB")
            context.set_default_timeout(15_000)
            page = context.new_page()
            try:
                if not username:
                    _signed_out(page, base, width, found)
                    continue
                _signed_in(page, base, username, width, found)
                for label, path in visits:
                    found.visit(page, base, label, path, width)
                _after_pages(page, base, username, width, found)
            finally:
                context.close()

    assert found.checked > 100
    assert not found.problems, "\n".join(found.problems)
