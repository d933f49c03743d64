"""The content security policy: every answer carries it, it lets nothing inline run or style the page, and the
portal's, the public's and the back office's pages work under it in a real browser with no violation reported."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.builders import log_in

POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
# What a template may not hold: an inline <script> (one without src), a <style> element, a style attribute, an
# event-handler attribute, or a javascript: address.
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+\s*=|javascript:", re.IGNORECASE
)


def policy_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: sources for name, *sources in (part.split() for part in header.split(";") if part.strip())}


@pytest.mark.parametrize(
    ("url", "who"),
    [
        ("login", None),
        ("public:objection-form", None),
        ("records:home", "gp_ada"),
        ("admin:index", "admin_gus"),
        ("session-status", "gp_ada"),
    ],
)
def test_every_kind_of_page_answers_with_the_policy_and_no_report_only_one(client, cast, url, who):
    if who is not None:
        client.force_login(getattr(cast, who))

    response = client.get(reverse(url))

    assert policy_of(response) == POLICY
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "Content-Security-Policy-Report-Only" not in response


def test_a_page_not_found_answers_with_the_policy_too(client, db):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert policy_of(response) == POLICY


def test_no_template_holds_an_inline_script_or_style():
    templates = sorted(Path(settings.BASE_DIR, "templates").rglob("*.html"))
    assert len(templates) > 40

    offending = {
        str(template.relative_to(settings.BASE_DIR)): INLINE.findall(template.read_text())
        for template in templates
    }

    assert {name: found for name, found in offending.items() if found} == {}


# In a real browser: every script and stylesheet loads and runs, and the browser reports no violation.


def violations_of(page: Page) -> list[str]:
    """Every content-security-policy violation the page's console reports from now on."""
    found: list[str] = []
    page.on(
        "console",
        lambda message: found.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return found


def visit(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.ok, url
    page.wait_for_load_state("load")


@pytest.mark.browser
def test_the_public_pages_run_their_scripts_with_no_violation(
    transactional_db, cast, live_server, browser_contexts
):
    page = browser_contexts({"width": 390, "height": 844}).new_page()
    violations = violations_of(page)

    for name in ("public:objection-form", "public:objection-status"):
        visit(page, f"{live_server.url}{reverse(name)}")
        # Set by the design system's support check and its scripts, both external now.
        expect(page.locator("body")).to_have_class(
            re.compile(r"\bjs-enabled\b.*\bnhsuk-frontend-supported\b")
        )

    assert violations == []


@pytest.mark.browser
def test_the_portal_pages_run_their_scripts_with_no_violation(
    transactional_db, cast, live_server, browser_contexts
):
    page = browser_contexts({"width": 1366, "height": 900}).new_page()
    violations = violations_of(page)
    log_in(page, live_server.url, "gp.ada")

    for url in (
        reverse("records:home"),
        reverse("records:patient-search"),
        reverse("records:patient-detail", args=[cast.patient_a.public_id]),
        reverse("login"),
    ):
        visit(page, f"{live_server.url}{url}")
        assert page.evaluate("typeof bootstrap === 'object'"), url

    assert violations == []


@pytest.mark.browser
def test_the_back_office_pages_run_their_scripts_with_no_violation(
    transactional_db, cast, live_server, browser_contexts
):
    page = browser_contexts({"width": 1366, "height": 900}).new_page()
    violations = violations_of(page)
    log_in(page, live_server.url, "admin.gus")

    for url in (
        reverse("admin:index"),
        reverse("admin:auth_user_changelist"),
        reverse("admin:auth_user_change", args=[cast.gp_ada.pk]),
        reverse("admin:consent_role_changelist"),
        reverse("admin:records_feed_changelist"),
        reverse("admin:records_feed_monitor"),
        reverse("admin:records_feed_change", args=[cast.cuh_feed.pk]),
    ):
        visit(page, f"{live_server.url}{url}")
        # The admin's own script ran: every page's theme script marks the document with the theme it chose.
        assert page.evaluate("document.documentElement.dataset.theme"), url

    # A script-driven control works: ticking the list's "select all" box ticks every row (the admin's actions.js).
    visit(page, f"{live_server.url}{reverse('admin:records_feed_changelist')}")
    page.locator("#action-toggle").check()
    expect(page.locator("input.action-select").first).to_be_checked()
    expect(page.locator(".action-counter")).to_contain_text("selected")
    assert violations == []


@pytest.mark.browser
def test_an_inline_script_is_refused_and_reported(transactional_db, cast, live_server, browser_contexts):
    page = browser_contexts({"width": 390, "height": 844}).new_page()
    violations = violations_of(page)
    visit(page, f"{live_server.url}{reverse('login')}")

    with pytest.raises(Exception, match=r"Content Security Policy|violates"):
        page.add_script_tag(content="document.body.dataset.injected = 'yes'")

    assert page.evaluate("document.body.dataset.injected") is None
    assert violations
