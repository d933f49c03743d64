"""The compose file runs more web processes and workers against one database when asked, and never a second beat."""

import os
import re
import subprocess
from pathlib import Path

from tests.builders import compose_command

DOCKER_DIR = Path(__file__).resolve().parents[1] / "docker"
SECRETS = {
    "POSTGRES_PASSWORD": "example",
    "DB_OWNER_PASSWORD": "example",
    "DB_APP_PASSWORD": "example",
    "SECRET_KEY": "example",
}


def _service(config: str, name: str) -> str:
    found = re.search(rf"^  {name}:\n((?:    .*\n|\n)*)", config, re.M)
    assert found, name
    return found.group(1)


def _replicas(block: str) -> int:
    found = re.search(r"^      replicas: (\d+)$", block, re.M)
    assert found, block
    return int(found.group(1))


def _config(**env: str) -> str:
    result = subprocess.run(
        [*compose_command(), "-f", str(DOCKER_DIR / "compose.yml"), "config"],
        env={"PATH": os.environ["PATH"], **SECRETS, **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=DOCKER_DIR,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_two_web_processes_and_two_workers_share_one_database_and_one_beat():
    config = _config(WEB_REPLICAS="2", WORKER_REPLICAS="2")

    web, worker, beat = (_service(config, name) for name in ("web", "worker", "beat"))
    assert (_replicas(web), _replicas(worker), _replicas(beat)) == (2, 2, 1)
    # Each web replica takes its own loopback port from the range, for the load balancer in front.
    assert re.search(r"127\.0\.0\.1:8000-8007:8000", web)
    # One database and one broker for all of them.
    urls = {re.search(r"DATABASE_URL: (\S+)", block).group(1) for block in (web, worker, beat)}
    assert urls == {"postgres://sharedcare:example@postgres:5432/sharedcare"}
    assert len(re.findall(r"^  postgres:$", config, re.M)) == 1


def test_one_web_process_and_one_worker_by_default():
    config = _config()

    assert _replicas(_service(config, "web")) == 1
    assert _replicas(_service(config, "worker")) == 1
