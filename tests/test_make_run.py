"""`make run` end to end: migrate, demo through ingestion, web + worker + beat, a real login, a clean stop."""

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRATCH_DB = "sharedcare_make_run"
PASSWORD = "demo-password-for-the-run-test"


def _libpq(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _recreate(admin_url: str) -> None:
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SCRATCH_DB}")


class Browser:
    """Just enough of a browser: cookies, CSRF tokens, redirects."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[str, str]:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.geturl(), response.read().decode()

    def post(self, path: str, page: str, fields: dict[str, str]) -> tuple[str, str]:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
        with self.opener.open(self.base + path, data=data, timeout=30) as response:
            return response.geturl(), response.read().decode()


@pytest.fixture
def run_environment():
    admin_url = os.environ["DATABASE_URL"]
    _recreate(admin_url)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_with_database(admin_url, SCRATCH_DB),
        REDIS_URL=re.sub(r"/\d+$", "/1", os.environ["REDIS_URL"]),
        DEMO_PASSWORD=PASSWORD,
    )
    yield env
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")


def test_make_run_serves_the_demo_loaded_through_ingestion_and_stops_cleanly(run_environment):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sharedcare.embedded", "run", "--port", str(port)],
        cwd=ROOT,
        env=run_environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "sharedcare is running at" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout=240), "".join(lines[-40:])
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in output
        for login in (
            "gp.ada",
            "gp.ben",
            "ed.cara",
            "reception.dan",
            "social.eli",
            "privacy.fay",
            "admin.gus",
        ):
            assert login in output
        # The demo went through the ingestion pipeline: its per-feed summaries are in the output.
        assert re.search(r"gp-d81001.*created", output)

        browser = Browser(f"http://127.0.0.1:{port}")
        _, login_page = browser.get("/accounts/login/")
        _, home = browser.post("/accounts/login/", login_page, {"username": "gp.ada", "password": PASSWORD})
        assert "gp.ada" in home
        url, record = browser.post("/patients/", home, {"nhs_number": "999 000 0018"})
        assert re.search(r"/patients/[0-9a-f-]{36}/$", url)
        assert "9990000018" not in url
        for partner in (
            "Riverside Surgery",
            "Cambridge University Hospitals",
            "Cambridgeshire and Peterborough",
        ):
            assert partner in record

        ping = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "sharedcare", "inspect", "ping", "--timeout", "10"],
            cwd=ROOT,
            env=run_environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "pong" in ping.stdout, ping.stdout + ping.stderr
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, "".join(lines[-30:])
