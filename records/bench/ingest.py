"""The ingestion benchmark: `make bench`, or `python -m records.bench.ingest` with DATABASE_URL and REDIS_URL set.

Creates a scratch database on the server DATABASE_URL names (`records.bench.databases`), migrates it, measures (see
`records.bench.measure`), prints a table, and drops the database again, so it never touches the data of `make run`
or the tests.

This module is a launcher: it imports nothing from Django at module level, because the settings must see the
scratch database's URL when they are first read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from records.bench.databases import scratch_database, using_database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m records.bench.ingest", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--synthea", type=int, default=None, metavar="N", help="ingest only the first N Synthea bundles"
    )
    parser.add_argument(
        "--demo-patients", type=int, default=None, metavar="N", help="demo size (default: the demo's own)"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no untimed warm-up run: the first timed run also imports the FHIR models, as a new worker's first does",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="measure everything N times, each in a new database, and print each row's median (default 3)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also ingest the Synthea bundles once more under cProfile and say where the time went",
    )
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        parser.error("DATABASE_URL is not set; run `make bench`, which starts an embedded PostgreSQL")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.cold and args.repeat > 1:
        parser.error("--cold measures a new process's first runs: give it --repeat 1")
    started = time.perf_counter()
    repetitions: list[list[Any]] = []
    print("sharedcare ingestion benchmark: parse, validate, match, map, upsert (and quarantine)", flush=True)
    for number in range(args.repeat):
        with scratch_database(url, suffix=f"_r{number}") as scratch:
            # Read by Django's settings once, at setup; and by the bench for the server's address throughout.
            os.environ["DATABASE_URL"] = scratch
            if number == 0:
                os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sharedcare.settings")
                import django

                django.setup()
            from records.bench import measure, profiling, rows

            with using_database(scratch):
                try:
                    repetitions.append(
                        measure.measure_once(
                            synthea_bundles=args.synthea,
                            demo_patients=args.demo_patients,
                            warm_up=not args.cold,
                            out=sys.stdout if number == 0 else None,
                        )
                    )
                    if number == args.repeat - 1:
                        rows.report(repetitions, sys.stdout)
                        if args.profile:
                            profiling.where_the_time_goes(args.synthea, sys.stdout)
                except rows.BenchmarkError as error:
                    print(f"benchmark stopped: {error}", file=sys.stderr)
                    return 1
    print(f"\nwhole benchmark, setup included: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
