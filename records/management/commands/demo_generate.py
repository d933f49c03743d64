"""`manage.py demo_generate OUT`: write the demo partners' FHIR bundles to a folder, without touching the database."""

from __future__ import annotations

import pathlib
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from records.demo.generator import DEFAULT_PATIENTS, DEFAULT_SEED, write_demo_bundles


def patient_count(value: str) -> int:
    number = int(value)
    # The two fixed patients and the showcase patients after them are what make the demo cover every section.
    if number < 6:
        raise ValueError(number)
    return number


def add_generation_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--patients",
        type=patient_count,
        default=DEFAULT_PATIENTS,
        help=f"how many patients (at least 6; default {DEFAULT_PATIENTS})",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--reference-date",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="the day the demo's dates are relative to (default today); same seed and day give identical files",
    )


def reference_date(options: dict[str, Any]) -> date:
    chosen: date | None = options["reference_date"]
    return chosen or timezone.localdate()


class Command(BaseCommand):
    help = (
        "Write the demo's FHIR R4 bundles, one folder per feed (<out>/<feed-code>/<feed-code>-NNN.json). "
        "Deterministic: the same seed, patient count and reference date give byte-identical files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out", type=pathlib.Path, help="folder to write into (created if missing)")
        add_generation_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        out: pathlib.Path = options["out"]
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} exists and is not a folder.")
        written = write_demo_bundles(
            out, patients=options["patients"], seed=options["seed"], reference=reference_date(options)
        )
        for feed_code, feed in written.items():
            self.stdout.write(f"{feed_code:<20} {len(feed.paths)} bundle(s), {feed.resources:>5} resources")
        total = sum(feed.resources for feed in written.values())
        self.stdout.write(
            f"Wrote {sum(len(feed.paths) for feed in written.values())} bundles ({total} resources) under {out}."
        )
