"""The inbox source: files in, moved to processed/ or failed/ only after their run ended, never deleted."""

import json
import os
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import OperationalError
from django.utils import timezone

import records.ingest.ingestion as ingestion
from records.feeds.results import Outcome
from records.feeds.scheduling import feed_run
from records.models import Feed, IngestRun, QuarantinedRecord, RecordEntry
from tests.builders import NHS


@pytest.fixture
def feed(cast, tmp_path, settings) -> Feed:
    settings.FEED_INBOX_ROOT = tmp_path
    IngestRun.objects.filter(feed=cast.cuh_feed).update(started_at=timezone.now() - timedelta(days=7))
    Feed.objects.filter(pk=cast.cuh_feed.pk).update(source=Feed.Source.INBOX, state=Feed.State.LIVE)
    cast.cuh_feed.refresh_from_db()
    return cast.cuh_feed


def folder(tmp_path, feed: Feed, name: str):
    return tmp_path / feed.code / name


def listing(tmp_path, feed: Feed) -> dict[str, list[str]]:
    return {
        name: sorted(path.name for path in folder(tmp_path, feed, name).iterdir())
        for name in ("incoming", "processed", "failed")
    }


def bundle(prefix: str, patient, count: int) -> bytes:
    entries = [
        {
            "resource": {
                "resourceType": "Condition",
                "id": f"{prefix}-{n}",
                "code": {"text": f"Problem {n}"},
                "subject": {"identifier": {"system": NHS, "value": patient.nhs_number}},
            }
        }
        for n in range(count)
    ]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


def drop(tmp_path, feed: Feed, name: str, data: bytes, *, age_seconds: float = 60) -> None:
    incoming = folder(tmp_path, feed, "incoming")
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / name
    path.write_bytes(data)
    moment = timezone.now().timestamp() - age_seconds
    os.utime(path, (moment, moment))


def test_good_files_are_ingested_oldest_first_each_in_its_own_run_and_moved_to_processed(
    cast, feed, tmp_path
):
    drop(tmp_path, feed, "b-newer.json", bundle("b", cast.patient_b, 2), age_seconds=30)
    drop(tmp_path, feed, "a-older.json", bundle("a", cast.patient_a, 3), age_seconds=90)

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert result.outcome == Outcome.SUCCEEDED
    assert [run.source_name.rsplit("/", 1)[-1] for run in result.runs] == ["a-older.json", "b-newer.json"]
    assert [(run.status, run.created, run.trigger) for run in result.runs] == [
        ("succeeded", 3, "schedule"),
        ("succeeded", 2, "schedule"),
    ]
    assert listing(tmp_path, feed) == {
        "incoming": [],
        "processed": ["a-older.json", "b-newer.json"],
        "failed": [],
    }
    assert RecordEntry.objects.filter(feed=feed, source_id__regex=r"^[ab]-").count() == 5
    assert result.as_dict()["resources_read"] == 5


def test_the_same_file_dropped_again_changes_nothing_and_both_copies_are_kept(cast, feed, tmp_path):
    data = bundle("a", cast.patient_a, 3)
    drop(tmp_path, feed, "a.json", data)
    feed_run(feed, trigger=IngestRun.Trigger.COMMAND)
    stamps = dict(RecordEntry.objects.filter(feed=feed).values_list("pk", "updated_at"))
    drop(tmp_path, feed, "a.json", data)

    again = feed_run(feed, trigger=IngestRun.Trigger.COMMAND)

    assert [(run.created, run.updated, run.unchanged) for run in again.runs] == [(0, 0, 3)]
    assert dict(RecordEntry.objects.filter(feed=feed).values_list("pk", "updated_at")) == stamps
    assert listing(tmp_path, feed)["processed"] == ["a.2.json", "a.json"]
    assert (folder(tmp_path, feed, "processed") / "a.2.json").read_bytes() == data


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (bundle("t", SimpleNamespace(nhs_number="9990000018"), 2)[:-25], "not valid JSON"),
        (b"", "The file is empty."),
        (b'{"resourceType": "Condition", "id": "x\xff"}', "not valid UTF-8"),
    ],
    ids=["truncated-json", "empty", "bad-utf-8"],
)
def test_a_corrupt_file_is_quarantined_whole_and_its_file_goes_to_processed(feed, tmp_path, data, detail):
    drop(tmp_path, feed, "corrupt.json", data)

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert result.outcome == Outcome.SUCCEEDED
    [run] = result.runs
    assert (run.status, run.resources_read, run.quarantined) == ("succeeded", 1, 1)
    record = QuarantinedRecord.objects.get(ingest_run=run)
    assert record.reason == QuarantinedRecord.Reason.UNREADABLE
    assert detail in record.detail
    assert record.raw_payload == data.decode("utf-8", errors="replace")
    assert listing(tmp_path, feed) == {"incoming": [], "processed": ["corrupt.json"], "failed": []}


def test_a_file_whose_run_fails_goes_to_failed_with_the_reason_beside_it_and_the_others_go_on(
    cast, feed, tmp_path, monkeypatch
):
    drop(tmp_path, feed, "a-bad.json", bundle("a", cast.patient_a, 2), age_seconds=90)
    drop(tmp_path, feed, "b-good.json", bundle("b", cast.patient_a, 2), age_seconds=30)
    real_refresh = ingestion.relationships_refresh
    calls = []

    def refresh_failing_once(patient_ids):
        calls.append(patient_ids)
        if len(calls) == 1:
            raise RuntimeError("relationship table is locked for maintenance")
        return real_refresh(patient_ids)

    monkeypatch.setattr(ingestion, "relationships_refresh", refresh_failing_once)

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert result.outcome == Outcome.FAILED
    assert [run.status for run in result.runs] == ["failed", "succeeded"]
    assert "relationship table is locked" in result.message
    assert listing(tmp_path, feed) == {
        "incoming": [],
        "processed": ["b-good.json"],
        "failed": ["a-bad.json", "a-bad.json.error.txt"],
    }
    sidecar = (folder(tmp_path, feed, "failed") / "a-bad.json.error.txt").read_text()
    assert f"Ingest run {result.runs[0].pk} of feed {feed.code} failed" in sidecar
    assert "RuntimeError: relationship table is locked for maintenance" in sidecar
    assert not RecordEntry.objects.filter(source_id__startswith="a-").exists()
    # The task's result is logged by Celery: ids and counts only, the error stays on the run.
    assert "relationship table" not in json.dumps(result.as_dict())


def test_a_database_error_keeps_the_file_in_incoming_for_the_retry(cast, feed, tmp_path, monkeypatch):
    drop(tmp_path, feed, "a.json", bundle("a", cast.patient_a, 2))

    def database_gone(patient_ids):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ingestion, "relationships_refresh", database_gone)

    with pytest.raises(OperationalError, match="server closed the connection"):
        feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert listing(tmp_path, feed) == {"incoming": ["a.json"], "processed": [], "failed": []}
    assert IngestRun.objects.get(feed=feed, source_name__endswith="a.json").status == IngestRun.Status.FAILED


def test_files_still_being_written_are_left_for_the_next_run(cast, feed, tmp_path):
    drop(tmp_path, feed, "arriving.json.part", bundle("p", cast.patient_a, 1))
    drop(tmp_path, feed, "just-now.json", bundle("n", cast.patient_a, 1), age_seconds=0)
    drop(tmp_path, feed, ".hidden.json", bundle("h", cast.patient_a, 1))

    result = feed_run(feed, trigger=IngestRun.Trigger.COMMAND)

    assert result.outcome == Outcome.NOTHING_TO_DO
    assert result.files_waiting == ["arriving.json.part", "just-now.json"]
    assert listing(tmp_path, feed)["incoming"] == [".hidden.json", "arriving.json.part", "just-now.json"]
    assert not RecordEntry.objects.filter(source_id__in=["p-0", "n-0", "h-0"]).exists()


def test_an_inbox_run_creates_its_folders_and_records_no_run_when_there_is_nothing(feed, tmp_path):
    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert result.outcome == Outcome.NOTHING_TO_DO
    assert listing(tmp_path, feed) == {"incoming": [], "processed": [], "failed": []}
    assert not IngestRun.objects.filter(feed=feed, trigger=IngestRun.Trigger.SCHEDULE).exists()
