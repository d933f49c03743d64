"""The privacy officer's audit console: a search of the access trail by patient (NHS number sent by POST, never in a
URL), user, organisation, dates, action and outcome, paged and downloaded as CSV; a user's activity timeline by day;
and the console's home with two charts drawn on the server. Only privacy officers reach it, and every search, page,
timeline and download is itself an audited event."""

import csv
import io
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.alerts import Reviewer, alert_raise, alert_review
from audit.console import AccessesOnDay, access_counts_per_day, alert_counts_per_week, day_start
from audit.day_counts import SETTLED_AFTER, access_counts_per_day_kept
from audit.models import AccessDayCount, AccessEvent, Alert
from audit.services import AccessFacts, Actor, RequestContext, access_event_record
from consent.access_report import patient_access_lines
from records import access_console
from records.access_console import EVENTS_PER_PAGE
from records.models import Patient
from records.portal.console_forms import NEEDS_CRITERIA, NOT_HELD

PATIENT_A_FIELDS = ("Alice", "Ashby", "ASHBY", "9990000018", "999 000 0018", "Mill Road")
NHS_NUMBER = re.compile(r"\d{3}\D{0,3}\d{3}\D{0,3}\d{4}")
CONSOLE = reverse("records:audit-console")
EVENTS = reverse("records:audit-events")
EXPORT = reverse("records:audit-events-export")


# Builders.


def opens(user, patient) -> None:
    """The user finds the patient and opens their record, as on the portal."""
    browser = Client()
    browser.force_login(user)
    browser.post(reverse("records:patient-search"), {"nhs_number": patient.nhs_number})
    browser.get(reverse("records:patient-detail", kwargs={"public_id": patient.public_id}))


def actor(user) -> Actor:
    profile = user.staff_profiles.select_related("organisation").first()
    return Actor(
        user_id=user.pk,
        username=user.username,
        job_role=profile.job_role if profile else "",
        organisation_ods=profile.organisation.ods_code if profile else "",
    )


def record(who: Actor, *, patient: Patient | None = None, outcome="allowed", **facts) -> AccessEvent:
    return access_event_record(
        who,
        AccessFacts(
            action=facts.pop("action", "view-record"),
            outcome=outcome,
            patient_id=patient.pk if patient is not None else None,
            **facts,
        ),
        RequestContext(),
    )


@pytest.fixture
def frozen(monkeypatch):
    """Freeze `django.utils.timezone.now` (which the trail and the door read at call time) at a given moment."""

    def freeze(moment: datetime) -> datetime:
        monkeypatch.setattr(timezone, "now", lambda: moment)
        return moment

    return freeze


def search(client, **fields):
    """Send a search as the console's form does; dates blank unless given."""
    data = {"nhs_number": "", "username": "", "organisation_ods": "", "date_from": "", "date_to": ""}
    data.update({"action": "", "outcome": ""}, **fields)
    return client.post(EVENTS, data)


def links_of(response) -> list[str]:
    text = response.content.decode()
    return [value.replace("&amp;", "&") for value in re.findall(r'(?:href|action)="([^"]+)"', text)]


def is_console(link: str) -> bool:
    return link == CONSOLE or link.startswith(("?", EVENTS, EXPORT, "/ig/audit/users/"))


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def fay_events() -> list[AccessEvent]:
    return list(AccessEvent.objects.filter(username="privacy.fay").order_by("id"))


# The console's home.


def test_the_console_home_has_the_search_form_the_other_audit_pages_and_two_charts_and_is_audited(
    client, cast
):
    client.force_login(cast.privacy_fay)

    response = client.get(CONSOLE)

    assert response.status_code == 200
    text = response.content.decode()
    for url in (
        reverse("records:access-report"),
        reverse("records:change-history"),
        reverse("records:alert-list"),
    ):
        assert f'href="{url}"' in text
    assert f'<form method="post" action="{EVENTS}"' in text
    assert text.count('<svg class="bar-chart"') == 2
    assert text.count('<details class="chart-data">') == 2
    assert "css/console.css" in text
    # No inline style or script: a Content-Security-Policy without 'unsafe-inline' is to hold.
    assert "style=" not in text
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", text))
    (event,) = fay_events()
    assert (event.action, event.purpose, event.outcome, event.patient_id, event.query) == (
        "read-audit",
        "audit",
        "allowed",
        None,
        "audit console",
    )


def test_the_privacy_officer_has_an_audit_link_in_the_nav(client, cast):
    client.force_login(cast.privacy_fay)

    assert f'href="{CONSOLE}"' in client.get(reverse("records:home")).content.decode()


# A quiet Wednesday in June, far from the clocks changing.
NOON = datetime(2026, 6, 17, 11, 0, tzinfo=UTC)


def test_accesses_per_day_count_allowed_and_denied_on_each_of_the_last_30_days(cast, frozen):
    ada, ben = actor(cast.gp_ada), actor(cast.gp_ben)
    frozen(NOON - timedelta(days=3))
    record(ada, patient=cast.patient_a)
    record(ada, patient=cast.patient_a)
    record(ben, patient=cast.patient_a, outcome="denied")
    frozen(NOON - timedelta(days=30))  # the day before the window opens
    record(ada, patient=cast.patient_a)
    frozen(NOON)
    record(ben, patient=cast.patient_a, outcome="denied")
    record(ada, action="search", outcome="not-found", query="9000000009")

    days = access_counts_per_day(now=NOON)

    assert len(days) == 30
    assert (days[0].day, days[-1].day) == (date(2026, 5, 19), date(2026, 6, 17))
    counted = {on.day: (on.allowed, on.denied) for on in days if on.allowed or on.denied}
    assert counted == {date(2026, 6, 14): (2, 1), date(2026, 6, 17): (0, 1)}


def test_alerts_per_week_count_open_and_reviewed_in_each_of_the_last_12_weeks(cast, frozen):
    ben = actor(cast.gp_ben)
    fay = Reviewer(user_id=cast.privacy_fay.pk, username="privacy.fay")

    def raise_at(moment: datetime) -> Alert:
        frozen(moment)
        event = record(ben, patient=cast.patient_a, action="break-glass")
        return alert_raise(
            kind="break-glass",
            reference=f"BG-{event.pk:08d}",
            actor=ben,
            patient_id=cast.patient_a.pk,
            reason="test",
            event=event,
        )

    reviewed = raise_at(NOON - timedelta(days=7))
    raise_at(NOON - timedelta(days=8))
    raise_at(NOON)
    later = raise_at(NOON - timedelta(days=1))
    raise_at(NOON - timedelta(weeks=12))  # the week before the window opens
    alert_review(
        alert_id=reviewed.pk, reviewer=fay, outcome="appropriate", note="", now=NOON - timedelta(days=6)
    )
    alert_review(
        alert_id=later.pk, reviewer=fay, outcome="appropriate", note="", now=NOON + timedelta(hours=1)
    )

    weeks = alert_counts_per_week(now=NOON)

    assert len(weeks) == 12
    assert (weeks[0].week_start, weeks[-1].week_start) == (date(2026, 3, 30), date(2026, 6, 15))
    counted = {week.week_start: (week.open, week.reviewed) for week in weeks if week.open or week.reviewed}
    # Reviewed after `now` is still open at `now`.
    assert counted == {date(2026, 6, 8): (1, 1), date(2026, 6, 15): (2, 0)}


def test_the_charts_text_alternative_shows_the_counts_of_known_events(client, cast, frozen):
    ada = actor(cast.gp_ada)
    frozen(NOON - timedelta(days=2))
    for _ in range(4):
        record(ada, patient=cast.patient_a)
    record(ada, patient=cast.patient_b, outcome="denied")
    frozen(NOON)
    client.force_login(cast.privacy_fay)

    text = client.get(CONSOLE).content.decode()

    assert re.search(r'datetime="2026-06-15">Mon 15 Jun 2026</time></th><td>4</td><td>1</td>', text)
    # The console's own reading is today's one allowed access.
    assert re.search(r'datetime="2026-06-17">Wed 17 Jun 2026</time></th><td>1</td><td>0</td>', text)
    assert "Mon 15 Jun 2026: 4 allowed, 1 denied" in text


def live_count(day: date, outcome: str) -> int:
    """A day's events with the outcome, counted from the trail itself."""
    return AccessEvent.objects.filter(
        occurred_at__gte=day_start(day), occurred_at__lt=day_start(day + timedelta(days=1)), outcome=outcome
    ).count()


def test_a_days_kept_counts_equal_a_count_of_its_events_and_today_is_never_kept(client, cast, frozen):
    ada, ben = actor(cast.gp_ada), actor(cast.gp_ben)
    for days_ago, outcomes in (
        (29, ["allowed"]),
        (12, ["allowed", "denied", "not-found"]),
        (1, ["denied"] * 3),
    ):
        frozen(NOON - timedelta(days=days_ago))
        for outcome in outcomes:
            record(ben if outcome == "denied" else ada, patient=cast.patient_a, outcome=outcome)
    frozen(day_start(date(2026, 6, 17)) - timedelta(microseconds=1))  # the last moment of yesterday
    record(ada, patient=cast.patient_a)
    frozen(NOON)
    record(ben, patient=cast.patient_b, outcome="denied")
    client.force_login(cast.privacy_fay)

    first, second = client.get(CONSOLE), client.get(CONSOLE)

    kept = {row.day: (row.allowed, row.denied) for row in AccessDayCount.objects.all()}
    assert sorted(kept) == [date(2026, 5, 19) + timedelta(days=offset) for offset in range(29)]
    assert kept == {day: (live_count(day, "allowed"), live_count(day, "denied")) for day in kept}
    assert (kept[date(2026, 5, 19)], kept[date(2026, 6, 5)], kept[date(2026, 6, 16)]) == (
        (1, 0),
        (1, 1),
        (1, 3),
    )
    # Today is counted from the events on every load: the console's two readings and the denied access.
    assert re.search(
        r'datetime="2026-06-17">Wed 17 Jun 2026</time></th><td>1</td><td>1</td>', first.content.decode()
    )
    assert re.search(
        r'datetime="2026-06-17">Wed 17 Jun 2026</time></th><td>2</td><td>1</td>', second.content.decode()
    )
    assert access_counts_per_day_kept(now=NOON) == access_counts_per_day(now=NOON)


def test_a_day_is_kept_only_once_it_is_over_and_settled_in_the_charts_time_zone(cast, frozen):
    ada = actor(cast.gp_ada)
    # 23:30 in London on the 16th is 22:30 UTC: the 16th's, not the 17th's.
    frozen(datetime(2026, 6, 16, 22, 30, tzinfo=UTC))
    record(ada, patient=cast.patient_a)
    midnight = day_start(date(2026, 6, 17))

    just_after = access_counts_per_day_kept(now=midnight + SETTLED_AFTER - timedelta(seconds=1))

    assert not AccessDayCount.objects.filter(day=date(2026, 6, 16)).exists()
    assert (just_after[-2].day, just_after[-2].allowed, just_after[-1].allowed) == (date(2026, 6, 16), 1, 0)

    settled = access_counts_per_day_kept(now=midnight + SETTLED_AFTER)

    assert AccessDayCount.objects.values_list("allowed", flat=True).get(day=date(2026, 6, 16)) == 1
    assert settled == just_after


def test_the_chart_reads_a_kept_day_and_keeps_no_day_before_its_window(cast, frozen):
    frozen(NOON)
    access_counts_per_day_kept(now=NOON - timedelta(days=40))
    kept_before = AccessDayCount.objects.filter(day__lt=date(2026, 5, 19)).count()
    access_counts_per_day_kept(now=NOON)
    # Not how a kept day ever changes: only to show the chart reads it rather than the events.
    AccessDayCount.objects.filter(day=date(2026, 6, 10)).update(allowed=7)

    days = access_counts_per_day_kept(now=NOON)

    assert kept_before == 29
    assert {on.day: on.allowed for on in days}[date(2026, 6, 10)] == 7
    assert AccessDayCount.objects.filter(day__lt=date(2026, 5, 19)).count() == 0
    assert AccessDayCount.objects.count() == 29


def waiting_on_an_advisory_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_an_event_stamped_before_midnight_but_committed_after_is_in_its_days_kept_count(frozen):
    midnight = day_start(date(2026, 6, 17))
    frozen(midnight - timedelta(seconds=1))
    appended, release, counted = threading.Event(), threading.Event(), {}

    def append_and_hold_open() -> None:
        try:
            with transaction.atomic():
                access_event_record(
                    Actor(user_id=None, username="late.writer"),
                    AccessFacts(action="view-record", outcome="allowed"),
                    RequestContext(),
                )
                appended.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    def count() -> None:
        try:
            counted["days"] = access_counts_per_day_kept(now=midnight + SETTLED_AFTER)
        finally:
            connection.close()

    writer = threading.Thread(target=append_and_hold_open)
    writer.start()
    assert appended.wait(timeout=60)
    counter = threading.Thread(target=count)
    counter.start()
    # The count waits for the chain's lock, which the writer holds until it commits.
    for _ in range(600):
        if waiting_on_an_advisory_lock():
            break
        time.sleep(0.05)
    waited = waiting_on_an_advisory_lock()
    release.set()
    writer.join()
    counter.join()

    assert waited == 1
    assert counted["days"][-2] == AccessesOnDay(day=date(2026, 6, 16), allowed=1, denied=0)
    assert AccessDayCount.objects.values_list("allowed", flat=True).get(day=date(2026, 6, 16)) == 1


def test_the_kept_counts_put_no_trigger_on_the_trail(cast):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_accessevent'::regclass AND NOT tgisinternal"
        )
        names = sorted(name for (name,) in cursor.fetchall())
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_accessdaycount'::regclass AND NOT tgisinternal"
        )
        (on_counts,) = cursor.fetchone()

    assert len(names) == 2
    assert "access_event_append_only" in names[0]
    assert "access_event_no_truncate" in names[1]
    assert on_counts == 0


# Searching by patient.


def test_a_patient_search_finds_every_access_to_them_with_who_where_and_why_in_words(client, cast):
    opens(cast.gp_ada, cast.patient_a)
    opens(cast.ed_cara, cast.patient_a)
    opens(cast.gp_ada, cast.patient_b)
    client.force_login(cast.privacy_fay)

    sent = search(client, nhs_number="999 000 0018")
    page = client.get(sent["Location"])

    assert sent.status_code == 303
    assert re.fullmatch(rf"{EVENTS}\?search=[\w-]+", sent["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    for words in (
        "Alice ASHBY",
        "999 000 0018",
        "Riverside Surgery (D81001)",
        "Cambridge University Hospitals (RGT)",
        "Clinical practitioner (R8000)",
        "Registered GP practice",
        "View record",
        f'href="{reverse("records:audit-user-timeline", kwargs={"user_id": cast.gp_ada.pk})}"',
    ):
        assert words in text
    assert "BARTON" not in text
    shown = re.findall(r'<time datetime="([^"]+)">\d', text)
    assert shown == sorted(shown, reverse=True)
    about_a = AccessEvent.objects.filter(patient_id=cast.patient_a.pk).count()
    assert text.count('<tr class="event-row') == about_a


def test_a_patient_search_is_a_read_audit_event_naming_the_patient_but_not_their_number(client, cast):
    client.force_login(cast.privacy_fay)

    client.get(search(client, nhs_number="9990000018", username="gp.ada")["Location"])

    (event,) = fay_events()
    assert (event.action, event.purpose, event.outcome, event.patient_id) == (
        "read-audit",
        "audit",
        "allowed",
        cast.patient_a.pk,
    )
    assert event.query == "event search of the event's patient by user gp.ada, page 1"
    assert not NHS_NUMBER.search(event.query)
    # The patient's own access report shows that the officer searched the trail about them.
    assert event.pk in [line.event.pk for line in patient_access_lines(cast.patient_a)]


def test_records_merged_into_the_patients_are_searched_with_it(client, cast):
    merged = Patient.objects.create(nhs_number="9000000009", given_name="Alice", family_name="Ashby-Old")
    Patient.objects.filter(pk=merged.pk).update(merged_into=cast.patient_a)
    about_old = record(actor(cast.ed_cara), patient=merged)
    about_a = record(actor(cast.gp_ada), patient=cast.patient_a)
    client.force_login(cast.privacy_fay)

    by_survivor = client.get(search(client, nhs_number="9990000018")["Location"]).content.decode()
    by_old_number = client.get(search(client, nhs_number="9000000009")["Location"]).content.decode()

    for text in (by_survivor, by_old_number):
        assert "ed.cara" in text and "gp.ada" in text
        assert "ASHBY-OLD" in text and "900 000 0009" in text
    first, second = fay_events()
    assert first.patient_id == second.patient_id == cast.patient_a.pk
    assert {about_old.pk, about_a.pk} <= {
        event.pk for event in AccessEvent.objects.filter(patient_id__in=[merged.pk, cast.patient_a.pk])
    }


def test_a_number_no_patient_holds_is_said_plainly_and_audited_as_not_found(client, cast):
    client.force_login(cast.privacy_fay)

    page = client.get(search(client, nhs_number="9000000009")["Location"])

    assert page.status_code == 200
    text = page.content.decode()
    assert NOT_HELD in text
    assert "9000000009" not in text and 'class="event-row' not in text
    (event,) = fay_events()
    assert (event.action, event.outcome, event.patient_id) == ("read-audit", "not-found", None)
    assert not NHS_NUMBER.search(event.query)


def test_the_nhs_number_is_in_no_url_of_the_console_while_searching_by_patient(client, cast):
    ada = actor(cast.gp_ada)
    for _ in range(EVENTS_PER_PAGE + 5):
        record(ada, patient=cast.patient_a)
    client.force_login(cast.privacy_fay)

    seen: list[str] = []
    home = client.get(CONSOLE)
    sent = search(client, nhs_number="999 000 0018")
    seen += [*links_of(home), sent["Location"]]
    to_visit = [sent["Location"]]
    visited: set[str] = set()
    downloads = []
    while to_visit:
        url = to_visit.pop()
        if url in visited:
            continue
        visited.add(url)
        response = client.get(url)
        if response["Content-Type"].startswith("text/csv"):
            downloads.append(response)
            seen.append(response["Content-Disposition"])
            continue
        assert response.status_code == 200, url
        links = links_of(response)
        seen += links
        # Everything the console links to within itself: the results' pages, the download, timelines.
        base = url.split("?")[0]
        to_visit += [f"{base}{link}" if link.startswith("?") else link for link in links if is_console(link)]

    assert any("page=2" in url for url in visited)
    assert any(url.startswith(EXPORT) for url in visited) and len(downloads) == 1
    assert any(url.startswith("/ig/audit/users/") for url in visited)
    for url in seen:
        assert not NHS_NUMBER.search(url), url
        assert "Ashby" not in url and "ASHBY" not in url


# Searching by user, organisation, action and outcome.


def test_a_search_narrows_by_user_organisation_action_and_outcome(client, cast):
    record(actor(cast.gp_ada), patient=cast.patient_a)
    record(actor(cast.gp_ada), patient=cast.patient_b, outcome="denied")
    record(actor(cast.ed_cara), patient=cast.patient_a, action="search")
    client.force_login(cast.privacy_fay)

    def found(**fields) -> list[tuple[str, str]]:
        text = client.get(search(client, **fields)["Location"]).content.decode()
        return re.findall(
            r'<tr class="event-row[^"]*">.*?>([\w.]+)</a>.*?<td>([A-Z][a-z ]+)<span', text, re.S
        )

    assert found(username="gp.ada") == [("gp.ada", "View record"), ("gp.ada", "View record")]
    assert found(organisation_ods="rgt") == [("ed.cara", "Search")]
    assert found(username="gp.ada", outcome="denied") == [("gp.ada", "View record")]
    today = timezone.localdate().isoformat()
    assert ("ed.cara", "Search") in found(date_from=today, date_to=today, action="search")
    assert len(fay_events()) == 4


def test_the_search_keeps_the_form_filled_in_to_refine_it(client, cast):
    client.force_login(cast.privacy_fay)

    text = client.get(
        search(client, username="gp.ada", organisation_ods="d81001")["Location"]
    ).content.decode()

    assert 'value="gp.ada"' in text and 'value="D81001"' in text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nhs_number": "9876544321"}, "the check digit does not match"),
        ({"nhs_number": "12345"}, "An NHS number has 10 digits; this has 5."),
        ({}, NEEDS_CRITERIA),
        ({"date_from": "2026-06-01"}, NEEDS_CRITERIA),
        (
            {"date_from": "2026-06-10", "date_to": "2026-06-01"},
            "The date from must be on or before the date to.",
        ),
        ({"date_from": "2026-02-30", "date_to": "2026-03-01"}, "Enter the date date from as a real date"),
        ({"organisation_ods": "R-G-T"}, "An ODS code has 3 to 6 letters and digits"),
        ({"username": "gp.ada", "action": "peek"}, "Select a valid choice."),
    ],
)
def test_a_bad_search_is_refused_with_a_clear_error_and_writes_nothing(client, cast, fields, message):
    client.force_login(cast.privacy_fay)

    response = search(client, **fields)

    assert response.status_code == 200
    text = response.content.decode()
    assert "There is a problem" in text
    assert message in text.replace("&#x27;", "'")
    assert not AccessEvent.objects.exists()
    assert "audit_console_searches" not in client.session


def test_a_search_token_from_elsewhere_reads_nothing(client, cast):
    client.force_login(cast.privacy_fay)

    page = client.get(EVENTS, {"search": "not-a-kept-search"})
    download = client.get(EXPORT, {"search": "not-a-kept-search"})

    assert page.status_code == 200 and "That search is no longer kept" in page.content.decode()
    assert download.status_code == 303 and download["Location"] == EVENTS
    assert not AccessEvent.objects.exists()


# Paging, the download and the queries.


def test_results_page_newest_first_and_every_page_is_its_own_event(client, cast):
    ada = actor(cast.gp_ada)
    made = [record(ada, patient=cast.patient_a).pk for _ in range(EVENTS_PER_PAGE + 3)]
    client.force_login(cast.privacy_fay)
    location = search(client, username="gp.ada")["Location"]

    first = client.get(location).content.decode()
    second = client.get(f"{location}&page=2").content.decode()

    assert first.count('<tr class="event-row') == EVENTS_PER_PAGE
    assert second.count('<tr class="event-row') == 3
    assert "Page 2 of 2" in second
    assert [event.query for event in fay_events()] == [
        "event search by user gp.ada, page 1",
        "event search by user gp.ada, page 2",
    ]
    assert len(made) == EVENTS_PER_PAGE + 3


def test_a_search_counts_and_pages_only_its_newest_events_and_says_so(client, cast, monkeypatch):
    # The cap, small here, keeps a search of a long trail from counting or paging through every event it names.
    monkeypatch.setattr(access_console, "EVENTS_COUNTED", 3)
    monkeypatch.setattr(access_console, "EVENTS_PER_PAGE", 2)
    ada = actor(cast.gp_ada)
    for visit in range(1, 6):
        record(ada, patient=cast.patient_a, reason=f"visit number {visit}")
    client.force_login(cast.privacy_fay)
    location = search(client, username="gp.ada")["Location"]

    first = client.get(location).content.decode()
    past_the_cap = client.get(f"{location}&page=3").content.decode()

    assert "More than 3 events" in first
    assert "narrow the dates to reach older ones" in first
    assert "Page 1 of 2" in first
    assert [visit for visit in range(1, 6) if f"visit number {visit}" in first] == [4, 5]
    assert "Page 2 of 2" in past_the_cap
    assert [visit for visit in range(1, 6) if f"visit number {visit}" in past_the_cap] == [3]
    assert [event.query for event in fay_events()] == [
        "event search by user gp.ada, page 1",
        "event search by user gp.ada, page 3",
    ]


def test_the_download_is_every_event_found_in_words_and_an_export_event(client, cast):
    opens(cast.gp_ada, cast.patient_a)
    client.force_login(cast.privacy_fay)
    location = search(client, nhs_number="9990000018")["Location"]
    token = location.split("search=")[1]

    response = client.get(EXPORT, {"search": token})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="audit-events-\d{4}-\d{2}-\d{2}\.csv"', response["Content-Disposition"]
    )
    rows = csv_rows(response)
    assert len(rows) == AccessEvent.objects.filter(patient_id=cast.patient_a.pk).count()
    assert rows[0]["Action"] == "Export" and rows[0]["User"] == "privacy.fay"
    view = next(row for row in rows if row["User"] == "gp.ada" and row["Action"] == "View record")
    assert (view["Organisation"], view["Job role"], view["Patient"], view["NHS number"]) == (
        "Riverside Surgery (D81001)",
        "Clinical practitioner (R8000)",
        "Alice ASHBY",
        "999 000 0018",
    )
    assert view["Basis"].startswith("Registered GP practice")
    (export,) = fay_events()
    assert (export.action, export.purpose, export.outcome, export.patient_id) == (
        "export",
        "audit",
        "allowed",
        cast.patient_a.pk,
    )
    assert export.query == "event search of the event's patient"
    assert export.reason == "audit search downloaded as CSV"


def test_the_download_defuses_cells_a_spreadsheet_would_run_as_formulas(client, cast):
    record(Actor(user_id=None, username="@evil"), patient=cast.patient_a, reason='=HYPERLINK("http://x")')
    record(actor(cast.gp_ada), patient=cast.patient_a, reason="-2+3", action="declare-relationship")
    client.force_login(cast.privacy_fay)
    token = search(client, nhs_number="9990000018")["Location"].split("search=")[1]

    rows = csv_rows(client.get(EXPORT, {"search": token}))

    evil = next(row for row in rows if row["User"] == "'@evil")
    assert evil["Reason"] == '\'=HYPERLINK("http://x")'
    assert next(row for row in rows if row["Action"] == "Declare relationship")["Reason"] == "'-2+3"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value


# Session, user, the session's second-factor device, role profiles with their roles; a savepoint, the
# patient, the event (the chain's lock, its head, the row), the records merged into
# the patient's; the count and the page; the self-claims, break-glass grants, organisations and relationships
# the page's bases name, and its patients; the savepoint released; the frame's break-glass banner and the IG
# team's link.
RESULTS_PAGE_QUERIES = 20


@pytest.mark.parametrize("copies", [1, 12])
def test_the_results_page_takes_the_same_exact_queries_however_many_rows_it_shows(
    client, cast, django_assert_num_queries, copies
):
    ada, ben = actor(cast.gp_ada), actor(cast.gp_ben)
    opens(cast.gp_ada, cast.patient_a)
    relationship = AccessEvent.objects.filter(username="gp.ada", action="view-record").get().basis
    for _ in range(copies):
        record(ada, patient=cast.patient_a, basis=relationship)
        record(ben, patient=cast.patient_a, basis="break-glass:D81002 BG-AAAAAAAA")
    client.force_login(cast.privacy_fay)
    location = search(client, nhs_number="9990000018")["Location"]

    with django_assert_num_queries(RESULTS_PAGE_QUERIES):
        response = client.get(location)

    assert response.status_code == 200
    assert response.content.decode().count('<tr class="event-row') >= 2 * copies


# A user's timeline.


def test_a_users_timeline_groups_their_activity_by_day_newest_first_within_the_dates(client, cast, frozen):
    ada = actor(cast.gp_ada)
    frozen(NOON - timedelta(days=40))
    record(ada, patient=cast.patient_b)
    frozen(NOON - timedelta(days=2))
    record(ada, patient=cast.patient_a)
    record(ada, patient=cast.patient_a, action="search")
    frozen(NOON)
    record(ada, patient=cast.patient_sensitive, outcome="denied")
    record(actor(cast.ed_cara), patient=cast.patient_a)
    client.force_login(cast.privacy_fay)
    url = reverse("records:audit-user-timeline", kwargs={"user_id": cast.gp_ada.pk})

    response = client.get(url)
    older = client.get(url, {"date_from": "2026-05-01", "date_to": "2026-05-31"}).content.decode()

    assert response.status_code == 200
    text = response.content.decode()
    assert "Activity of gp.ada" in text
    days = re.findall(r'<h2 class="h5" id="day-([\d-]+)">', text)
    assert days == ["2026-06-17", "2026-06-15"]
    assert text.count('<tr class="event-row') == 3
    assert "Tamsin SEDGWICK" in text and "Alice ASHBY" in text and "BARTON" not in text
    assert "ed.cara" not in text
    assert 'value="2026-05-19"' in text and 'value="2026-06-17"' in text
    assert "Brian BARTON" in older and older.count('<tr class="event-row') == 1
    first, second = fay_events()
    assert (first.action, first.purpose, first.outcome, first.patient_id) == (
        "read-audit",
        "audit",
        "allowed",
        None,
    )
    assert first.query == f"timeline of user {cast.gp_ada.pk} from 2026-05-19 to 2026-06-17, page 1"
    assert second.query == f"timeline of user {cast.gp_ada.pk} from 2026-05-01 to 2026-05-31, page 1"


def test_a_timeline_pages_keep_their_dates(client, cast):
    ada = actor(cast.gp_ada)
    for _ in range(EVENTS_PER_PAGE + 1):
        record(ada, patient=cast.patient_a)
    client.force_login(cast.privacy_fay)
    url = reverse("records:audit-user-timeline", kwargs={"user_id": cast.gp_ada.pk})

    first = client.get(url)
    (next_page,) = [link for link in links_of(first) if "page=2" in link]
    second = client.get(f"{url}{next_page}")

    today = timezone.localdate()
    assert next_page == (f"?date_from={today - timedelta(days=29):%Y-%m-%d}&date_to={today:%Y-%m-%d}&page=2")
    assert second.content.decode().count('<tr class="event-row') == 1


def test_a_timeline_with_bad_dates_is_refused_with_an_error_and_writes_nothing(client, cast):
    client.force_login(cast.privacy_fay)
    url = reverse("records:audit-user-timeline", kwargs={"user_id": cast.gp_ada.pk})

    bad = client.get(url, {"date_from": "2026-06-10", "date_to": "2026-06-01"})
    nonsense = client.get(url, {"date_from": "yesterday"})

    assert bad.status_code == nonsense.status_code == 200
    assert "The date from must be on or before the date to." in bad.content.decode()
    assert "as a real date" in nonsense.content.decode()
    assert not AccessEvent.objects.exists()


def test_the_timeline_of_a_user_no_longer_held_shows_the_name_the_trail_recorded(client, cast):
    gone = get_user_model().objects.create_user(username="locum.lee")
    record(Actor(user_id=gone.pk, username="locum.lee"), patient=cast.patient_a)
    gone_id = gone.pk
    gone.delete()
    client.force_login(cast.privacy_fay)

    text = client.get(reverse("records:audit-user-timeline", kwargs={"user_id": gone_id})).content.decode()

    assert "Activity of locum.lee" in text


# Everyone else.


@pytest.mark.parametrize("who", ["gp_ada", "admin_gus"])
def test_no_one_but_a_privacy_officer_reaches_the_console_and_each_refusal_is_audited(client, cast, who):
    opens(cast.ed_cara, cast.patient_a)
    officer = Client()
    officer.force_login(cast.privacy_fay)
    token = search(officer, nhs_number="9990000018")["Location"].split("search=")[1]
    user = getattr(cast, who)
    client.force_login(user)
    before = AccessEvent.objects.count()
    alerts = list(Alert.objects.values())
    kept = dict(officer.session["audit_console_searches"])

    responses = [
        client.get(CONSOLE),
        client.get(EVENTS),
        search(client, nhs_number="9990000018"),
        search(client, nhs_number="not a number"),
        client.get(EVENTS, {"search": token}),
        client.get(EXPORT, {"search": token}),
        client.get(reverse("records:audit-user-timeline", kwargs={"user_id": cast.ed_cara.pk})),
    ]

    assert [response.status_code for response in responses] == [404] * 7
    for response in responses:
        for value in (*PATIENT_A_FIELDS, "ed.cara"):
            assert value not in response.content.decode()
    refused = AccessEvent.objects.filter(user_id=user.pk, purpose="audit").order_by("id")
    assert [(event.action, event.outcome, event.patient_id) for event in refused] == [
        ("read-audit", "denied", None),
        ("read-audit", "denied", None),
        ("read-audit", "denied", cast.patient_a.pk),
        ("read-audit", "denied", None),
        ("read-audit", "denied", None),
        ("read-audit", "denied", None),
        ("read-audit", "denied", None),
    ]
    assert all(event.reason == "user may not read the audit trail" for event in refused)
    assert all(not NHS_NUMBER.search(event.query) for event in refused)
    assert AccessEvent.objects.count() == before + 7
    assert list(Alert.objects.values()) == alerts
    assert "audit_console_searches" not in client.session
    assert dict(officer.session["audit_console_searches"]) == kept
    assert f'href="{CONSOLE}"' not in client.get(reverse("records:home")).content.decode()


# Session, user, the session's second-factor device, role profiles with their roles; a savepoint, the
# event (the chain's lock, its head, the row); the count and the page; the self-
# claims, break-glass grants, organisations and relationships the page's bases name, and its patients; the
# user; the savepoint released; the frame's break-glass banner and the IG team's link.
TIMELINE_PAGE_QUERIES = 19
# Session, user, the session's second-factor device, role profiles with their roles; a savepoint, the event
# (three, as above); the kept days and today's accesses per day; the alerts per week; the savepoint released; the
# frame's break-glass banner and the IG team's link.
CONSOLE_HOME_QUERIES = 14
# As above, on the first load after a day settles: also the chain's lock, the days kept, and those before the window
# removed, however many days were missing.
CONSOLE_HOME_KEEPING_QUERIES = CONSOLE_HOME_QUERIES + 3


@pytest.mark.parametrize("copies", [1, 12])
def test_the_timeline_and_the_home_take_the_same_exact_queries_however_much_happened(
    client, cast, django_assert_num_queries, frozen, copies
):
    ada = actor(cast.gp_ada)
    opens(cast.gp_ada, cast.patient_a)
    relationship = AccessEvent.objects.filter(username="gp.ada", action="view-record").get().basis
    for _ in range(copies):
        record(ada, patient=cast.patient_a, basis=relationship)
        record(ada, patient=cast.patient_b, basis="break-glass:D81001 BG-AAAAAAAA", outcome="denied")
    client.force_login(cast.privacy_fay)
    url = reverse("records:audit-user-timeline", kwargs={"user_id": cast.gp_ada.pk})

    with django_assert_num_queries(TIMELINE_PAGE_QUERIES):
        timeline = client.get(url)
    with django_assert_num_queries(CONSOLE_HOME_KEEPING_QUERIES):
        client.get(CONSOLE)
    # Then a day in two with events, over as many days as the next load keeps.
    started = timezone.now()
    for day in range(1, 2 * copies + 1):
        frozen(started + timedelta(days=day))
        if day % 2:
            record(ada, patient=cast.patient_a, basis=relationship)
            record(ada, patient=cast.patient_b, outcome="denied")
    client.force_login(cast.privacy_fay)  # the earlier session timed out meanwhile
    with django_assert_num_queries(CONSOLE_HOME_KEEPING_QUERIES):
        client.get(CONSOLE)
    with django_assert_num_queries(CONSOLE_HOME_QUERIES):
        home = client.get(CONSOLE)

    assert timeline.status_code == home.status_code == 200
    assert timeline.content.decode().count('<tr class="event-row') == 2 * copies + 2
