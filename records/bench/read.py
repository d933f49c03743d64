"""The read-path benchmark at ICS scale: `make bench`, or `python -m records.bench.read` with DATABASE_URL and
REDIS_URL set.

On a scratch database (`records.bench.databases`), for each scale in turn (the population grows, by COPY, from one
to the next: `records.bench.population`):
1. serves it with gunicorn as `make run` does, on 127.0.0.1, and signs the bench's users in through the real
   login pages (`records.bench.readers`);
2. loads the full record page (`records:patient-detail`, through the door, with its audit row) with locust at 1, 4
   and 16 users, and the raw-SQL floor of the same work at the same concurrency (`records.bench.read_floor`);
3. the NHS-number search (POST), the feed monitor, the patient access report, and records ~10, ~250 and ~2,000
   entries deep one at a time;
4. profiles one record open in this process and EXPLAINs its slowest SELECTs (`records.bench.read_profile`).
Then the ingestion benchmark (`records.bench.ingest`) runs as it always has, and everything is written to
bench/results/ (`records.bench.read_results`): JSON, Markdown and, for more than one scale, a PNG of the growth.

With `--keep NAME` the population lives in a database kept between runs (`records.bench.databases.kept_database`):
built once (`--build-only` builds it and measures nothing), then measured, and measured again after the code
changes, without being rebuilt; a run on it grows it only to scales above what it holds. Without `--keep` (as
`make bench` runs) every run builds afresh on a scratch database dropped at the end.

It measures and reports; it asserts nothing about speed. It refuses to report a run whose requests were refused.
This module is a launcher: it imports nothing from Django at module level (the settings must see the scratch
database's URL when they are first read).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from records.bench.databases import kept_database, kept_database_drop, scratch_database, using_database

BASE_DIR = Path(__file__).resolve().parents[2]
RESULTS = BASE_DIR / "bench" / "results"
# Depths opened one at a time by the acute trust's doctor: (name, fewest entries, most entries).
DEPTHS = (
    ("record ~10 entries deep", 8, 12),
    ("record ~250 entries deep", 200, 300),
    ("record ~2,000 entries deep", 1500, 2500),
)


def _numbers(text: str) -> list[int]:
    values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of positive numbers")
    return values


def _worker_kind() -> str:
    """How gunicorn's workers serve, as sharedcare.gunicorn_conf and GUNICORN_CMD_ARGS (if set) make them."""
    from sharedcare import gunicorn_conf

    extra = os.environ.get("GUNICORN_CMD_ARGS", "")
    return f"{gunicorn_conf.worker_class} ({gunicorn_conf.threads} threads each)" + (
        f", with GUNICORN_CMD_ARGS={extra!r}" if extra else ""
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m records.bench.read", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scales", type=_numbers, default=[10_000], help="patients at each scale, e.g. 10000,100000,1000000"
    )
    parser.add_argument(
        "--patients", type=int, default=None, help="one scale of this many patients (overrides --scales)"
    )
    parser.add_argument("--users", type=_numbers, default=[1, 4, 16], help="locust users for the record page")
    parser.add_argument("--page-users", type=int, default=4, help="locust users for the other pages")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each locust and floor run")
    parser.add_argument(
        "--audit-events-per-patient",
        type=float,
        default=3.0,
        help="chained access events written per patient",
    )
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (make run: 2)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingestion benchmark")
    parser.add_argument("--ingest-repeat", type=int, default=1, help="repetitions of the ingestion benchmark")
    parser.add_argument(
        "--verify-audit", action="store_true", help="run audit_verify on the whole chain at the end"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where the results go (default bench/results)"
    )
    parser.add_argument(
        "--keep",
        metavar="NAME",
        default=None,
        help="build into (or reuse) the kept database sharedcare_kept_NAME instead of a scratch one; never dropped",
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="with --keep: build the population to the scales, measure nothing",
    )
    parser.add_argument("--drop", action="store_true", help="with --keep: drop the kept database and stop")
    args = parser.parse_args(argv)
    if (args.build_only or args.drop) and not args.keep:
        parser.error("--build-only and --drop need --keep NAME")
    if args.patients is not None:
        args.scales = [args.patients]
    args.scales = sorted(set(args.scales))
    return args


def _ingest(url: str, repeat: int) -> str:
    """The ingestion benchmark as `make bench` ran it before, on its own scratch databases; its printed table."""
    env = {**os.environ, "DATABASE_URL": url}
    done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
        [sys.executable, "-m", "records.bench.ingest", "--repeat", str(repeat)],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + (f"\n(ingestion benchmark failed: {done.stderr[-1000:]})" if done.returncode else "")


def _build(args: argparse.Namespace, population: Any, scale: int) -> dict[str, Any]:
    """Grow the population to `scale` (nothing to do on a kept one that holds it already); what it then holds."""
    from records.bench import population as populating

    grows = scale > population.patients
    before = population.patients
    population.seconds.clear()
    started = time.perf_counter()
    populating.grow(population, to=scale, audit_events_per_patient=args.audit_events_per_patient)
    analysed = populating.analyse() if grows else None
    described: dict[str, Any] = {
        "patients": population.patients,
        "entries": population.entries,
        "relationships": population.relationships,
        "events": population.events,
        "practices": len(population.practices),
        "seconds": {name: round(seconds, 1) for name, seconds in population.seconds.items()},
        "analyse_seconds": analysed,
        "sizes": populating.table_sizes(),
    }
    if grows and args.keep:
        from records.bench.read_results import machine

        about = machine()
        populating.build_note(
            {
                **described,
                "grew_from": before,
                "wall_seconds": round(time.perf_counter() - started, 1),
                "commit": about["commit"],
                "load_average_end": about["load_average"],
            }
        )
    if args.keep:
        described["kept_database"] = args.keep
        described["built"] = populating.build_notes()
    return described


def _scale(args: argparse.Namespace, population: Any, scale: int, log_dir: Path) -> dict[str, Any]:
    from dataclasses import asdict

    from django.conf import settings
    from django.db import connections

    from records.bench import load, read_floor, read_profile, readers

    described = _build(args, population, scale)
    print(f"\n{scale:,} patients: {described}", flush=True)
    result: dict[str, Any] = {
        "population": described,
        "record_open": [],
        "floor": [],
        "pages": [],
        "depths": [],
        "notes": [],
    }
    connections.close_all()
    with load.served(dict(os.environ), workers=args.web_workers, log_dir=log_dir) as base:
        signed_in = readers.readers_sign_in(
            base, population, scale=scale, clinicians=max(args.users), officers=args.page_users
        )
        connections.close_all()
        for users in args.users:
            run = load.locust_run(
                base, signed_in["clinician"], page="record", users=users, seconds=args.seconds
            )
            print(f"  record open, {users} users: {run}", flush=True)
            result["record_open"].append(asdict(run))
        practices = population.practices
        floor_readers = [
            (
                reader.patients,
                int(practices[number % len(practices)].group_id),
                practices[number % len(practices)].ods_code,
            )
            for number, reader in enumerate(signed_in["clinician"])
        ]
        connections.close_all()
        for users in args.users:
            floor = read_floor.floor_run(
                os.environ["DATABASE_URL"],
                floor_readers,
                users=users,
                seconds=args.seconds,
                page_size=settings.RECORD_PAGE_SIZE,
            )
            print(f"  floor, {users} users: {floor}", flush=True)
            result["floor"].append(asdict(floor))
        pages = [
            ("search", "clinician"),
            ("name-search", "clinician"),
            ("feed-monitor", "backoffice"),
            ("access-report", "officer"),
        ]
        for page, who in pages:
            run = load.locust_run(
                base, signed_in[who], page=page, users=args.page_users, seconds=args.seconds
            )
            print(f"  {page}, {args.page_users} users: {run}", flush=True)
            result["pages"].append(asdict(run))
        doctor = signed_in["ed"][0]
        for name, fewest, most in DEPTHS:
            patients = readers.deep_patients(fewest, most, limit=50)
            if not patients:
                result["notes"].append(f"No {name} at this scale.")
                continue
            deep = readers.Reader(doctor.username, "ed", doctor.cookies, patients, [])
            run = load.locust_run(
                base, [deep], page=f"record:{name}", users=1, seconds=max(3.0, args.seconds / 2)
            )
            print(f"  {name}, 1 user: {run}", flush=True)
            result["depths"].append(asdict(run))
        connections.close_all()
        typical = readers.deep_patients(8, 12, limit=1) or signed_in["clinician"][0].patients[:1]
        result["profile"] = read_profile.record_open_profile(doctor.cookies, typical[0])
        deepest = readers.deep_patients(1500, 2500, limit=1) or typical
        result["explain"] = read_profile.record_open_explain(doctor.cookies, typical[0])
        if deepest != typical:
            result["explain_deepest"] = read_profile.record_open_explain(
                doctor.cookies, deepest[0], slowest=2
            )
    return result


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        print(
            "DATABASE_URL is not set; run `make bench`, which starts an embedded PostgreSQL", file=sys.stderr
        )
        return 2
    if args.drop:
        kept_database_drop(url, args.keep)
        print(f"dropped the kept database of {args.keep!r}")
        return 0
    started = time.perf_counter()
    results: dict[str, Any] = {
        "seconds": args.seconds,
        "web_workers": args.web_workers,
        "web_worker_kind": _worker_kind(),
        "users": args.users,
        "scales": [],
    }
    with (
        tempfile.TemporaryDirectory(prefix="sharedcare-bench-") as log_folder,
        kept_database(url, args.keep) if args.keep else scratch_database(url, suffix="_read") as scratch,
    ):
        os.environ["DATABASE_URL"] = scratch
        os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
        # The search limit (a script's, not a clinician's, pace) would refuse the bench's own searches; the check
        # still runs on every search, against a limit the bench does not reach.
        os.environ["PATIENT_SEARCHES_PER_HOUR"] = "100000000"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sharedcare.settings")
        import django

        django.setup()
        from django.core.management import call_command

        from records.bench import population as populating
        from records.bench import read_results
        from records.bench.rows import BenchmarkError

        with using_database(scratch):
            call_command("migrate", verbosity=0, interactive=False)
            results["machine"] = read_results.machine()
            population = populating.population_load() if args.keep else None
            if population is None or population.patients == 0:
                population = populating.partners_create(populating.practices_for(args.scales[0]))
            elif args.scales[0] < population.patients:
                print(
                    f"the kept database {args.keep!r} holds {population.patients:,} patients: it measures no scale "
                    "below that (ask for that scale or above, or use another name)",
                    file=sys.stderr,
                )
                return 2
            if args.build_only:
                for scale in args.scales:
                    begun = time.perf_counter()
                    described = _build(args, population, scale)
                    print(
                        f"\n{scale:,} patients built in {time.perf_counter() - begun:.0f} s: {described}",
                        flush=True,
                    )
                return 0
            try:
                for scale in args.scales:
                    results["scales"].append(_scale(args, population, scale, Path(log_folder)))
            except BenchmarkError as error:
                print(f"benchmark stopped: {error}", file=sys.stderr)
                return 1
            if args.verify_audit:
                from audit.selectors import audit_trail_verify

                breaks = list(audit_trail_verify(""))
                results["audit_verify"] = (
                    f"broken in {len(breaks)} place(s): {breaks[0]}"
                    if breaks
                    else "intact (audit_trail_verify)"
                )
    results["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    if not args.no_ingest:
        print("\ningestion benchmark (records.bench.ingest)...", flush=True)
        results["ingest"] = _ingest(url, args.ingest_repeat)
    results["whole_seconds"] = round(time.perf_counter() - started, 1)
    report = read_results.write(results, args.out)
    print(f"\nresults: {report} (and .json beside it); whole benchmark {results['whole_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
