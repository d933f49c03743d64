"""`make bench` works: the benchmark runs end to end on a small subset and prints its table. Speed is not checked."""

import os
import subprocess
import sys
from pathlib import Path

from records.bench.databases import server_connection

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_end_to_end_on_a_small_subset_and_prints_its_table():
    # It makes and drops its own scratch database on the server the tests use; no timing is checked.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "records.bench.ingest",
            "--synthea",
            "1",
            "--demo-patients",
            "5",
            "--repeat",
            "2",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    for line in (
        "Synthea, first run, one process",
        "Synthea, re-run, one process",
        "Synthea, first run, 2 processes",
        "demo, first run, feed by feed",
        "demo, re-run, feed by feed",
        "run at once",
        "COPY floor: Synthea entries",
        "COPY floor: demo entries",
        "R4B validation alone",
        "R4B XML validation",
    ):
        assert line in result.stdout, result.stdout
    assert "resources/s" in result.stdout and "vs COPY" in result.stdout
    # Two repetitions, each in a database of its own: each row is their median, with their range beside it.
    assert "median of 2 repetitions" in result.stdout and "range" in result.stdout
    with server_connection(os.environ["DATABASE_URL"]) as server:
        left = server.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'sharedcare_bench_%'"
        ).fetchall()
    assert left == []
