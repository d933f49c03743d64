"""The ingestion benchmark: `make bench`, or `python -m records.bench.ingest` with DATABASE_URL and REDIS_URL set.

Creates a scratch database on the server DATABASE_URL names, migrates it, measures (see `records.bench.measure`), prints
a table, and drops the database again, so it never touches the data of `make run` or the tests.

This module is a launcher: it imports nothing from Django at module level, because the settings must see the
scratch database's URL when they are first read.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import psycopg
from psycopg import sql


def _scratch_url(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def server_connection(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection, in autocommit (CREATE and DROP DATABASE refuse a transaction), to the database in `url`."""
    config = dj_database_url.parse(url)
    return psycopg.connect(
        dbname=str(config["NAME"]),
        user=str(config.get("USER") or "") or None,
        password=str(config.get("PASSWORD") or "") or None,
        host=str(config.get("HOST") or "") or None,
        port=str(config.get("PORT") or "") or None,
        autocommit=True,
    )


@contextlib.contextmanager
def scratch_database(url: str, suffix: str = "") -> Iterator[str]:
    """Yield the URL of a new, empty database on the server `url` names; drop it afterwards, whatever happened.

    Its name ends in `suffix`, so that one process can hold more than one."""
    name = f"sharedcare_bench_{os.getpid()}{suffix}"
    with server_connection(url) as server:
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _scratch_url(url, name)
    finally:
        # Imported here, like all of Django: the settings must first see the scratch database's URL.
        from django.db import connections

        # The server refuses to drop a database with sessions open; close ours first.
        connections.close_all()
        with server_connection(url) as server:
            server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def using_database(url: str) -> Iterator[None]:
    """Point Django's default connection at the database `url` names while inside (Django is set up)."""
    from django.db import connections

    default = connections["default"]
    name = default.settings_dict["NAME"]
    connections.close_all()
    default.settings_dict["NAME"] = dj_database_url.parse(url)["NAME"]
    try:
        yield
    finally:
        connections.close_all()
        default.settings_dict["NAME"] = name


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
            from records.bench import measure

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
                        measure.report(repetitions, sys.stdout)
                        if args.profile:
                            measure.where_the_time_goes(args.synthea, sys.stdout)
                except measure.BenchmarkError as error:
                    print(f"benchmark stopped: {error}", file=sys.stderr)
                    return 1
    print(f"\nwhole benchmark, setup included: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
