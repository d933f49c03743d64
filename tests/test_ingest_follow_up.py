"""What the task layer chains after an ingest run: the replay of records quarantined for a patient who has now
arrived. The pipeline only says who arrived; every caller of it (tasks, commands) queues the replay after commit."""

import json
import os
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone

import records.ingest.ingestion as ingestion
from records import tasks
from records.ingest.quarantine import QuarantineReplayResult
from records.models import Feed, IngestRun, Patient, QuarantinedRecord, RecordEntry
from tests.builders import NEWCOMER, NHS, condition, ingest

Status = QuarantinedRecord.Status


def newcomer_resource() -> dict:
    return {
        "resourceType": "Patient",
        "id": "p-new",
        "identifier": [{"system": NHS, "value": NEWCOMER}],
        "name": [{"family": "Newcomer", "given": ["Nia"]}],
        "gender": "female",
        "birthDate": "1975-06-07",
    }


def arrived(*patient_ids: int) -> IngestRun:
    run = IngestRun()
    run.arrived_patient_ids = patient_ids
    return run


@pytest.fixture
def sent(monkeypatch) -> list[list[int]]:
    """What the task layer queues for replay, instead of sending it to the broker."""
    queued: list[list[int]] = []
    monkeypatch.setattr(tasks.unknown_patients_replay_task, "delay", queued.append)
    return queued


def test_the_ingest_command_replays_what_waited_for_the_patient_its_run_brought(
    cast, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    ingest(cast.cuh_feed, condition("c1", NEWCOMER, "Fractured wrist"))
    waiting = QuarantinedRecord.objects.get(reason=QuarantinedRecord.Reason.UNKNOWN_PATIENT)
    # The replay task, run here rather than by a worker.
    monkeypatch.setattr(tasks.unknown_patients_replay_task, "delay", tasks.unknown_patients_replay_task)
    (tmp_path / "patient.json").write_text(json.dumps(newcomer_resource()))

    with django_capture_on_commit_callbacks(execute=True):
        call_command("ingest", str(tmp_path), "--feed", cast.gp_a_feed.code, stdout=StringIO())

    waiting.refresh_from_db()
    assert waiting.status == Status.REPLAYED
    entry = RecordEntry.objects.get(source_id="c1")
    assert (entry.patient.nhs_number, entry.summary) == (NEWCOMER, "Fractured wrist")


def test_a_run_that_brings_no_patient_queues_no_replay(cast, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        tasks.arrived_patients_replay_enqueue([ingest(cast.cuh_feed, condition("c1", cast.patient_a))])

    assert sent == []


def test_the_feed_run_task_queues_the_replay_as_each_run_commits_even_if_a_later_one_fails(
    cast, sent, tmp_path, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """An inbox of two files: the first brings a patient, the second's run loses the database. The task is
    retried for the second, and the patient the first brought still has its replay queued."""
    settings.FEED_INBOX_ROOT = tmp_path
    feed = cast.gp_a_feed
    IngestRun.objects.filter(feed=feed).update(started_at=timezone.now() - timedelta(days=7))
    Feed.objects.filter(pk=feed.pk).update(source=Feed.Source.INBOX, state=Feed.State.LIVE)
    incoming = tmp_path / feed.code / "incoming"
    incoming.mkdir(parents=True)
    for age, name, resource in [
        (90, "a.json", newcomer_resource()),
        (60, "b.json", condition("c9", NEWCOMER)),
    ]:
        path = incoming / name
        path.write_text(json.dumps(resource))
        moment = timezone.now().timestamp() - age
        os.utime(path, (moment, moment))
    refreshes: list[object] = []

    def database_gone_the_second_time(patient_ids):
        refreshes.append(patient_ids)
        if len(refreshes) == 2:
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ingestion, "relationships_refresh", database_gone_the_second_time)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(OperationalError):
        tasks.feed_run_task(feed.pk)

    assert sent == [[Patient.objects.get(nhs_number=NEWCOMER).pk]]


def test_the_pushed_batch_task_queues_the_replay_for_its_run(
    cast, sent, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(tasks, "pushed_batch_process", lambda batch_id: arrived(4))

    with django_capture_on_commit_callbacks(execute=True):
        tasks.pushed_batch_process_task(1)

    assert sent == [[4]]


def test_the_replay_tasks_queue_the_replay_for_the_patients_their_runs_brought(
    cast, sent, monkeypatch, django_capture_on_commit_callbacks
):
    """A replayed Patient resource may itself bring a patient: what waited for that one goes next."""
    monkeypatch.setattr(
        tasks,
        "quarantine_replay",
        lambda ids, user_id: QuarantineReplayResult(runs=[arrived(6)], replayed_ids=ids),
    )
    monkeypatch.setattr(
        tasks,
        "unknown_patients_replay",
        lambda patient_ids: QuarantineReplayResult(runs=[arrived(6)], replayed_ids=[11, 12]),
    )

    with django_capture_on_commit_callbacks(execute=True):
        tasks.quarantine_replay_task([10])
        replayed = tasks.unknown_patients_replay_task([2])

    assert replayed == 2
    assert sent == [[6], [6]]
