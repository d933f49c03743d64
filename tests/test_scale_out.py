"""docker/compose.yml scaled out to two web processes and two Celery workers, run without Docker: the processes its
rendered configuration describes, on 127.0.0.1 ports against the one test database and the test Redis.

Each service's command and environment are read from `docker compose config` (with WEB_REPLICAS=2 and
WORKER_REPLICAS=2), the web command from the Dockerfile's CMD as compose would, and as many processes of each are
started as the configuration has replicas. Only what a container has of its own is replaced: the listening address,
each worker's node name (a container's hostname), the database and broker addresses, the shared inbox volume's path
and beat's schedule file. Then what scaling out needs is shown:

- a session signed in on one web process is honoured by the other (sessions live in the database);
- record opens sent to both web processes at once each append their event to the one audit chain, which verifies,
  with no two events linked to the same predecessor;
- scheduled feed runs are taken by both workers, each run done exactly once. Determinism comes from the project's
  own settings, not from timing: every run waits at its first write on a row lock the test holds (as an
  administrator's edit of the feeds would), a worker runs at most `--concurrency` tasks and, with late
  acknowledgement and a prefetch multiplier of 1, reserves no more; so the four runs in flight are two on each worker;
- one beat dispatches them.

The processes are outside the test's transaction, so the test commits its rows (`transactional_db`). Every process
is stopped, by its own process group, when the test ends, whatever happened. Waits are polls with deadlines for a
hung process, never a speed requirement.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from celery import Celery
from celery.beat import PersistentScheduler
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from playwright.sync_api import expect

import sharedcare.settings as project_settings
from audit.models import AccessEvent
from records.models import Feed, IngestRun, RecordEntry
from records.services import feed_upsert
from sharedcare.celery import app as celery_app
from tests.builders import PASSWORD, authenticator_of, compose_command, condition, log_in, ndjson

ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = ROOT / "docker"
# What `docker compose config` renders with: two web processes and two workers. The passwords reach no process here
# (the database and broker addresses are replaced by the test's).
COMPOSE_INPUTS = {
    "POSTGRES_PASSWORD": "example",
    "DB_OWNER_PASSWORD": "example",
    "DB_APP_PASSWORD": "example",
    "WEB_REPLICAS": "2",
    "WORKER_REPLICAS": "2",
    # Plain HTTP on loopback: no TLS-terminating proxy stands in front here.
    "HTTPS": "false",
    "ALLOWED_HOSTS": "127.0.0.1",
    # One gunicorn worker a web process on this small machine; also shows the variable reaches gunicorn.
    "GUNICORN_CMD_ARGS": "--workers 1",
}
# A Redis database no other test uses, flushed first.
REDIS_DB = 4
# Deadlines for a hung process on a busy two-core machine, not speed requirements.
START_SECONDS = 180
SETTLED_SECONDS = 180
FEED_CODES = ("scale-out-a", "scale-out-b", "scale-out-c", "scale-out-d")
RESOURCES_PER_FEED = 5
OPENS = 8


# The rendered configuration (docker-compose 1.x and `docker compose` both print YAML; the project has no YAML
# library, and these few shapes are all the test reads).


@dataclass(frozen=True)
class Service:
    replicas: int
    command: list[str]
    environment: dict[str, str]
    # Each mount's target (in the container) and source (a named volume or a host path).
    volumes: dict[str, str]


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return json.loads(text)
    return text


def _block(config: str, name: str) -> str:
    found = re.search(rf"^  {name}:\n((?:    .*\n|\n)*)", config, re.M)
    assert found, f"no service {name} in the rendered configuration"
    return found.group(1)


def _list(block: str, key: str) -> list[str]:
    found = re.search(rf"^    {key}:\n((?:    (?:  )?- .*\n)*)", block, re.M)
    return [_scalar(item) for item in re.findall(r"^ +- (.*)$", found.group(1), re.M)] if found else []


def _volumes(block: str) -> dict[str, str]:
    """Each mount's target and source: short syntax (docker-compose 1.x) or long (`docker compose`)."""
    found = re.search(r"^    volumes:\n((?:      .*\n|    - .*\n)*)", block, re.M)
    if not found:
        return {}
    text = found.group(1)
    long_syntax = re.findall(r"source: (\S+)\n\s+target: (\S+)", text)
    if long_syntax:
        return {_scalar(target): _scalar(source) for source, target in long_syntax}
    mounts = (_scalar(item).split(":") for item in re.findall(r"^ +- (.*)$", text, re.M))
    return {mount[1]: mount[0] for mount in mounts}


def _environment(block: str) -> dict[str, str]:
    found = re.search(r"^    environment:\n((?:      .*\n)*)", block, re.M)
    assert found, block
    pairs = (line.strip().split(":", 1) for line in found.group(1).splitlines())
    return {key: _scalar(value) for key, value in pairs}


def _image_defaults() -> tuple[list[str], dict[str, str]]:
    """The final stage's CMD and ENV of docker/Dockerfile: what a service without a command of its own runs."""
    final = (DOCKER_DIR / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    commands = re.findall(r"^CMD (\[.*\])$", final, re.M)
    assert commands, "the Dockerfile has no CMD"
    environment: dict[str, str] = {}
    for line in re.findall(r"^ENV (.*)$", final, re.M):
        environment.update(pair.split("=", 1) for pair in shlex.split(line))
    return json.loads(commands[-1]), environment


def _rendered(secret_key: str) -> tuple[dict[str, Service], dict[str, str]]:
    result = subprocess.run(
        [*compose_command(), "-f", str(DOCKER_DIR / "compose.yml"), "config"],
        env={"PATH": os.environ["PATH"], **COMPOSE_INPUTS, "SECRET_KEY": secret_key},
        capture_output=True,
        text=True,
        check=False,
        cwd=DOCKER_DIR,
    )
    assert result.returncode == 0, result.stderr
    image_command, image_environment = _image_defaults()
    services = {}
    for name in ("web", "worker", "beat"):
        block = _block(result.stdout, name)
        replicas = re.search(r"^      replicas: (\d+)$", block, re.M)
        assert replicas, block
        services[name] = Service(
            replicas=int(replicas.group(1)),
            command=_list(block, "command") or image_command,
            environment=_environment(block),
            volumes=_volumes(block),
        )
    return services, image_environment


def _option_set(command: list[str], option: str, value: str) -> list[str]:
    """`command` with the value after `option` replaced; the option must be there (compose drifting fails here)."""
    assert option in command, f"{option} is not in {command}"
    at = command.index(option) + 1
    return [*command[:at], value, *command[at + 1 :]]


# The processes.


APPLICATION_NAME_PREFIX = "scale-out-"


def _named(database_url: str, name: str) -> str:
    """The URL with the process's name as its sessions' application_name, so they can be told apart."""
    parts = urlsplit(database_url)
    query = "&".join(filter(None, [parts.query, f"application_name={APPLICATION_NAME_PREFIX}{name}"]))
    return urlunsplit(parts._replace(query=query))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found.append(int(entry.name))
    return found


class Topology:
    """The processes one test started, each the leader of its own process group, its output in a file of its own."""

    def __init__(self, tmp_path: Path, environment: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.environment = environment
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.outputs: list[BinaryIO] = []
        # The workers' remote control, on their broker (an app of its own: the project's is bound to the test's).
        self.control = Celery("scale-out-control", broker=environment["REDIS_URL"])

    def start(self, name: str, command: list[str], environment: dict[str, str]) -> subprocess.Popen[bytes]:
        executable = Path(sys.executable).parent / command[0]
        assert executable.exists(), f"{command[0]} is not installed beside {sys.executable}"
        output = self.log_path(name).open("wb")
        self.outputs.append(output)
        process = subprocess.Popen(
            [str(executable), *command[1:]],
            cwd=ROOT,
            env={
                **self.environment,
                **environment,
                "DATABASE_URL": _named(self.environment["DATABASE_URL"], name),
            },
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def log_path(self, name: str) -> Path:
        return self.tmp_path / f"{name}.log"

    def log(self, name: str) -> str:
        return self.log_path(name).read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)[-3000:]}" for name in self.processes)

    def wait_for(self, condition: Callable[[], object], what: str, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    pytest.fail(
                        f"{name} ended with {process.returncode} while waiting for {what}\n{self.logs()}"
                    )
            if time.monotonic() > deadline:
                pytest.fail(f"waited {seconds} s for {what}\n{self.logs()}")
            time.sleep(0.2)

    def stop_all(self) -> None:
        self.control.close()
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        for output in self.outputs:
            output.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a loopback URL the test built
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _open(url: str, session_cookie: str) -> tuple[int, str, str]:
    """GET `url` with only the session cookie, as another tab of the same browser would send it."""
    request = urllib.request.Request(url, headers={"Cookie": session_cookie})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
        return response.status, response.headers["X-Request-ID"], response.read().decode()


def _task_results(log: str, task: str) -> list[object]:
    """What the worker's log says each `task` it ran returned."""
    return [
        ast.literal_eval(value)
        for value in re.findall(rf"Task {re.escape(task)}\[[0-9a-f-]+\] succeeded in [^:]+: (.*)$", log, re.M)
    ]


@pytest.fixture
def topology(
    transactional_db, cast, tmp_path, browser_contexts
) -> Iterator[tuple[Topology, dict[str, Service]]]:
    secret_key = f"scale-out-{uuid.uuid4().hex}"
    services, image_environment = _rendered(secret_key)
    redis_url = re.sub(r"/\d+$", f"/{REDIS_DB}", os.environ["REDIS_URL"])
    redis.Redis.from_url(redis_url).flushdb()
    database = urlsplit(os.environ["DATABASE_URL"])
    environment = {
        "PATH": os.environ["PATH"],
        **image_environment,
        "DATABASE_URL": urlunsplit(database._replace(path="/" + connection.settings_dict["NAME"])),
        "REDIS_URL": redis_url,
    }
    started = Topology(tmp_path, environment)
    try:
        yield started, services
    finally:
        started.stop_all()
        _sessions_ended(environment["DATABASE_URL"])


def _sessions_ended(database_url: str) -> None:
    """Wait until the stopped processes' database sessions are gone, so the test database can be flushed and
    dropped; fail naming any that stays. (On a connection of its own: Django's, here, would be one more to close.)"""
    query = (
        "SELECT application_name, state, left(query, 80) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name LIKE %s"
    )
    deadline = time.monotonic() + 60
    with psycopg.connect(database_url, autocommit=True) as watcher:
        while left := watcher.execute(query, [f"{APPLICATION_NAME_PREFIX}%"]).fetchall():
            assert time.monotonic() < deadline, f"database sessions left by the processes: {left}"
            time.sleep(0.2)


def _local(service: Service, tmp_path: Path) -> dict[str, str]:
    """The service's rendered environment, with the containers' addresses and the inbox volume made local."""
    environment = {**service.environment}
    environment.pop("DATABASE_URL")
    environment.pop("REDIS_URL")
    if "FEED_INBOX_ROOT" in environment:
        environment["FEED_INBOX_ROOT"] = str(tmp_path / "inbox")
    return environment


def _inbox_feeds(cast, inbox: Path) -> list[Feed]:
    feeds = []
    for code in FEED_CODES:
        feed = feed_upsert(code=code, organisation=cast.cuh, name=f"Inbox {code}", sections=[])
        Feed.objects.filter(pk=feed.pk).update(source=Feed.Source.INBOX, schedule_minutes=60)
        incoming = inbox / code / "incoming"
        incoming.mkdir(parents=True)
        path = incoming / "conditions.ndjson"
        path.write_bytes(
            ndjson(*(condition(f"{code}-{n}", cast.patient_a, "Asthma") for n in range(RESOURCES_PER_FEED)))
        )
        # Older than the inbox's settling time, so the first run takes it.
        settled = time.time() - 600
        os.utime(path, (settled, settled))
        feeds.append(Feed.objects.get(pk=feed.pk))
    return feeds


def _beat_schedule_due_now(path: Path) -> None:
    # Beat first fires a 60 s entry 60 s after it starts; record a last run an hour ago, as a beat that has been
    # running would have, so the dispatch of due feeds is sent at once.
    scheduler = PersistentScheduler(app=celery_app, schedule_filename=str(path), lazy=False)
    scheduler.schedule["dispatch-due-feeds"].last_run_at = timezone.now() - timedelta(hours=1)
    scheduler.sync()
    scheduler.close()


def _feed_runs_active(control: Celery, workers: int) -> dict[str, list[int]]:
    """Each worker's running `feed_run_task`s, by the worker's node name, as the workers themselves answer."""
    active = control.control.inspect(timeout=2, limit=workers).active() or {}
    return {
        node: sorted(task["args"][0] for task in tasks if task["name"] == "records.feed_run_task")
        for node, tasks in active.items()
    }


def test_two_web_processes_and_two_workers_share_one_database_one_audit_chain_and_one_beat(
    topology, cast, tmp_path, browser_contexts
):
    try:
        processes, services = topology
        web, worker, beat = services["web"], services["worker"], services["beat"]
        assert (web.replicas, worker.replicas, beat.replicas) == (2, 2, 1)
        # Both workers read the inbox from the same named volume, so a feed's files are there whichever takes its run.
        inbox_root = worker.environment["FEED_INBOX_ROOT"]
        assert inbox_root in worker.volumes, worker.volumes
        assert not worker.volumes[inbox_root].startswith(("/", ".")), (
            "the inbox is a named volume, not a host path"
        )

        # The user signs in with the project's own password hasher (the test settings' fast one is unknown to the
        # processes) and passes a second factor, so the session carries the second factor's verification too.
        hasher = import_string(project_settings.PASSWORD_HASHERS[0])()
        get_user_model().objects.filter(pk=cast.gp_ada.pk).update(
            password=make_password(PASSWORD, hasher=hasher)
        )
        authenticator_of(cast.gp_ada)
        feeds = _inbox_feeds(cast, tmp_path / "inbox")
        feed_codes = {feed.pk: feed.code for feed in feeds}
        schedule = tmp_path / "celerybeat-schedule"
        _beat_schedule_due_now(schedule)

        # Every feed run will wait at its first write (the run's row refers to the feed) until this lock goes.
        holder = psycopg.connect(processes.environment["DATABASE_URL"])
        try:
            holder.execute("SELECT id FROM records_feed WHERE id = ANY(%s) FOR UPDATE", [list(feed_codes)])

            ports = [_free_port() for _ in range(web.replicas)]
            for number, port in enumerate(ports, 1):
                processes.start(
                    f"web-{number}",
                    _option_set(web.command, "--bind", f"127.0.0.1:{port}"),
                    _local(web, tmp_path),
                )
            for number in range(1, worker.replicas + 1):
                processes.start(
                    f"worker-{number}",
                    [*worker.command, "--hostname", f"worker-{number}@%h"],
                    _local(worker, tmp_path),
                )
            for number in range(1, beat.replicas + 1):
                processes.start(
                    f"beat-{number}", _option_set(beat.command, "-s", str(schedule)), _local(beat, tmp_path)
                )

            bases = [f"http://127.0.0.1:{port}" for port in ports]
            for base in bases:
                processes.wait_for(lambda base=base: _answers(f"{base}/accounts/login/"), f"{base} to answer")
            # GUNICORN_CMD_ARGS reached gunicorn: one worker under each web process.
            assert [len(_children(processes.processes[f"web-{n}"].pid)) for n in (1, 2)] == [1, 1]

            # Signed in on web process A through its login page; process B honours the same session cookie.
            context_a = browser_contexts({"width": 1280, "height": 900})
            page_a = context_a.new_page()
            log_in(page_a, bases[0], "gp.ada")
            [session] = [cookie for cookie in context_a.cookies() if cookie["name"] == "sessionid"]
            context_b = browser_contexts({"width": 1280, "height": 900})
            stranger = context_b.new_page()
            stranger.goto(f"{bases[1]}/")
            assert "/accounts/login/" in stranger.url
            context_b.add_cookies([{"name": "sessionid", "value": session["value"], "url": bases[1]}])
            page_b = context_b.new_page()
            page_b.goto(f"{bases[1]}/")
            expect(page_b.get_by_role("heading", level=1)).to_have_text("Shared care record")
            expect(page_b.get_by_text("gp.ada").first).to_be_visible()

            # Record opens sent to both processes at once, each audited in the one chain.
            record = reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id})
            before = AccessEvent.objects.count()
            urls = [f"{bases[n % len(bases)]}{record}" for n in range(OPENS)]
            with ThreadPoolExecutor(max_workers=4) as pool:
                opens = list(pool.map(lambda url: _open(url, f"sessionid={session['value']}"), urls))
            assert [status for status, _, _ in opens] == [200] * OPENS
            assert all("Type 2 diabetes mellitus" in body for _, _, body in opens)
            request_ids = [request_id for _, request_id, _ in opens]
            events = AccessEvent.objects.filter(request_id__in=request_ids)
            assert sorted(events.values_list("request_id", flat=True)) == sorted(request_ids)
            assert set(events.values_list("username", "patient_id", "action", "outcome")) == {
                ("gp.ada", cast.patient_a.pk, AccessEvent.Action.VIEW_RECORD, AccessEvent.Outcome.ALLOWED)
            }
            assert AccessEvent.objects.count() == before + OPENS
            previous = list(AccessEvent.objects.values_list("previous_hash", flat=True))
            assert len(previous) == len(set(previous)), "two events were appended to the same predecessor"
            verified = io.StringIO()
            call_command("audit_verify", stdout=verified)
            assert "Audit chain intact" in verified.getvalue()

            # The one beat dispatched the due feeds; the four runs are in flight, two on each worker, held at the lock.
            held: dict[str, list[int]] = {}

            def all_runs_in_flight() -> bool:
                held.clear()
                held.update(_feed_runs_active(processes.control, worker.replicas))
                return sorted(pk for runs in held.values() for pk in runs) == sorted(feed_codes)

            processes.wait_for(all_runs_in_flight, "the four feed runs to be taken")
            nodes = {node.split("@")[0]: node for node in held}
            assert sorted(nodes) == ["worker-1", "worker-2"]
            assert [len(runs) for runs in held.values()] == [2, 2]
        finally:
            holder.close()

        # Each run done exactly once, by the worker that held it: its own log names the feeds it ingested.
        def succeeded_by(number: int) -> list[str]:
            results = _task_results(processes.log(f"worker-{number}"), "records.feed_run_task")
            return sorted(result["feed"] for result in results if result["outcome"] == "succeeded")

        processes.wait_for(
            lambda: sum(len(succeeded_by(number)) for number in (1, 2)) >= len(feeds),
            "every feed run to finish",
            SETTLED_SECONDS,
        )
        for number in (1, 2):
            held_by_worker = sorted(feed_codes[pk] for pk in held[nodes[f"worker-{number}"]])
            assert succeeded_by(number) == held_by_worker, processes.logs()
        for feed in feeds:
            assert (tmp_path / "inbox" / feed.code / "processed" / "conditions.ndjson").exists()
            runs = IngestRun.objects.filter(feed=feed)
            assert list(runs.values_list("status", "trigger", "created")) == [
                (IngestRun.Status.SUCCEEDED, IngestRun.Trigger.SCHEDULE, RESOURCES_PER_FEED)
            ]
            entries = RecordEntry.objects.filter(feed=feed)
            assert entries.count() == entries.values("source_id").distinct().count() == RESOURCES_PER_FEED
            assert list((tmp_path / "inbox" / feed.code / "incoming").iterdir()) == []
        # One beat: it sent the dispatch, which one worker ran, naming the four feeds.
        assert "Sending due task dispatch-due-feeds" in processes.log("beat-1")
        dispatches = [
            result
            for number in (1, 2)
            for result in _task_results(processes.log(f"worker-{number}"), "records.feeds_due_dispatch_task")
            if result
        ]
        assert sorted(feed_codes) in dispatches, processes.logs()
    finally:
        # Under Playwright's event loop the ORM calls above ran on a connection of their own; it is closed here,
        # in the same context, so nothing holds the test database when it is flushed and dropped.
        connections.close_all()
