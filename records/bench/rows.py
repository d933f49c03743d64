"""The benchmark's rows and the table it prints: each row's median repetition, and the range over all of them."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import TextIO

import django
import fhir.resources
import psycopg
import pydantic
from django.db import connection


class BenchmarkError(Exception):
    """The benchmark found something wrong (not slow: wrong), and its numbers would mean nothing."""


@dataclass(frozen=True)
class Row:
    path: str
    resources: int
    entries: int
    seconds: float
    # Time the cyclic garbage collector paused this process; None where it was not measured.
    gc_seconds: float | None = None
    # The COPY floor of the same rows, for the ratio; None for the floor itself and for validation alone.
    floor: Row | None = None
    # Resources that went through FHIR validation (valid or not); None for the floor and validation alone.
    validated: int | None = None

    @property
    def rate(self) -> float:
        return self.resources / self.seconds if self.seconds > 0 else 0.0

    @property
    def validated_rate(self) -> float | None:
        if self.validated is None:
            return None
        return self.validated / self.seconds if self.seconds > 0 else 0.0


def machine_lines() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (server,) = cursor.fetchone() or ("?",)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return [
        f"machine   {platform.platform()}, {os.cpu_count()} CPUs ({usable} usable by this process){load}",
        f"versions  Python {platform.python_version()}, Django {django.get_version()}, psycopg "
        f"{psycopg.__version__} (libpq {psycopg.pq.version()}), PostgreSQL {server}, fhir.resources "
        f"{fhir.resources.__version__}, pydantic {pydantic.VERSION}",
    ]


def _headline(row: Row) -> float:
    """The rate a row is judged by: validated resources a second, or resources a second where none are counted."""
    validated_rate = row.validated_rate
    return row.rate if validated_rate is None else validated_rate


def _table(rows: list[Row], repetitions: list[list[Row]] | None = None) -> str:
    spans = list(zip(*repetitions, strict=True)) if repetitions and len(repetitions) > 1 else []
    header = (
        f"{'path':<40} {'resources':>9} {'validated':>9} {'entries':>8} {'seconds':>8} {'resources/s':>11} "
        f"{'validated/s':>11} {'GC s':>5} {'vs COPY':>8}" + (f" {'range':>13}" if spans else "")
    )
    lines = [header, "-" * len(header)]
    for number, row in enumerate(rows):
        rates = [_headline(measured) for measured in spans[number]] if spans else []
        span = f" {min(rates):>6.0f}-{max(rates):<6.0f}" if rates else ""
        ratio = f"{row.rate / row.floor.rate:.2f}" if row.floor and row.floor.rate else ""
        paused = f"{row.gc_seconds:.2f}" if row.gc_seconds is not None else ""
        validated = "" if row.validated is None else str(row.validated)
        validated_rate = "" if row.validated_rate is None else f"{row.validated_rate:.0f}"
        lines.append(
            f"{row.path:<40} {row.resources:>9} {validated:>9} {row.entries:>8} {row.seconds:>8.3f} "
            f"{row.rate:>11.0f} {validated_rate:>11} {paused:>5} {ratio:>8}{span}"
        )
    return "\n".join(lines)


def medians(repetitions: list[list[Row]]) -> list[Row]:
    """Per row, the repetition with the median time (of an even number, the slower of the two middle ones)."""
    return [
        sorted(measured, key=lambda row: row.seconds)[len(measured) // 2]
        for measured in zip(*repetitions, strict=True)
    ]


def report(repetitions: list[list[Row]], out: TextIO) -> None:
    """Print the table: each row's median repetition, and with more than one, the range over all of them."""
    out.write("\n" + _table(medians(repetitions), repetitions) + "\n")
    shown = (
        f"Each row is the median of {len(repetitions)} repetitions, each in a new database (of an even number,"
        " the slower middle\none); range: the lowest and highest validated/s (resources/s for the floors) over"
        " all of them.\n"
        if len(repetitions) > 1
        else ""
    )
    out.write(
        "\nresources: read by the run, patients and quarantined ones included; validated: those that went through"
        " FHIR\nvalidation, valid or not (not those quarantined before it, as unreadable or of an unsupported type,"
        " nor those\nheld unchanged); entries: record-entry rows it wrote.\nGC s: time the cyclic garbage collector"
        " paused the run. vs COPY: the run's resources/s over the COPY floor's\nrows/s for the rows that run wrote"
        " (1.00 would be ingesting as fast as PostgreSQL can store them).\n" + shown
    )
    out.flush()
