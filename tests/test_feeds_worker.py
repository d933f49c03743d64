"""A real Celery worker and beat, on real Redis and the test database: a feed runs on its schedule, and a worker
killed mid-run loses nothing and ingests nothing twice.

The worker and beat are other processes, so these tests commit their rows (`transactional_db`) and give the
processes the test database's URL, a Redis database of their own and an inbox folder under tmp_path.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import connection
from django.utils import timezone

from records.feeds.locks import feed_ingest_lock_is_held
from records.feeds.scheduling import ABANDONED_ERROR
from records.models import Feed, IngestRun, Organisation, Patient, QuarantinedRecord, RecordEntry
from records.nhs_number import check_digit
from records.services import feed_upsert, organisation_upsert
from records.tasks import feed_run_task
from sharedcare.celery import app as celery_app
from tests.builders import NHS

VISIBILITY_TIMEOUT = 10


class Services:
    """Worker and beat processes started by one test, each in its own process group, stopped in `stop_all`."""

    def __init__(self, tmp_path: Path, redis_db: int) -> None:
        self.tmp_path = tmp_path
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        database = urlsplit(os.environ["DATABASE_URL"])
        self.redis_url = re.sub(r"/\d+$", f"/{redis_db}", os.environ["REDIS_URL"])
        self.env = {
            **os.environ,
            "DATABASE_URL": urlunsplit(database._replace(path="/" + connection.settings_dict["NAME"])),
            "REDIS_URL": self.redis_url,
            "FEED_INBOX_ROOT": str(tmp_path / "inbox"),
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        }
        redis.Redis.from_url(self.redis_url).flushdb()

    def start(self, name: str, *arguments: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sharedcare", *arguments, "--loglevel", "INFO"],
            env=self.env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append((process, log))
        return process

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        process = self.start(
            name,
            "worker",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "-Q",
            "celery",
            "--without-mingle",
            "--without-gossip",
            "--hostname",
            f"{name}@%h",
        )
        wait_for(lambda: " ready." in self.log(process), 30, f"{name} to be ready", self)
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return next(log for started, log in self.processes if started is process).read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}" for _, log in self.processes
        )

    def send(self, task, *args: object) -> None:
        with celery_app.connection_for_write(self.redis_url) as broker:
            task.apply_async(args=args, connection=broker)

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children at once, as a crash or an OOM kill would."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def wait_for(condition: Callable[[], object], seconds: float, what: str, services: Services) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {seconds} s for {what}\n{services.logs()}")
        time.sleep(0.1)


@pytest.fixture
def services(transactional_db, tmp_path, settings) -> Iterator[Services]:
    settings.FEED_INBOX_ROOT = tmp_path / "inbox"
    started = Services(tmp_path, redis_db=2)
    try:
        yield started
    finally:
        started.stop_all()


def nhs_numbers(count: int) -> list[str]:
    numbers: list[str] = []
    body = 0
    while len(numbers) < count:
        first_nine = f"999{body:06d}"
        body += 1
        digit = check_digit(first_nine)
        if digit is not None:
            numbers.append(f"{first_nine}{digit}")
    return numbers


def inbox_feed(code: str, *, schedule_minutes: int) -> Feed:
    trust = organisation_upsert(ods_code="RGM", name="Royal Papworth", kind=Organisation.Kind.ACUTE_TRUST)
    feed = feed_upsert(code=code, organisation=trust, name="Hospital EPR", sections=[])
    Feed.objects.filter(pk=feed.pk).update(source=Feed.Source.INBOX, schedule_minutes=schedule_minutes)
    feed.refresh_from_db()
    return feed


def drop(feed: Feed, name: str, lines: list[dict]) -> Path:
    incoming = Path(settings.FEED_INBOX_ROOT) / feed.code / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / name
    path.write_text("\n".join(json.dumps(line) for line in lines))
    settled = time.time() - 60
    os.utime(path, (settled, settled))
    return path


def condition(resource_id: str, nhs_number: str) -> dict:
    return {
        "resourceType": "Condition",
        "id": resource_id,
        "code": {"text": "Asthma"},
        "subject": {"identifier": {"system": NHS, "value": nhs_number}},
    }


def bulk_inbox_feed(code: str, resources: int) -> Feed:
    """An inbox feed with one file of `resources` conditions waiting, for 400 patients held."""
    feed = inbox_feed(code, schedule_minutes=60)
    numbers = nhs_numbers(400)
    Patient.objects.bulk_create([Patient(nhs_number=number) for number in numbers])
    drop(feed, "bulk.ndjson", [condition(f"c{n}", numbers[n % len(numbers)]) for n in range(resources)])
    return feed


def test_beat_starts_a_due_inbox_feed_and_the_worker_ingests_it(services, tmp_path):
    feed = inbox_feed("papworth-inbox", schedule_minutes=1)
    [number] = nhs_numbers(1)
    Patient.objects.create(nhs_number=number)
    drop(feed, "attendances.ndjson", [condition(f"c{n}", number) for n in range(5)])
    # Beat keeps each entry's last run in its schedule file and first fires a 60 s entry 60 s after it starts;
    # record a last run an hour ago, as a beat that has been running would have, so the dispatch is due now.
    schedule_file = tmp_path / "beat-schedule"
    scheduler = PersistentScheduler(app=celery_app, schedule_filename=str(schedule_file), lazy=False)
    scheduler.schedule["dispatch-due-feeds"].last_run_at = timezone.now() - timedelta(hours=1)
    scheduler.sync()
    scheduler.close()

    services.worker("worker")
    services.start("beat", "beat", "-s", str(schedule_file))

    processed = Path(settings.FEED_INBOX_ROOT) / feed.code / "processed" / "attendances.ndjson"
    wait_for(
        lambda: processed.exists() and IngestRun.objects.filter(feed=feed, status="succeeded").exists(),
        90,
        "the scheduled run",
        services,
    )
    run = IngestRun.objects.get(feed=feed)
    assert (run.status, run.trigger, run.created) == ("succeeded", "schedule", 5)
    assert run.duration_seconds is not None and run.duration_seconds > 0
    assert RecordEntry.objects.filter(feed=feed).count() == 5
    assert list((processed.parent.parent / "incoming").iterdir()) == []


def test_a_worker_killed_mid_run_loses_nothing_and_the_redelivered_run_ingests_every_record_once(services):
    resources = 40_000
    feed = bulk_inbox_feed("papworth-bulk", resources)
    first = services.worker("worker-1")

    services.send(feed_run_task, feed.pk)
    sent = time.monotonic()
    wait_for(lambda: feed_ingest_lock_is_held(feed), 30, "the run to start writing", services)
    time.sleep(1)
    abandoned = IngestRun.objects.get(feed=feed)
    assert abandoned.status == IngestRun.Status.RUNNING, "the run ended before the kill; make the file bigger"
    services.kill(first)

    # PostgreSQL rolls the dead worker's transaction back and releases its locks when its connection drops.
    wait_for(lambda: not feed_ingest_lock_is_held(feed), 30, "the dead worker's session to end", services)
    abandoned.refresh_from_db()
    assert abandoned.status == IngestRun.Status.RUNNING
    assert not RecordEntry.objects.filter(feed=feed).exists()
    inbox = Path(settings.FEED_INBOX_ROOT) / feed.code
    assert [path.name for path in (inbox / "incoming").iterdir()] == ["bulk.ndjson"]

    # Redis hands an unacknowledged message on once its visibility timeout has passed; a starting worker looks.
    time.sleep(max(0.0, VISIBILITY_TIMEOUT + 1 - (time.monotonic() - sent)))
    services.worker("worker-2")
    wait_for(
        lambda: IngestRun.objects.filter(feed=feed, status="succeeded").exists(),
        45,
        "the redelivered run to succeed",
        services,
    )

    abandoned.refresh_from_db()
    assert (abandoned.status, abandoned.error) == (IngestRun.Status.FAILED, ABANDONED_ERROR)
    succeeded = IngestRun.objects.get(feed=feed, status="succeeded")
    assert (succeeded.resources_read, succeeded.created, succeeded.trigger) == (
        resources,
        resources,
        "schedule",
    )
    entries = RecordEntry.objects.filter(feed=feed)
    assert entries.count() == resources
    assert entries.values("source_id").distinct().count() == resources
    wait_for(lambda: (inbox / "processed" / "bulk.ndjson").exists(), 10, "the file to move", services)
    assert [path.name for path in (inbox / "processed").iterdir()] == ["bulk.ndjson"]
    assert list((inbox / "incoming").iterdir()) == []
    assert list((inbox / "failed").iterdir()) == []
    assert IngestRun.objects.filter(feed=feed).count() == 2


def is_alive(pid: int) -> bool:
    """Whether process `pid` is running (a zombie, dead but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_prefork_child_validates_beside_a_worker_of_its_own_that_dies_with_it(services):
    """INGEST_VALIDATION_PROCESSES=2 in a real Celery prefork child, with a core free: the run forks a validation
    worker. When the pool kills the child mid-run with SIGKILL, as it does at the task's hard time limit, the
    validation worker goes too (PR_SET_PDEATHSIG), and the redelivered run ingests every record exactly once."""
    services.env["INGEST_VALIDATION_PROCESSES"] = "2"
    resources = 40_000
    feed = bulk_inbox_feed("papworth-validated", resources)
    worker = services.worker("worker-1")
    started = re.compile(r"validation worker (\d+) started beside process (\d+)")

    services.send(feed_run_task, feed.pk)
    wait_for(lambda: started.search(services.log(worker)), 60, "a validation worker to start", services)
    found = started.search(services.log(worker))
    assert found is not None
    helper, child = int(found[1]), int(found[2])
    assert is_alive(helper) and child != worker.pid
    assert IngestRun.objects.get(feed=feed).status == IngestRun.Status.RUNNING, "make the file bigger"
    os.kill(child, signal.SIGKILL)

    wait_for(lambda: not is_alive(helper), 10, "the validation worker to end with its run", services)
    wait_for(
        lambda: IngestRun.objects.filter(feed=feed, status="succeeded").exists(),
        90,
        "the redelivered run to succeed",
        services,
    )
    succeeded = IngestRun.objects.get(feed=feed, status="succeeded")
    assert (succeeded.resources_read, succeeded.created) == (resources, resources)
    entries = RecordEntry.objects.filter(feed=feed)
    assert entries.count() == entries.values("source_id").distinct().count() == resources
    # Every validation worker any run started has ended: the one killed, and any the redelivered run closed.
    helpers = [int(pid) for pid, _ in started.findall(services.log(worker))]
    wait_for(
        lambda: not any(is_alive(pid) for pid in helpers), 10, "every validation worker to end", services
    )


CORRUPT_FILES = {
    "truncated.json": b'{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Co',
    "wrong-encoding.json": '{"resourceType": "Condition", "id": "latin", "code": {"text": "Caf\u00e9"}}'.encode(
        "latin-1"
    ),
    "empty.json": b"",
    "bomb.xml": (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        b'<Condition xmlns="http://hl7.org/fhir"><id value="&lol3;"/></Condition>'
    ),
    "external.xml": (
        b'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
        b'<Condition xmlns="http://hl7.org/fhir"><id value="x"/><note><text value="&secret;"/></note></Condition>'
    ),
    "too-large.ndjson": b"{}\n" * 5000,
}


def test_corrupt_files_get_clear_errors_lose_nothing_and_the_worker_keeps_running(services):
    services.env["INGEST_MAX_FILE_BYTES"] = "4096"
    feed = inbox_feed("papworth-inbox", schedule_minutes=60)
    [number] = nhs_numbers(1)
    Patient.objects.create(nhs_number=number)
    incoming = Path(settings.FEED_INBOX_ROOT) / feed.code / "incoming"
    incoming.mkdir(parents=True)
    settled = time.time() - 60
    for name, data in CORRUPT_FILES.items():
        (incoming / name).write_bytes(data)
        os.utime(incoming / name, (settled, settled))
    drop(feed, "good.ndjson", [condition(f"good{n}", number) for n in range(3)])
    worker = services.worker("worker")

    services.send(feed_run_task, feed.pk)
    wait_for(lambda: not any(incoming.iterdir()), 60, "every inbox file to be handled", services)

    handled = {
        path.name for folder in ("processed", "failed") for path in (incoming.parent / folder).iterdir()
    }
    assert {*CORRUPT_FILES, "good.ndjson"} <= handled
    assert RecordEntry.objects.filter(feed=feed).count() == 3
    quarantined = QuarantinedRecord.objects.filter(feed=feed)
    locations = " ".join(quarantined.values_list("location", flat=True))
    for name in CORRUPT_FILES:
        assert name in locations, name
    assert set(quarantined.values_list("reason", flat=True)) == {QuarantinedRecord.Reason.UNREADABLE}
    assert all(record.detail for record in quarantined)
    assert not quarantined.filter(raw_payload__contains="root:x:0:0").exists()
    assert not quarantined.filter(detail__contains="root:x:0:0").exists()

    # The same worker is still alive and takes the next feed's run.
    assert worker.poll() is None
    second = inbox_feed("papworth-second", schedule_minutes=60)
    drop(second, "next.ndjson", [condition("next", number)])
    services.send(feed_run_task, second.pk)
    wait_for(
        lambda: IngestRun.objects.filter(feed=second, status="succeeded").exists(),
        30,
        "the next run",
        services,
    )
    assert RecordEntry.objects.filter(feed=second).count() == 1
