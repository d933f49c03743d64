"""Every way sharedcare is served (make run, the Docker image, the benchmark) runs gunicorn's threaded workers from one
settings module, which the environment can still override. tests/test_scale_out.py serves the image's command, so
concurrent record opens on threaded workers are proven there to append to one verifying audit chain."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from sharedcare import gunicorn_conf

ROOT = Path(__file__).resolve().parents[1]


def _printed(arguments: list[str], **env: str) -> dict[str, str]:
    """The settings gunicorn would run with, as its --print-config reads them (nothing is served)."""
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", *arguments, "--print-config"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return dict(re.findall(r"^(\w+)\s+= (.*)$", result.stdout, re.M))


def _image_command() -> list[str]:
    found = re.search(r"^CMD (\[.*\])$", (ROOT / "docker" / "Dockerfile").read_text(), re.M)
    assert found
    command = json.loads(found.group(1))
    assert command[0] == "gunicorn"
    return command[1:]


def test_the_images_command_serves_with_threaded_workers_that_the_environment_may_change():
    printed = _printed(_image_command())
    assert printed["worker_class"] == "gthread"
    assert printed["threads"] == "4"
    assert _printed(_image_command(), GUNICORN_CMD_ARGS="--threads 2 --workers 5")["threads"] == "2"
    assert _printed(_image_command(), GUNICORN_THREADS="8")["threads"] == "8"


def test_make_run_and_the_benchmark_name_the_same_settings():
    assert gunicorn_conf.CONFIG in _image_command()
    for module in ("sharedcare/embedded/launch.py", "records/bench/load.py"):
        assert "gunicorn_conf.CONFIG" in (ROOT / module).read_text(), module
