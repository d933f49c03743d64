"""`make run` / `make test` start a real PostgreSQL and Redis when none is named, and stop them afterwards."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, os, psycopg, redis
with psycopg.connect(os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)) as conn:
    version = conn.execute("SHOW server_version").fetchone()[0]
    data_dir = conn.execute("SHOW data_directory").fetchone()[0]
client = redis.Redis.from_url(os.environ["REDIS_URL"])
client.set("probe", "1")
print(json.dumps({
    "postgres_version": version,
    "postmaster_pid": int(open(os.path.join(data_dir, "postmaster.pid")).readline()),
    "redis_pid": client.info("server")["process_id"],
    "redis_url": os.environ["REDIS_URL"],
}))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_exec_starts_real_services_and_stops_them_after():
    profile = "embedded-selftest"
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sharedcare.embedded",
                "exec",
                "--profile",
                profile,
                "--",
                sys.executable,
                "-c",
                PROBE,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        assert seen["postgres_version"].split(".")[0].isdigit()
        assert seen["redis_url"].startswith("redis://127.0.0.1:")
        assert not _alive(seen["postmaster_pid"]), "PostgreSQL still running after the command ended"
        assert not _alive(seen["redis_pid"]), "Redis still running after the command ended"
    finally:
        shutil.rmtree(ROOT / ".data" / profile, ignore_errors=True)


def test_exec_passes_on_the_commands_exit_code():
    env = dict(os.environ)  # DATABASE_URL and REDIS_URL are set here, so nothing is started
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sharedcare.embedded",
            "exec",
            "--",
            sys.executable,
            "-c",
            "raise SystemExit(3)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert "embedded PostgreSQL" not in result.stderr
