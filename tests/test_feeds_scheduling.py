"""Which feeds are due, one run per feed at a time, recovery of runs a dead worker left, and `manage.py run_feed`."""

import json
import os
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from records.feeds.results import Outcome
from records.feeds.scheduling import ABANDONED_ERROR, feed_run, feeds_due
from records.models import Feed, IngestRun, RecordEntry
from sharedcare.advisory_locks import FEED_RUN_NAMESPACE, INGEST_RUN_NAMESPACE
from sharedcare.celery import app as celery_app
from tests.builders import NHS


def scheduled(feed: Feed, source: str, **changes: object) -> Feed:
    """Make a cast feed a scheduled one; the cast's own runs (made with its entries) are moved a week back."""
    IngestRun.objects.filter(feed=feed).update(started_at=timezone.now() - timedelta(days=7))
    Feed.objects.filter(pk=feed.pk).update(source=source, **{"state": Feed.State.LIVE, **changes})
    feed.refresh_from_db()
    return feed


def runs(feed: Feed):
    """The feed's runs made by the test (the cast's were moved back a week)."""
    return IngestRun.objects.filter(feed=feed, started_at__gt=timezone.now() - timedelta(days=1))


def inbox_feed(feed: Feed, tmp_path, settings, *, schedule_minutes: int = 60) -> Feed:
    settings.FEED_INBOX_ROOT = tmp_path
    return scheduled(feed, Feed.Source.INBOX, schedule_minutes=schedule_minutes)


def drop(feed: Feed, tmp_path, name: str, patient, count: int = 2, *, age_seconds: float = 60) -> None:
    incoming = tmp_path / feed.code / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    entries = [
        {
            "resource": {
                "resourceType": "Condition",
                "id": f"{name}-{n}",
                "code": {"text": f"Problem {n}"},
                "subject": {"identifier": {"system": NHS, "value": patient.nhs_number}},
            }
        }
        for n in range(count)
    ]
    path = incoming / name
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    moment = timezone.now().timestamp() - age_seconds
    os.utime(path, (moment, moment))


def run_row(feed: Feed, status: str, minutes_ago: float) -> IngestRun:
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return IngestRun.objects.create(
        feed=feed, trigger=IngestRun.Trigger.SCHEDULE, status=status, started_at=started
    )


@pytest.fixture
def other_session():
    """A second database session, as another worker would have, to hold locks the code under test must see."""
    params = connection.get_connection_params()
    keys = ("dbname", "user", "password", "host", "port")
    session = psycopg.connect(**{key: params[key] for key in keys if key in params}, autocommit=True)
    yield session
    session.close()


# Due-ness.


def test_a_live_inbox_or_pull_feed_that_never_ran_is_due(cast, tmp_path, settings):
    inbox_feed(cast.cuh_feed, tmp_path, settings)
    scheduled(cast.cpft_feed, Feed.Source.HTTP_PULL)

    assert list(feeds_due()) == sorted([cast.cuh_feed, cast.cpft_feed], key=lambda feed: feed.pk)


@pytest.mark.parametrize(
    ("source", "state"),
    [
        (Feed.Source.INBOX, Feed.State.PAUSED),
        (Feed.Source.INBOX, Feed.State.ONBOARDING),
        (Feed.Source.HTTP_PULL, Feed.State.PAUSED),
        (Feed.Source.PUSH, Feed.State.LIVE),
        (Feed.Source.FILE, Feed.State.LIVE),
    ],
)
def test_paused_onboarding_push_and_file_feeds_are_never_due(cast, source, state):
    scheduled(cast.cuh_feed, source, state=state)

    assert cast.cuh_feed not in feeds_due()


def test_a_feed_is_not_due_again_until_its_schedule_has_passed_since_a_success(cast, tmp_path, settings):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings, schedule_minutes=60)
    run_row(feed, IngestRun.Status.SUCCEEDED, minutes_ago=59)

    assert feed not in feeds_due()
    assert feed in feeds_due(now=timezone.now() + timedelta(minutes=1, seconds=1))


def test_a_running_run_keeps_a_feed_from_being_due_and_a_failed_one_does_not(cast, tmp_path, settings):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings, schedule_minutes=60)
    failed = run_row(feed, IngestRun.Status.FAILED, minutes_ago=5)
    assert feed in feeds_due()

    run_row(feed, IngestRun.Status.RUNNING, minutes_ago=5)
    assert feed not in feeds_due()
    assert failed.status == IngestRun.Status.FAILED


def test_a_one_minute_feed_is_due_at_the_next_tick_even_if_its_last_run_started_late(
    cast, tmp_path, settings
):
    # Beat ticks every 60 s; a run starts a few seconds after its tick, so the next tick sees it 57 s old.
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings, schedule_minutes=1)
    run_row(feed, IngestRun.Status.SUCCEEDED, minutes_ago=57 / 60)

    assert feed in feeds_due()


# One run per feed at a time.


def test_a_second_concurrent_run_returns_already_running_at_once_and_does_nothing(
    cast, tmp_path, settings, other_session
):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings)
    drop(feed, tmp_path, "a.json", cast.patient_a)
    other_session.execute("SELECT pg_advisory_lock(%s, %s)", [FEED_RUN_NAMESPACE, feed.pk])

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert result.outcome == Outcome.ALREADY_RUNNING
    assert not runs(feed).exists()
    assert (tmp_path / feed.code / "incoming" / "a.json").exists()


def test_an_ingest_run_in_progress_by_another_path_counts_as_running(cast, tmp_path, settings, other_session):
    # The ingest command, a push or a replay holds only the pipeline's transaction lock while it writes.
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings)
    drop(feed, tmp_path, "a.json", cast.patient_a)
    other_session.execute("BEGIN")
    other_session.execute("SELECT pg_advisory_xact_lock(%s, %s)", [INGEST_RUN_NAMESPACE, feed.pk])
    live = run_row(feed, IngestRun.Status.RUNNING, minutes_ago=3)

    result = feed_run(feed, trigger=IngestRun.Trigger.COMMAND)

    assert result.outcome == Outcome.ALREADY_RUNNING
    live.refresh_from_db()
    assert live.status == IngestRun.Status.RUNNING
    other_session.execute("ROLLBACK")


def test_the_feed_lock_is_released_after_a_run_and_after_a_failure(cast, tmp_path, settings, other_session):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings)
    feed_run(feed, trigger=IngestRun.Trigger.COMMAND)
    Feed.objects.filter(pk=feed.pk).update(source=Feed.Source.HTTP_PULL, endpoint_url="ftp://example.org/")
    feed.refresh_from_db()
    assert feed_run(feed, trigger=IngestRun.Trigger.COMMAND).outcome == Outcome.FAILED

    taken = other_session.execute("SELECT pg_try_advisory_lock(%s, %s)", [FEED_RUN_NAMESPACE, feed.pk])

    assert taken.fetchone() == (True,)


def test_a_duplicate_scheduled_message_after_a_success_does_nothing(cast, tmp_path, settings):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings)
    drop(feed, tmp_path, "a.json", cast.patient_a)
    first = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)
    drop(feed, tmp_path, "b.json", cast.patient_a)

    second = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert (first.outcome, second.outcome) == (Outcome.SUCCEEDED, Outcome.NOT_DUE)
    assert (tmp_path / feed.code / "incoming" / "b.json").exists()
    assert runs(feed).count() == 1


def test_a_scheduled_message_for_a_paused_feed_does_nothing(cast, tmp_path, settings):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings)
    drop(feed, tmp_path, "a.json", cast.patient_a)
    Feed.objects.filter(pk=feed.pk).update(state=Feed.State.PAUSED)

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert result.outcome == Outcome.NOT_DUE
    assert (tmp_path / feed.code / "incoming" / "a.json").exists()


# Runs abandoned by a dead worker.


def test_an_abandoned_run_is_marked_failed_at_the_start_of_the_next_run(cast, tmp_path, settings):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings)
    abandoned = run_row(feed, IngestRun.Status.RUNNING, minutes_ago=90)
    other_feeds_run = run_row(cast.cpft_feed, IngestRun.Status.RUNNING, minutes_ago=90)
    drop(feed, tmp_path, "a.json", cast.patient_a)

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    abandoned.refresh_from_db()
    other_feeds_run.refresh_from_db()
    assert result.outcome == Outcome.SUCCEEDED
    assert result.recovered_run_ids == [abandoned.pk]
    assert (abandoned.status, abandoned.error) == (IngestRun.Status.FAILED, ABANDONED_ERROR)
    assert abandoned.finished_at is not None
    assert other_feeds_run.status == IngestRun.Status.RUNNING


# The dispatcher and the task, run in-process (the worker tests run them for real).


@pytest.fixture
def eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_the_dispatcher_runs_every_due_feed_and_only_those(cast, tmp_path, settings, eager_tasks):
    from records.tasks import feeds_due_dispatch_task

    due = inbox_feed(cast.cuh_feed, tmp_path, settings)
    drop(due, tmp_path, "a.json", cast.patient_a, count=3)
    scheduled(cast.cpft_feed, Feed.Source.INBOX, state=Feed.State.PAUSED)
    drop(cast.cpft_feed, tmp_path, "b.json", cast.patient_a)

    dispatched = feeds_due_dispatch_task.apply().get()

    assert dispatched == [due.pk]
    assert RecordEntry.objects.filter(feed=due, source_id__startswith="a.json").count() == 3
    assert not RecordEntry.objects.filter(feed=cast.cpft_feed, source_id__startswith="b.json").exists()
    run = runs(due).get()
    assert (run.status, run.trigger) == (IngestRun.Status.SUCCEEDED, IngestRun.Trigger.SCHEDULE)


def test_the_run_task_for_a_feed_that_no_longer_exists_does_nothing(db, eager_tasks):
    from records.tasks import feed_run_task

    assert feed_run_task.apply(args=[987654]).get() == {"feed_id": 987654, "outcome": "missing"}


# manage.py run_feed.


def test_run_feed_prints_each_run_and_a_summary_with_duration_and_throughput(cast, tmp_path, settings):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings)
    drop(feed, tmp_path, "a.json", cast.patient_a, count=4, age_seconds=120)
    drop(feed, tmp_path, "b.json", cast.patient_b, count=2, age_seconds=60)
    out = StringIO()

    call_command("run_feed", feed.code, stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "a.json" in lines[0] and "succeeded in" in lines[0] and "resources/s" in lines[0]
    assert "read 4 = created 4 + updated 0 + unchanged 0 + quarantined 0" in lines[0]
    assert "b.json" in lines[1]
    assert lines[2].startswith(f"Feed {feed.code}: succeeded in ")
    assert "resources/s; 2 run(s), 6 resources read; files processed 2, failed 0" in lines[2]
    assert set(runs(feed).values_list("trigger", flat=True)) == {"command"}


def test_run_feed_with_an_unknown_code_lists_the_feeds_it_can_run(cast, tmp_path, settings):
    inbox_feed(cast.cuh_feed, tmp_path, settings)

    with pytest.raises(CommandError, match=r"no feed with the code 'nope'.*: cuh-epr\.$"):
        call_command("run_feed", "nope")
    with pytest.raises(CommandError, match=r"the push feed with the code 'gp-d81001'"):
        Feed.objects.filter(pk=cast.gp_a_feed.pk).update(source=Feed.Source.PUSH)
        call_command("run_feed", cast.gp_a_feed.code)


def test_run_feed_says_so_and_fails_when_the_feed_is_already_running(cast, tmp_path, settings, other_session):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings)
    other_session.execute("SELECT pg_advisory_lock(%s, %s)", [FEED_RUN_NAMESPACE, feed.pk])

    with pytest.raises(CommandError, match="is already running"):
        call_command("run_feed", feed.code)


def test_run_feed_on_an_empty_inbox_says_there_is_nothing_to_ingest(cast, tmp_path, settings):
    feed = inbox_feed(cast.cuh_feed, tmp_path, settings)
    out = StringIO()

    call_command("run_feed", feed.code, stdout=out)

    assert out.getvalue() == f"Feed {feed.code}: nothing to ingest; no file is ready in its inbox.\n"
    assert not runs(feed).exists()
