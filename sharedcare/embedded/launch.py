"""`make run`: own the profile's services, migrate, load the demo, then serve with gunicorn, a Celery worker and beat.

What always holds: the launcher owns the services it runs on (another live owner of the profile makes it refuse);
on Ctrl-C or SIGTERM, or when any of its processes ends, it stops gunicorn, the worker and beat, waits for them, then
stops Redis and PostgreSQL; it never returns with one of them still running.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time

from sharedcare import gunicorn_conf
from sharedcare.embedded.oidc import (
    LocalProvider,
    ProviderUnavailable,
    node_executable,
    oidc_provider_start,
)
from sharedcare.embedded.processes import Signals, child_wait, children_stop
from sharedcare.embedded.services import (
    BASE_DIR,
    DATA_DIR,
    ProfileBusy,
    profile_dir_of,
    profile_services,
    secret_read_or_create,
)

DEMO_LOGINS = [
    ("gp.ada", "GP, practice A"),
    ("gp.ben", "GP, practice B"),
    ("ed.cara", "emergency department doctor, Cambridge University Hospitals"),
    ("reception.dan", "receptionist, practice A (demographics only)"),
    ("social.eli", "social worker, Cambridgeshire County Council"),
    ("privacy.fay", "privacy officer"),
    ("mh.ivy", "psychiatrist at CPFT and in liaison sessions at CUH: chooses a role at login"),
    ("admin.gus", "back-office administrator (Django admin at /admin/)"),
    ("ra.rita", "registration authority: gives other users roles, teams and passwords (Django admin)"),
]

# How long `run` waits for the web server and a worker before printing the URL anyway.
READY_SECONDS = 180
# Two web workers: enough for a developer and a browser test on a small machine.
WEB_WORKERS = 2


def run(host: str, port: int, profile: str) -> int:
    """Serve sharedcare until interrupted; the exit code is 0 after a stop asked for by a signal."""
    with Signals() as signals:
        try:
            with profile_services(profile, must_own=True, web=f"http://{host}:{port}/") as services:
                return _serve(host, port, profile, services.env, signals)
        except ProfileBusy as busy:
            print(
                f"sharedcare is already running: {busy}. Run commands beside it with "
                '`make manage ARGS="..."` or `make shell`.',
                file=sys.stderr,
            )
            return 1


def _serve(host: str, port: int, profile: str, env: dict[str, str], signals: Signals) -> int:
    python = sys.executable
    env = dict(env)
    env.setdefault("DEMO_PASSWORD", secret_read_or_create(DATA_DIR / "demo_password", 12))
    env.setdefault("ALLOWED_HOSTS", f"{host},localhost,127.0.0.1")
    manage = [python, str(BASE_DIR / "manage.py")]
    for step in (["migrate", "--no-input"], ["demo_load"]):
        if signals.stopping:
            return 1
        code = child_wait(subprocess.Popen([*manage, *step], env=env, cwd=BASE_DIR), signals)  # noqa: S603 - a fixed argument list, no shell
        if code != 0:
            print(f"`manage.py {' '.join(step)}` failed; stopping.", file=sys.stderr)
            return code if code > 0 else 1
    celery = [python, "-m", "celery", "-A", "sharedcare"]
    beat_schedule = profile_dir_of(profile) / "celerybeat-schedule"
    commands = [
        [
            python,
            "-m",
            "gunicorn",
            "sharedcare.wsgi:application",
            "--config",
            gunicorn_conf.CONFIG,
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(WEB_WORKERS),
            "--access-logfile",
            "-",
        ],
        [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"],
        [*celery, "beat", "--loglevel", "INFO", "-s", str(beat_schedule)],
    ]
    children: list[subprocess.Popen[bytes]] = []
    try:
        provider = _oidc_provider_start(host, port, profile, env)
        if provider is not None:
            # Owned like the web server: stopped with it, and its ending stops the rest.
            children.append(provider.process)
            env.update(provider.env())
        for command in commands:
            children.append(subprocess.Popen(command, env=env, cwd=BASE_DIR))  # noqa: S603 - a fixed argument list, no shell
        if not _ready(host, port, env, children, signals):
            print("Stopping before sharedcare was ready.", file=sys.stderr)
            return 1
        _banner(host, port, env["DEMO_PASSWORD"], provider)
        return _watch(children, signals)
    finally:
        children_stop(children)


def _oidc_provider_start(host: str, port: int, profile: str, env: dict[str, str]) -> LocalProvider | None:
    """Start the local NHS Care Identity provider with the demo users (each with the demo password), unless the
    environment names a provider of its own; None, with a note, when Node or the provider package is missing."""
    if env.get("OIDC_ISSUER"):
        return None
    if node_executable() is None:
        print("No local NHS Care Identity provider: it needs Node and `make install`.", file=sys.stderr)
        return None
    exported = subprocess.run(
        [sys.executable, "-m", "sharedcare.oidc_accounts"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if exported.returncode != 0:
        print(f"No local NHS Care Identity provider: {exported.stderr.strip()}", file=sys.stderr)
        return None
    accounts = [{**account, "password": env["DEMO_PASSWORD"]} for account in json.loads(exported.stdout)]
    callback = "/accounts/nhs-care-identity/callback/"
    hosts = {host, "127.0.0.1", "localhost"} if host == "127.0.0.1" else {host}
    try:
        return oidc_provider_start(
            profile_dir_of(profile),
            client_secret=secret_read_or_create(DATA_DIR / "oidc_client_secret", 32),
            redirect_uris=sorted(f"http://{name}:{port}{callback}" for name in hosts),
            accounts=accounts,
        )
    except ProviderUnavailable as error:
        print(f"No local NHS Care Identity provider: {error}.", file=sys.stderr)
        return None


def _ready(
    host: str, port: int, env: dict[str, str], children: list[subprocess.Popen[bytes]], signals: Signals
) -> bool:
    """Wait until the web server accepts connections and a Celery worker answers a ping, so that the URL printed
    works at once and a feed run queued now is taken. False when a process ended or a stop was asked for first;
    after READY_SECONDS it says what is still starting and goes on (a slow machine is not a failure)."""
    deadline = time.monotonic() + READY_SECONDS
    web = worker = False
    while time.monotonic() < deadline:
        if signals.stopping or any(child.poll() is not None for child in children):
            return False
        if not web:
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
                web = True
        if not worker:
            ping = subprocess.run(
                [sys.executable, "-m", "celery", "-A", "sharedcare", "inspect", "ping", "--timeout", "2"],
                env=env,
                cwd=BASE_DIR,
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


def _banner(host: str, port: int, password: str, provider: LocalProvider | None) -> None:
    print(f"\nsharedcare is running at http://{host}:{port}/", flush=True)
    print(f"Demo logins (password for all: {password}):")
    for username, what in DEMO_LOGINS:
        print(f"  {username:<15} {what}")
    if provider is not None:
        print(
            f"Sign in with NHS Care Identity: a local provider at {provider.issuer} takes the same usernames "
            "and password (admin.gus has no role there)."
        )
    print("Demo patients: 9990000018 (practice A), 9990000026 (practice B).")
    print(
        'Commands beside it: `make manage ARGS="..."`, `make shell`. Ctrl-C stops everything.\n', flush=True
    )


def _watch(children: list[subprocess.Popen[bytes]], signals: Signals) -> int:
    """Wait for a stop signal (exit code 0) or for a process to end on its own (its exit code, at least 1)."""
    while not signals.stopping:
        for child in children:
            if child.poll() is not None:
                print(f"process {child.pid} exited with {child.returncode}; stopping.", file=sys.stderr)
                return child.returncode or 1
        time.sleep(0.5)
    print("Stopping sharedcare.", file=sys.stderr, flush=True)
    return 0
