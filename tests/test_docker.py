"""The deployment files: the compose file validates and refuses to start without its secrets."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.builders import compose_command

DOCKER_DIR = Path(__file__).resolve().parents[1] / "docker"


def _config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose_command(), "-f", str(DOCKER_DIR / "compose.yml"), "config"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=DOCKER_DIR,
    )


PASSWORDS = {"POSTGRES_PASSWORD": "example", "DB_OWNER_PASSWORD": "example", "DB_APP_PASSWORD": "example"}


def test_compose_file_validates_with_web_worker_beat_postgres_and_redis():
    result = _config({**PASSWORDS, "SECRET_KEY": "example"})
    assert result.returncode == 0, result.stderr
    for service in ("web", "worker", "beat", "postgres", "redis", "migrate"):
        assert re.search(rf"^  {service}:$", result.stdout, re.M), service
    assert "gunicorn" in (DOCKER_DIR / "Dockerfile").read_text()


def test_compose_refuses_to_start_without_a_secret_key():
    result = _config(PASSWORDS)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.parametrize("missing", ["DB_OWNER_PASSWORD", "DB_APP_PASSWORD"])
def test_compose_refuses_to_start_without_each_database_roles_password(missing):
    result = _config({**{k: v for k, v in PASSWORDS.items() if k != missing}, "SECRET_KEY": "example"})
    assert result.returncode != 0
    assert missing in result.stderr


def test_dockerfile_copies_only_paths_that_exist():
    root = DOCKER_DIR.parent
    sources = [
        source
        for line in (DOCKER_DIR / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY") and "--from" not in line
        for source in line.split()[1:-1]
    ]
    assert sources, "the Dockerfile copies nothing from the project"
    for source in sources:
        assert (root / source).exists(), source
