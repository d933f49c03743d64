"""The session-timeout warning in a real browser (Debian's Chromium through Playwright). The page's clock is
Playwright's, moved on by the test; the server's is moved by setting the session's recorded activity back, so nothing
waits on the wall clock."""

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone
from playwright.sync_api import Page, expect

from sharedcare.sessions import LAST_ACTIVITY_AT
from tests.builders import in_own_thread, log_in

pytestmark = pytest.mark.browser


def session_of(page: Page) -> str:
    (cookie,) = [cookie for cookie in page.context.cookies() if cookie["name"] == "sessionid"]
    return cookie["value"]


def activity_back(page: Page, by: timedelta) -> None:
    """Set the session's recorded last activity `by` before now, as if the user had done nothing since."""
    key = session_of(page)

    def work() -> None:
        session = SessionStore(session_key=key)
        session[LAST_ACTIVITY_AT] = (timezone.now() - by).timestamp()
        session.save()

    in_own_thread(work)


def last_activity(page: Page) -> float:
    key = session_of(page)
    found: list[float] = []
    in_own_thread(lambda: found.append(SessionStore(session_key=key)[LAST_ACTIVITY_AT]))
    return found[0]


@pytest.fixture
def signed_in_page(transactional_db, cast, live_server, browser_contexts) -> Page:
    page = browser_contexts({"width": 1366, "height": 900}).new_page()
    page.clock.install()
    log_in(page, live_server.url, "gp.ada")
    # The warning's script is deferred: it must have planned its timers before the test moves the clock on.
    page.wait_for_load_state("load")
    return page


def test_the_warning_comes_two_minutes_before_the_end_and_staying_signed_in_keeps_the_session(signed_in_page):
    page = signed_in_page
    warning = page.get_by_role("dialog", name="You are about to be signed out")
    page.clock.fast_forward("12:00")
    expect(warning).to_be_hidden()

    activity_back(page, timedelta(minutes=13, seconds=30))
    page.clock.fast_forward("01:10")

    expect(warning).to_be_visible()
    expect(warning).to_contain_text("You will be signed out in 2 minutes.")
    stay = warning.get_by_role("button", name="Stay signed in")
    expect(stay).to_be_focused()
    before = timezone.now().timestamp()
    stay.click()

    expect(warning).to_be_hidden()
    assert last_activity(page) >= before
    page.clock.fast_forward("05:00")
    expect(warning).to_be_hidden()
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Shared care record")


def test_at_the_end_the_page_goes_to_the_login_page_which_says_why(signed_in_page, live_server):
    page = signed_in_page
    activity_back(page, timedelta(minutes=15, seconds=30))
    page.clock.fast_forward("13:05")
    # The server says the session has ended as soon as the page asks.

    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page.locator("main")).to_contain_text("You were signed out after 15 minutes without activity.")
    assert page.url.startswith(f"{live_server.url}/accounts/login/?next=")


def test_with_no_answer_from_the_user_the_warning_runs_out_and_the_page_leaves(signed_in_page):
    page = signed_in_page
    activity_back(page, timedelta(minutes=13, seconds=30))
    page.clock.fast_forward("13:05")
    warning = page.get_by_role("dialog", name="You are about to be signed out")
    expect(warning).to_be_visible()

    activity_back(page, timedelta(minutes=16))
    page.clock.fast_forward("02:00")

    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page.locator("main")).to_contain_text("You were signed out after 15 minutes without activity.")
