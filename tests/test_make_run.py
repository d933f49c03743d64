"""`make run` end to end on its own embedded services: migrate, demo through ingestion, gunicorn + worker + beat, a
command beside it that shares its database and broker, and a stop by Ctrl-C or SIGTERM that leaves nothing running.

Each test uses a profile of its own (never `run`), so a developer's `make run` is never touched. Waits are polls
with generous deadlines: nothing here depends on the machine's speed.
"""

import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from celery import Celery

from tests.builders import condition, ndjson

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "demo-password-for-the-run-test"
# A busy two-core machine starts PostgreSQL, migrates and ingests the demo well within this; it is a deadline for a
# hung launcher, not a speed requirement.
START_SECONDS = 600
SETTLED_SECONDS = 300

PROBE_FEEDS = """
from records.models import Feed
from records.tasks import feed_run_task
source = Feed.objects.get(code="gp-d81001")
for code in ("launcher-probe-a", "launcher-probe-b"):
    Feed.objects.create(
        code=code, organisation=source.organisation, name=f"Launcher probe {code}", sections=source.sections,
        format=Feed.Format.FHIR, source=Feed.Source.INBOX, state=Feed.State.LIVE,
    )
print(feed_run_task.delay(Feed.objects.get(code="launcher-probe-a").pk).id)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _processes() -> list[tuple[int, int, str]]:
    """(pid, process group, command line) of every live process, as `ps` would list them."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[0] != "Z":
            found.append((int(entry.name), int(stat[2]), command))
    return found


def _services_environment(inbox: Path) -> dict[str, str]:
    """The environment of a developer's shell: no DATABASE_URL or REDIS_URL, so the launcher uses embedded ones."""
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DEMO_PASSWORD=PASSWORD, FEED_INBOX_ROOT=str(inbox))
    return env


class Launcher:
    """`python -m sharedcare.embedded run` on a profile and port of its own, as the leader of its own process group
    (as in a terminal, where Ctrl-C reaches the whole group)."""

    def __init__(self, profile: str, env: dict[str, str]) -> None:
        self.profile = profile
        self.profile_dir = ROOT / ".data" / profile
        self.port = _free_port()
        self.env = env
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sharedcare.embedded",
                "run",
                "--profile",
                profile,
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_output(self, pattern: str, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while not re.search(pattern, self.output):
            assert self.process.poll() is None, f"the launcher ended:\n{self.output[-4000:]}"
            assert time.monotonic() < deadline, f"no {pattern!r} in the output:\n{self.output[-4000:]}"
            time.sleep(0.5)

    def record(self) -> dict:
        return json.loads((self.profile_dir / "services.json").read_text())

    def stop(self, signum: int) -> int:
        os.killpg(self.process.pid, signum)
        return self.process.wait(timeout=SETTLED_SECONDS)


@pytest.fixture
def launch(tmp_path):
    started: list[tuple[Launcher, dict]] = []

    def start() -> Launcher:
        launcher = Launcher(f"run-selftest-{uuid.uuid4().hex[:8]}", _services_environment(tmp_path / "inbox"))
        launcher.wait_for_output(r"sharedcare is running at")
        started.append((launcher, launcher.record()))
        return launcher

    yield start
    for launcher, record in started:
        # A failed test must not leave servers behind: stop whatever of this profile still runs.
        if launcher.process.poll() is None:
            os.killpg(launcher.process.pid, signal.SIGKILL)
            launcher.process.wait()
        for pid in (record["redis_pid"], record["postgres_pid"]):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(launcher.profile_dir, ignore_errors=True)


class Browser:
    """Just enough of a browser: cookies, CSRF tokens, redirects, response headers."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.headers: dict[str, str] = {}

    def get(self, path: str) -> tuple[str, str]:
        with self.opener.open(self.base + path, timeout=60) as response:
            self.headers = dict(response.headers)
            return response.geturl(), response.read().decode()

    def post(self, path: str, page: str, fields: dict[str, str]) -> tuple[str, str]:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
        with self.opener.open(self.base + path, data=data, timeout=60) as response:
            self.headers = dict(response.headers)
            return response.geturl(), response.read().decode()


def _assert_nothing_left(launcher: Launcher, record: dict) -> None:
    """No process of the launcher's group, no postmaster on the profile's data, no Redis with its config."""
    assert not (launcher.profile_dir / "services.json").exists()
    left = [
        (pid, command)
        for pid, group, command in _processes()
        if group == launcher.process.pid or str(launcher.profile_dir) in command
    ]
    assert left == [], left
    assert not _alive(record["postgres_pid"]), "the postmaster still runs"
    assert not _alive(record["redis_pid"]), "Redis still runs"


def _ingest_runs(database_url: str, feed_code: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT run.trigger, run.status FROM records_ingestrun run"
            " JOIN records_feed feed ON feed.id = run.feed_id WHERE feed.code = %s",
            [feed_code],
        ).fetchall()


def _wait_for_ingest_run(database_url: str, feed_code: str) -> list[tuple[str, str]]:
    deadline = time.monotonic() + SETTLED_SECONDS
    while not (runs := _ingest_runs(database_url, feed_code)):
        assert time.monotonic() < deadline, f"no worker ran the {feed_code} feed"
        time.sleep(1)
    return runs


def _drop_in_inbox(inbox: Path, feed_code: str) -> None:
    incoming = inbox / feed_code / "incoming"
    incoming.mkdir(parents=True)
    path = incoming / "conditions.ndjson"
    path.write_bytes(ndjson(condition(f"{feed_code}-1", "9990000018")))
    # Older than the inbox's settling time, so the first run takes it.
    settled = time.time() - 600
    os.utime(path, (settled, settled))


def test_make_run_serves_the_demo_through_gunicorn_and_a_command_beside_it_shares_its_services(launch):
    launcher = launch()
    output = launcher.output
    assert f"http://127.0.0.1:{launcher.port}/" in output
    for login in (
        "gp.ada",
        "gp.ben",
        "ed.cara",
        "reception.dan",
        "social.eli",
        "privacy.fay",
        "mh.ivy",
        "admin.gus",
    ):
        assert login in output
    # The demo went through the ingestion pipeline: its per-feed summaries are in the output.
    assert re.search(r"gp-d81001.*created", output)

    browser = Browser(f"http://127.0.0.1:{launcher.port}")
    _, login_page = browser.get("/accounts/login/")
    assert browser.headers["Server"].startswith("gunicorn")
    _, home = browser.post("/accounts/login/", login_page, {"username": "gp.ada", "password": PASSWORD})
    assert "gp.ada" in home
    url, record_page = browser.post("/patients/", home, {"nhs_number": "999 000 0018"})
    assert re.search(r"/patients/[0-9a-f-]{36}/$", url)
    for partner in ("Riverside Surgery", "Cambridge University Hospitals", "Cambridgeshire and Peterborough"):
        assert partner in record_page
    # Static files come from the same server (WhiteNoise), cacheable.
    _, stylesheet = browser.get(re.search(r'href="(/static/[^"]+\.css)"', home).group(1))
    assert stylesheet and "no-store" not in browser.headers.get("Cache-Control", "")

    record = launcher.record()
    assert record["pid"] == launcher.process.pid
    inbox = Path(launcher.env["FEED_INBOX_ROOT"])
    _drop_in_inbox(inbox, "launcher-probe-a")
    _drop_in_inbox(inbox, "launcher-probe-b")
    beside = subprocess.run(
        [
            sys.executable,
            "-m",
            "sharedcare.embedded",
            "exec",
            "--profile",
            launcher.profile,
            "--",
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            PROBE_FEEDS,
        ],
        cwd=ROOT,
        env=launcher.env,
        capture_output=True,
        text=True,
        timeout=SETTLED_SECONDS,
        check=False,
    )
    assert beside.returncode == 0, beside.stderr
    assert "attached to the services" in beside.stderr
    assert "embedded PostgreSQL running" not in beside.stderr
    assert "embedded Redis running" not in beside.stderr
    assert _alive(record["postgres_pid"]) and _alive(record["redis_pid"])
    assert launcher.record() == record

    # The feeds the command wrote are in the running instance's database, and the task it queued reached the
    # running worker (its log names the task), which found the feed and ingested its inbox. (Beat may dispatch the
    # same feed: either way one run ingests the file.)
    queued_by_command = beside.stdout.strip().splitlines()[-1]
    launcher.wait_for_output(rf"feed_run_task\[{queued_by_command}\] succeeded", SETTLED_SECONDS)
    assert _wait_for_ingest_run(record["DATABASE_URL"], "launcher-probe-a") == [("schedule", "succeeded")]
    # After the command ended, the running worker still takes tasks from the same broker.
    with psycopg.connect(record["DATABASE_URL"]) as connection:
        (feed_b,) = connection.execute(
            "SELECT id FROM records_feed WHERE code = 'launcher-probe-b'"
        ).fetchone()
    queued_after = Celery(broker=record["REDIS_URL"]).send_task("records.feed_run_task", args=[feed_b]).id
    launcher.wait_for_output(rf"feed_run_task\[{queued_after}\] succeeded", SETTLED_SECONDS)
    assert _wait_for_ingest_run(record["DATABASE_URL"], "launcher-probe-b") == [("schedule", "succeeded")]
    _, home = browser.get("/")
    assert "gp.ada" in home

    # Ctrl-C, as a terminal sends it, to the whole process group; SIGTERM is the next test's.
    _assert_every_service_runs(launcher, record)
    assert launcher.stop(signal.SIGINT) == 0, launcher.output[-3000:]
    _assert_nothing_left(launcher, record)


def _assert_every_service_runs(launcher: Launcher, record: dict) -> None:
    assert _alive(record["postgres_pid"]) and _alive(record["redis_pid"])
    commands = [command for _, group, command in _processes() if group == launcher.process.pid]
    assert any("gunicorn" in command for command in commands), commands
    assert any("celery" in command and "worker" in command for command in commands), commands
    assert any("celery" in command and "beat" in command for command in commands), commands


def test_sigterm_to_the_process_group_stops_every_service_make_run_started(launch):
    launcher = launch()
    record = launcher.record()
    _assert_every_service_runs(launcher, record)

    assert launcher.stop(signal.SIGTERM) == 0, launcher.output[-3000:]
    _assert_nothing_left(launcher, record)
