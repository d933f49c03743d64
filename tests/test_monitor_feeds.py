"""The back-office feed monitor: state, last run, lag, error rates, pending quarantine, a chart of runs, and the
STALE flag for a live feed with no success within twice its schedule."""

import re
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent
from consent.services import feed_support_grant
from records.backoffice.monitor import CHART_DAYS, CHART_HEIGHT, feed_health_list
from records.models import Feed, IngestRun, QuarantinedRecord
from records.services import feed_upsert
from tests.builders import NEWCOMER, add_run, condition, ingest

MONITOR = "admin:records_feed_monitor"


@pytest.fixture
def feed(cast) -> Feed:
    """A live feed of its own, without the cast's runs, due every hour."""
    return feed_upsert(code="cuh-pathology", organisation=cast.cuh, name="Pathology results", sections=[])


def feed_row(page: str, feed: Feed) -> str:
    start = page.rindex("<tr", 0, page.index(f'id="feed-{feed.pk}"'))
    return page[start : page.index("</tr>\n", page.index("</details>", start))]


def monitor_page(client) -> str:
    response = client.get(reverse(MONITOR))
    assert response.status_code == 200
    return response.content.decode()


def test_monitor_flags_a_live_feed_with_no_success_within_twice_its_schedule_as_stale(
    admin_client, cast, feed
):
    now = timezone.now()
    Feed.objects.filter(pk=feed.pk).update(last_success_at=now - timedelta(minutes=121))
    Feed.objects.filter(pk=cast.cuh_feed.pk).update(last_success_at=now - timedelta(minutes=119))
    Feed.objects.filter(pk=cast.gp_a_feed.pk).update(state=Feed.State.PAUSED, last_success_at=None)

    page = monitor_page(admin_client)

    stale = feed_row(page, feed)
    assert 'class="feed-row stale"' in stale
    assert "STALE" in stale
    assert "lag 2\xa0hours, 1\xa0minute" in stale
    for fresh in (cast.cuh_feed, cast.gp_a_feed):
        row = feed_row(page, fresh)
        assert "STALE" not in row
    assert "Paused" in feed_row(page, cast.gp_a_feed)


def test_a_live_feed_that_never_succeeded_is_stale(admin_client, feed):
    row = feed_row(monitor_page(admin_client), feed)
    assert "STALE" in row
    assert "never run" in row


def test_monitor_shows_the_last_run_with_its_duration_throughput_and_counts(admin_client, feed):
    now = timezone.now()
    add_run(feed, now - timedelta(hours=3), read=50)
    add_run(
        feed,
        now - timedelta(minutes=20),
        seconds=8,
        read=2_000,
        quarantined=3,
        trigger=IngestRun.Trigger.PUSH,
    )

    row = feed_row(monitor_page(admin_client), feed)

    assert "Succeeded</span> (partner push)" in row
    assert "8.0 s" in row
    assert "250 resources/s" in row
    assert "read 2,000" in row
    assert "unchanged 0, quarantined 3" in row
    assert "Hospital EPR" not in row
    assert "Cambridge University Hospitals (RGT)" in row
    assert "every hour" in row


def test_monitor_shows_error_rates_over_the_last_seven_days(admin_client, feed):
    now = timezone.now()
    add_run(feed, now - timedelta(days=8), status=IngestRun.Status.FAILED)  # outside the window
    add_run(feed, now - timedelta(days=5), read=100, quarantined=5)
    add_run(feed, now - timedelta(days=3), status=IngestRun.Status.FAILED)
    add_run(feed, now - timedelta(days=2), read=300, quarantined=15)
    add_run(feed, now - timedelta(hours=1), read=600)

    row = feed_row(monitor_page(admin_client), feed)

    assert "failed runs 1 of 4 (25.0%)" in row
    assert "quarantined 20 of 1,000 read (2.0%)" in row
    assert 'class="run-failed"' not in row  # the last run succeeded


def test_monitor_links_pending_quarantine_to_the_feeds_pending_records(admin_client, cast):
    # The quarantine list shows only the records of partners the user supports.
    feed_support_grant(user_id=cast.admin_gus.pk, organisations=[cast.cuh])
    ingest(cast.cuh_feed, condition("c1", NEWCOMER), condition("c2", NEWCOMER, "Eczema"))
    QuarantinedRecord.objects.filter(source_id="c2").update(status=QuarantinedRecord.Status.DISCARDED)

    row = feed_row(monitor_page(admin_client), cast.cuh_feed)

    link = re.search(r'<a href="([^"]*status__exact=pending)">1 pending', row).group(1).replace("&amp;", "&")
    assert f"feed__id__exact={cast.cuh_feed.pk}" in link
    listed = admin_client.get(link).content.decode()
    assert '<td class="field-source_id">c1</td>' in listed
    assert '<td class="field-source_id">c2</td>' not in listed
    assert "0 pending" in feed_row(monitor_page(admin_client), cast.cpft_feed)


def test_monitor_draws_the_runs_of_the_last_fourteen_days_as_an_accessible_svg_with_a_table(
    admin_client, feed
):
    now = timezone.now()
    add_run(feed, now - timedelta(days=20), read=9_999)  # too old for the chart
    add_run(feed, now - timedelta(days=6), read=400)
    add_run(feed, now - timedelta(days=6), status=IngestRun.Status.FAILED)
    add_run(feed, now - timedelta(days=2), read=100)
    add_run(feed, now - timedelta(minutes=5), read=200)

    row = feed_row(monitor_page(admin_client), feed)

    svg = row[row.index("<svg") : row.index("</svg>")]
    assert 'role="img"' in svg
    assert f'aria-labelledby="chart-{feed.pk}-title chart-{feed.pk}-desc"' in svg
    assert f'<title id="chart-{feed.pk}-title">Runs of cuh-pathology, last {CHART_DAYS} days</title>' in svg
    assert "4 runs, 1 failed, 700 resources read" in svg
    assert svg.count('class="bar-read"') == 3
    assert svg.count('class="bar-failed"') == 1
    assert f'height="{CHART_HEIGHT}" fill="#005eb8"' in svg  # the busiest day fills the chart
    assert "9999" not in row and "9,999" not in row
    table = row[row.index("<details>") :]
    assert table.count('<th scope="row">') == CHART_DAYS
    assert "<td>2</td><td>1</td><td>400</td>" in table


def test_feed_health_draws_days_to_scale_and_shows_a_failed_run_on_a_busy_day(cast, feed):
    now = timezone.make_aware(datetime(2026, 3, 10, 12, 0))
    add_run(feed, now - timedelta(days=1), read=1_000)
    add_run(feed, now - timedelta(days=1), status=IngestRun.Status.FAILED)
    add_run(feed, now - timedelta(hours=2), read=250)

    [health] = [row for row in feed_health_list(now) if row.feed == feed]

    days = {day.day.isoformat(): day for day in health.chart.days}
    assert len(days) == CHART_DAYS
    assert min(days) == "2026-02-25"
    assert max(days) == "2026-03-10"
    yesterday, today = days["2026-03-09"], days["2026-03-10"]
    assert (yesterday.runs, yesterday.failed, yesterday.resources_read) == (2, 1, 1_000)
    assert (yesterday.read_height, yesterday.read_y) == (CHART_HEIGHT, 0)
    assert yesterday.failed_height == CHART_HEIGHT // 2
    assert today.read_height == CHART_HEIGHT // 4
    assert (today.failed_height, days["2026-03-01"].read_height) == (0, 0)
    assert health.last_run.resources_read == 250
    assert (health.runs, health.failed_runs, health.failed_run_percent) == (
        3,
        1,
        pytest.approx(33.33, abs=0.01),
    )


def test_feed_list_links_to_the_monitor(admin_client):
    page = admin_client.get(reverse("admin:records_feed_changelist")).content.decode()
    assert f'href="{reverse(MONITOR)}"' in page
    assert reverse(MONITOR) == "/admin/records/feed/monitor/"


def test_clinicians_and_strangers_are_sent_to_log_in_from_the_monitor(client, cast):
    assert client.get(reverse(MONITOR))["Location"].startswith(reverse("admin:login"))
    client.force_login(cast.gp_ada)
    response = client.get(reverse(MONITOR))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert not AccessEvent.objects.exists()


def test_feeds_needing_attention_come_first_stale_then_failing_then_quarantine(admin_client, cast):
    now = timezone.now()
    healthy = feed_upsert(code="aaa-healthy", organisation=cast.cuh, name="A healthy feed", sections=[])
    add_run(healthy, now - timedelta(minutes=5))
    Feed.objects.filter(pk=healthy.pk).update(last_success_at=now - timedelta(minutes=5))
    waiting = feed_upsert(code="zzz-waiting", organisation=cast.county, name="Z waiting", sections=[])
    add_run(waiting, now - timedelta(minutes=5), quarantined=1)
    Feed.objects.filter(pk=waiting.pk).update(last_success_at=now - timedelta(minutes=5))
    ingest(waiting, condition("c1", NEWCOMER))
    failing = feed_upsert(code="yyy-failing", organisation=cast.county, name="Y failing", sections=[])
    Feed.objects.filter(pk=failing.pk).update(last_success_at=now - timedelta(minutes=30))
    add_run(failing, now - timedelta(minutes=1), status=IngestRun.Status.FAILED)
    stale = feed_upsert(code="xxx-stale", organisation=cast.county, name="X stale", sections=[])
    Feed.objects.filter(pk=stale.pk).update(last_success_at=now - timedelta(hours=3))

    order = [row.feed.code for row in feed_health_list(now)]
    page = monitor_page(admin_client)

    mine = [code for code in order if code in {"aaa-healthy", "zzz-waiting", "yyy-failing", "xxx-stale"}]
    assert mine == ["xxx-stale", "yyy-failing", "zzz-waiting", "aaa-healthy"]
    positions = [page.index(f'id="feed-{feed.pk}"') for feed in (stale, failing, waiting, healthy)]
    assert positions == sorted(positions)
