"""Serving the scratch database with gunicorn as `make run` serves it, and loading it with locust, on 127.0.0.1 only.

What always holds: the server and every locust run are this process's children, bound to the loopback address, and
stopped before the function that started them returns; each locust run is bounded in time (`--run-time`) and
stops by itself; a run with any failed request is reported with its failures, never as a clean number.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from records.bench.readers import Reader
from records.bench.rows import BenchmarkError
from sharedcare import gunicorn_conf

BASE_DIR = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# As `make run` serves (sharedcare.embedded.launch.WEB_WORKERS), unless the bench is asked for more.
DEFAULT_WEB_WORKERS = 2


@dataclass(frozen=True)
class LoadResult:
    """One locust run: one page, N users in a closed loop, for a time."""

    page: str
    users: int
    seconds: float
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float
    failure_examples: list[str]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def served(env: dict[str, str], *, workers: int, log_dir: Path) -> Iterator[str]:
    """gunicorn serving sharedcare.wsgi on a free loopback port with `workers` processes, configured as `make run`
    serves (sharedcare.gunicorn_conf: threaded workers); yields its base URL."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "sharedcare.wsgi:application",
        "--config",
        gunicorn_conf.CONFIG,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        str(log_dir / "access.log"),
        "--error-logfile",
        str(log_dir / "gunicorn.log"),
    ]
    server = subprocess.Popen(command, env=env, cwd=BASE_DIR)  # noqa: S603 - a fixed argument list, no shell
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise BenchmarkError(
                    f"gunicorn exited with {server.returncode}; see {log_dir / 'gunicorn.log'}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise BenchmarkError("gunicorn did not answer within 120 s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def locust_run(base: str, readers: list[Reader], *, page: str, users: int, seconds: float) -> LoadResult:
    """Run locust headless against `base` with `users` users opening `page` for `seconds`; its figures."""
    with tempfile.TemporaryDirectory(prefix="sharedcare-locust-") as folder:
        readers_file = Path(folder) / "readers.json"
        readers_file.write_text(json.dumps([asdict(reader) for reader in readers]))
        prefix = Path(folder) / "run"
        env = {**os.environ, "BENCH_READERS": str(readers_file), "BENCH_PAGE": page}
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--host",
            base,
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{max(1, round(seconds))}s",
            "--stop-timeout",
            "10",
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--exit-code-on-error",
            "0",
        ]
        done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            command, env=env, cwd=BASE_DIR, capture_output=True, text=True, check=False, timeout=seconds + 120
        )
        stats = Path(f"{prefix}_stats.csv")
        if done.returncode != 0 or not stats.exists():
            raise BenchmarkError(f"locust failed ({done.returncode}): {done.stderr[-2000:]}")
        with stats.open() as handle:
            rows = list(csv.DictReader(handle))
        failures_file = Path(f"{prefix}_failures.csv")
        examples: list[str] = []
        if failures_file.exists():
            with failures_file.open() as handle:
                examples = [
                    f"{row['Name']}: {row['Error']} x{row['Occurrences']}" for row in csv.DictReader(handle)
                ]
    total = next((row for row in rows if row["Name"] == "Aggregated"), None)
    if total is None or int(total["Request Count"]) == 0:
        raise BenchmarkError(f"locust made no request of {page}: {done.stderr[-2000:]}")
    return LoadResult(
        page=page,
        users=users,
        seconds=seconds,
        requests=int(total["Request Count"]),
        failures=int(total["Failure Count"]),
        p50_ms=_float(total["50%"]),
        p95_ms=_float(total["95%"]),
        p99_ms=_float(total["99%"]),
        mean_ms=_float(total["Average Response Time"]),
        throughput=_float(total["Requests/s"]),
        failure_examples=examples[:5],
    )
