"""The read benchmark runs end to end at its smallest scale and writes results of the right shape. Speed is not checked.

It builds its own scratch database on the server the tests use, serves it with gunicorn on 127.0.0.1, signs its users
in through the real login pages and loads them with locust for a second or two; then it drops the database.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from records.bench.databases import server_connection

ROOT = Path(__file__).resolve().parents[1]


def test_the_read_benchmark_runs_at_the_smallest_scale_and_writes_its_results(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "records.bench.read",
            "--patients",
            "200",
            "--seconds",
            "2",
            "--users",
            "1",
            "--page-users",
            "1",
            "--no-ingest",
            "--verify-audit",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [written] = list(tmp_path.glob("read-*.json"))
    results = json.loads(written.read_text())
    assert results["machine"]["cpus"] >= 1 and len(results["machine"]["commit"]) == 40
    [scale] = results["scales"]
    population = scale["population"]
    assert population["patients"] == 200
    # About ten entries a patient, and the tail: one in a hundred about 250 deep.
    assert population["entries"] >= 200 * 5 + 230
    assert population["relationships"] >= 200 and population["events"] == 600
    [record_open] = scale["record_open"]
    [floor] = scale["floor"]
    # Every request was answered as an allowed reader is answered: none refused, none signed out.
    assert record_open["users"] == 1 and record_open["requests"] > 0 and record_open["failures"] == 0
    assert 0 < record_open["p50_ms"] <= record_open["p95_ms"] <= record_open["p99_ms"]
    assert floor["requests"] > 0 and floor["p50_ms"] <= floor["p95_ms"]
    assert [page["page"] for page in scale["pages"]] == [
        "search",
        "name-search",
        "feed-monitor",
        "access-report",
    ]
    assert all(page["requests"] > 0 and page["failures"] == 0 for page in scale["pages"])
    assert [depth["page"] for depth in scale["depths"]] == [
        "record:record ~10 entries deep",
        "record:record ~250 entries deep",
    ]
    assert "No record ~2,000 entries deep at this scale." in scale["notes"]
    assert scale["profile"]["statements"] > 0 and scale["profile"]["top_functions"]
    assert scale["explain"] and all("Execution Time" in plan["plan"] for plan in scale["explain"])
    # The generated events, the floor's and the application's form one chain.
    assert results["audit_verify"] == "intact (audit_trail_verify)"
    report = written.with_suffix(".md").read_text()
    assert "| full record page | 1 |" in report and "EXPLAIN (ANALYZE, BUFFERS)" in report
    with server_connection(os.environ["DATABASE_URL"]) as server:
        left = server.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'sharedcare_bench_%'"
        ).fetchall()
    assert left == []
