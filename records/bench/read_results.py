"""The read benchmark's results: the machine described, a JSON file, a Markdown report and a PNG of the growth."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _git(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
        ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    """The machine, the software and the commit measured."""
    from django.db import connection

    with connection.cursor() as cursor:
        settings = {}
        for name in (
            "server_version",
            "shared_buffers",
            "work_mem",
            "effective_cache_size",
            "max_connections",
        ):
            cursor.execute(f"SHOW {name}")
            settings[name] = str(cursor.fetchone()[0])
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "postgresql": settings,
        "commit": _git("rev-parse", "HEAD"),
        "work_tree_changed": bool(dirty),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _built(population: dict[str, Any]) -> str:
    """How the population measured was built: in this run, or earlier in a kept database (`--keep`)."""
    if population.get("analyse_seconds") is not None:
        return (
            "built in "
            + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in population["seconds"].items())
            + f"; VACUUM ANALYZE {population['analyse_seconds']:.0f} s."
        )
    parts = []
    for note in population.get("built", []):
        seconds = note.get("wall_seconds") or sum(note["seconds"].values())
        rows = note["patients"] - note.get("grew_from", 0)
        parts.append(
            f"grown from {note.get('grew_from', 0):,} to {note['patients']:,} patients on {note['noted_at']} at commit "
            f"`{str(note.get('commit', ''))[:8]}` in {seconds:,.0f} s ("
            + ", ".join(f"{name} {part:,.0f} s" for name, part in note["seconds"].items())
            + f"; VACUUM ANALYZE {note.get('analyse_seconds') or 0:,.0f} s; {rows / max(seconds, 1):,.0f} patients/s)"
        )
    where = f"the kept database `{population.get('kept_database', '?')}`"
    return (
        f"built earlier in {where} and reused without rebuilding: "
        + ("; ".join(parts) or "no build notes")
        + "."
    )


def _measured_apart(scale: dict[str, Any]) -> list[str]:
    """For a scale combined from another run (`combine`): when, at which commit and under what load it was measured."""
    run = scale.get("run")
    if not run:
        return []
    return [
        f"Measured in its own run, {run['measured_at']} at commit `{run['commit']}`"
        + (" (work tree changed)" if run.get("work_tree_changed") else "")
        + f"; load average {run['load_average']} when it began, {run.get('load_average_end')} when it ended.",
        "",
    ]


def markdown(results: dict[str, Any]) -> str:
    """The report: machine, then per scale the record open against the floor, the other pages, depths, plans."""
    about = results["machine"]
    lines = [
        "# sharedcare read-path benchmark",
        "",
        f"Measured {about['measured_at']} at commit `{about['commit']}`"
        + (" (the work tree had other uncommitted changes)" if about["work_tree_changed"] else "")
        + ".",
        "",
        f"Machine: {about['cpus']} CPUs ({about['cpu_model']}), {about['memory_gib']} GiB memory, {about['platform']}; "
        f"load average {about['load_average']} when the run began, {results.get('load_average_end')} when it ended "
        "(the machine is shared with other engineers running tests, so these numbers are a floor on what it does "
        "alone). Python "
        + about["python"]
        + "; PostgreSQL "
        + about["postgresql"]["server_version"]
        + f" (shared_buffers {about['postgresql']['shared_buffers']}, work_mem {about['postgresql']['work_mem']}), "
        "the embedded server of `make bench`, on the same machine as gunicorn and locust.",
        "",
        f"Served by gunicorn, {results['web_workers']} workers, "
        # Results written before the workers were threaded say nothing of their kind: they were sync.
        f"{results.get('web_worker_kind', 'sync')} (as `make run` serves), on 127.0.0.1; load by "
        f"locust in a closed loop (no wait), {results['seconds']:.0f} s a run; every user signed in through the real "
        "login page (and second factor where the role requires it). Floor: the same rows read by plain psycopg "
        "SELECTs and one chained audit row inserted and committed, per open, in threads.",
        "",
    ]
    for scale in results["scales"]:
        population = scale["population"]
        lines += [
            f"## {population['patients']:,} patients",
            "",
            f"{population['entries']:,} entries, {population['relationships']:,} relationships, "
            f"{population['events']:,} access events before the run; "
            + _built(population)
            + " Sizes: "
            + ", ".join(f"{name} {size / 2**20:,.0f} MiB" for name, size in population["sizes"].items())
            + ".",
            "",
            *_measured_apart(scale),
            "| record open | users | requests | failures | p50 ms | p95 ms | p99 ms | req/s | floor p50 ms | "
            "floor p95 ms | floor req/s | throughput vs floor |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run, floor in zip(scale["record_open"], scale["floor"], strict=True):
            ratio = run["throughput"] / floor["throughput"] if floor["throughput"] else 0.0
            lines.append(
                f"| full record page | {run['users']} | {run['requests']} | {run['failures']} | {_ms(run['p50_ms'])} | "
                f"{_ms(run['p95_ms'])} | {_ms(run['p99_ms'])} | {run['throughput']:.1f} | {_ms(floor['p50_ms'])} | "
                f"{_ms(floor['p95_ms'])} | {floor['throughput']:.1f} | {ratio:.3f} |"
            )
        lines += [
            "",
            "| page | users | requests | failures | p50 ms | p95 ms | p99 ms | req/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in scale["pages"] + scale["depths"]:
            lines.append(
                f"| {run['page']} | {run['users']} | {run['requests']} | {run['failures']} | {_ms(run['p50_ms'])} | "
                f"{_ms(run['p95_ms'])} | {_ms(run['p99_ms'])} | {run['throughput']:.1f} |"
            )
        for note in scale.get("notes", []):
            lines += ["", note]
        failures = [
            example
            for run in scale["record_open"] + scale["pages"] + scale["depths"]
            for example in run["failure_examples"]
        ]
        if failures:
            lines += ["", "Failures: " + "; ".join(failures[:5])]
        profile = scale.get("profile")
        if profile:
            lines += [
                "",
                f"### Where one record open's time goes ({population['patients']:,} patients)",
                "",
                f"One open of a typical record in-process under cProfile: {profile['wall_ms_under_profiler']:.0f} ms "
                f"(profiler overhead included), {profile['statements']} SQL statements taking {profile['sql_ms']:.1f} ms "
                "of it at the server.",
                "",
                "| stage (cumulative) | ms |",
                "|---|---:|",
            ]
            lines += [f"| `{name}` | {ms:.1f} |" for name, ms in profile["stages_ms"].items()]
            lines += ["", "| own ms | cumulative ms | calls | function |", "|---:|---:|---:|---|"]
            lines += [
                f"| {row['own_ms']:.1f} | {row['cumulative_ms']:.1f} | {row['calls']} | `{row['function']}` |"
                for row in profile["top_functions"]
            ]
        plans = scale.get("explain", []) + scale.get("explain_deepest", [])
        if plans:
            lines += [
                "",
                f"### EXPLAIN (ANALYZE, BUFFERS) of the record page's slowest SELECTs ({population['patients']:,} patients)",
                "",
            ]
            for plan in plans:
                lines += [
                    f"{plan['ms_in_request']:.2f} ms in the request:",
                    "",
                    "```sql",
                    plan["sql"],
                    "```",
                    "",
                    "```",
                    plan["plan"],
                    "```",
                    "",
                ]
        lines.append("")
    if len(results["scales"]) > 1:
        lines += [
            "## Growth",
            "",
            "| patients | entries | users | p50 ms | p95 ms | req/s | floor req/s |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for scale in results["scales"]:
            for run, floor in zip(scale["record_open"], scale["floor"], strict=True):
                lines.append(
                    f"| {scale['population']['patients']:,} | {scale['population']['entries']:,} | {run['users']} | "
                    f"{_ms(run['p50_ms'])} | {_ms(run['p95_ms'])} | {run['throughput']:.1f} | {floor['throughput']:.1f} |"
                )
        if results.get("plot"):
            lines += ["", f"![growth]({results['plot']})", ""]
    if results.get("audit_verify"):
        lines += ["", f"Audit chain after the run: {results['audit_verify']}", ""]
    if results.get("ingest"):
        lines += [
            "## Ingestion against raw COPY (`records.bench.ingest`, same run)",
            "",
            "```",
            results["ingest"].strip(),
            "```",
            "",
        ]
    return "\n".join(lines) + "\n"


def growth_plot(results: dict[str, Any], path: Path) -> bool:
    """A PNG: record-open p50, p95 and throughput against the number of patients, per concurrency; False if one scale."""
    if len(results["scales"]) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    patients = [scale["population"]["patients"] for scale in results["scales"]]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4.5))
    for index, run in enumerate(results["scales"][0]["record_open"]):
        users = run["users"]
        p50 = [scale["record_open"][index]["p50_ms"] for scale in results["scales"]]
        p95 = [scale["record_open"][index]["p95_ms"] for scale in results["scales"]]
        rate = [scale["record_open"][index]["throughput"] for scale in results["scales"]]
        floor = [scale["floor"][index]["throughput"] for scale in results["scales"]]
        latency.plot(patients, p50, marker="o", label=f"p50, {users} users")
        latency.plot(patients, p95, marker="x", linestyle="--", label=f"p95, {users} users")
        throughput.plot(patients, rate, marker="o", label=f"record page, {users} users")
        throughput.plot(patients, floor, marker="x", linestyle=":", label=f"raw-SQL floor, {users} users")
    for axes, title, unit in (
        (latency, "record open latency", "ms"),
        (throughput, "record opens a second", "req/s"),
    ):
        axes.set_xscale("log")
        axes.set_xlabel("patients")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
    throughput.set_yscale("log")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write(results: dict[str, Any], folder: Path) -> Path:
    """Write `<stem>.json`, `<stem>.md` and (with more than one scale) `<stem>.png` in `folder`; the Markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = results["machine"]["measured_at"].replace(":", "").replace("+0000", "")[:15]
    scales = "-".join(str(scale["population"]["patients"]) for scale in results["scales"])
    stem = f"read-{stamp}-{results['machine']['commit'][:8]}-{scales}"
    png = folder / f"{stem}.png"
    if growth_plot(results, png):
        results["plot"] = png.name
    (folder / f"{stem}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    report = folder / f"{stem}.md"
    report.write_text(markdown(results))
    return report


def combine(paths: list[Path], folder: Path) -> Path:
    """One report of the scales of several runs (a kept population is one scale a run), smallest first, with the
    growth table and PNG; each scale says the run it came from. The machine line and ingestion are the last run's."""
    runs = [json.loads(path.read_text()) for path in paths]
    runs.sort(key=lambda run: max(scale["population"]["patients"] for scale in run["scales"]))
    combined = {key: value for key, value in runs[-1].items() if key not in ("scales", "plot")}
    combined["scales"] = []
    for run in runs:
        for scale in run["scales"]:
            measured = {
                **{
                    key: run["machine"][key]
                    for key in ("commit", "work_tree_changed", "measured_at", "load_average")
                },
                "load_average_end": run.get("load_average_end"),
            }
            combined["scales"].append({**scale, "run": measured})
    combined["combined_from"] = [path.name for path in paths]
    return write(combined, folder)


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 4 or sys.argv[1] != "combine":
        sys.exit("usage: python -m records.bench.read_results combine RESULT.json RESULT.json [...]")
    print(combine([Path(name) for name in sys.argv[2:]], Path(sys.argv[2]).parent))
