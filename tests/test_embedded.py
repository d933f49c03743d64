"""`make run` / `make test` start a real PostgreSQL and Redis when none is named, and stop them afterwards; a
launcher beside the one that owns a profile's services attaches to them and stops nothing."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
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


OWNER = """
import os, pathlib, sys, time
release = pathlib.Path(sys.argv[1])
print(os.environ["DATABASE_URL"], os.environ["REDIS_URL"], flush=True)
deadline = time.monotonic() + 600
while not release.exists() and time.monotonic() < deadline:
    time.sleep(0.2)
"""


def _embedded(profile: str, *command: str, **options) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    return subprocess.Popen(
        [sys.executable, "-m", "sharedcare.embedded", "exec", "--profile", profile, "--", *command],
        cwd=ROOT,
        env=env,
        text=True,
        **options,
    )


def test_exec_beside_a_running_owner_attaches_to_its_services_and_stops_none(tmp_path):
    profile = f"embedded-selftest-{uuid.uuid4().hex[:8]}"
    release = tmp_path / "release"
    owner = _embedded(profile, sys.executable, "-c", OWNER, str(release), stdout=subprocess.PIPE)
    try:
        owner_urls = owner.stdout.readline().split()
        record = json.loads((ROOT / ".data" / profile / "services.json").read_text())
        assert record["pid"] == owner.pid
        assert owner_urls == [record["DATABASE_URL"], record["REDIS_URL"]]

        beside = _embedded(
            profile, sys.executable, "-c", PROBE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = beside.communicate(timeout=300)
        assert beside.returncode == 0, err
        assert "attached to the services" in err
        assert "embedded PostgreSQL running" not in err
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen["redis_url"] == record["REDIS_URL"]
        assert seen["postmaster_pid"] == record["postgres_pid"]
        assert seen["redis_pid"] == record["redis_pid"]
        assert _alive(record["postgres_pid"]), "the attached command stopped the owner's PostgreSQL"
        assert _alive(record["redis_pid"]), "the attached command stopped the owner's Redis"
    finally:
        release.touch()
        owner.wait(timeout=300)
        shutil.rmtree(ROOT / ".data" / profile, ignore_errors=True)
    assert owner.returncode == 0
    assert not _alive(record["postgres_pid"]), "PostgreSQL still running after its owner ended"
    assert not _alive(record["redis_pid"]), "Redis still running after its owner ended"


def test_exec_adopts_the_services_a_killed_owner_left_and_stops_them(tmp_path):
    profile = f"embedded-selftest-{uuid.uuid4().hex[:8]}"
    owner = _embedded(profile, sys.executable, "-c", OWNER, str(tmp_path / "never"), stdout=subprocess.PIPE)
    record = {"postgres_pid": None, "redis_pid": None}
    try:
        owner.stdout.readline()
        record = json.loads((ROOT / ".data" / profile / "services.json").read_text())
        owner.kill()
        owner.wait()
        # Left running with nobody to stop them, until the next launcher of the profile.
        assert _alive(record["postgres_pid"]) and _alive(record["redis_pid"])

        next_one = _embedded(
            profile, sys.executable, "-c", PROBE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = next_one.communicate(timeout=300)
        assert next_one.returncode == 0, err
        assert "adopting" in err
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen["postmaster_pid"] == record["postgres_pid"]
        assert seen["redis_pid"] == record["redis_pid"]
        deadline = time.monotonic() + 300
        while _alive(record["postgres_pid"]) or _alive(record["redis_pid"]):
            assert time.monotonic() < deadline, "the adopted services were not stopped"
            time.sleep(0.5)
    finally:
        for pid in (record["postgres_pid"], record["redis_pid"]):
            if pid and _alive(pid):
                os.kill(pid, 9)
        shutil.rmtree(ROOT / ".data" / profile, ignore_errors=True)
