"""Council social-care CSV extracts: each row becomes one FHIR R4 resource through the feed's declared mapping.

`Feed.csv_mapping` names the columns and says what each record type becomes (`csv_mapping`; docs/ingestion.md
has the whole schema with an example). A mapping that is not valid is refused whole, with every problem named,
before anything is read: a run of a feed with a bad mapping fails and writes nothing.

What always holds for a valid mapping:
- every non-blank row is read once, as one resource or one rejection, so a bad row never stops the others;
- a rejected row keeps its line number (in its location and detail) and, as its raw payload, the header line and
  the row as sent, which the same feed can read again when the record is replayed;
- the resource's id is the row's record id (made FHIR-valid by `fhir.fhir_id` when it is not), so the same record
  in a later extract updates the same entry;
- the patient is named only by the NHS number identifier; the row's family name and birth date are cross-checked
  against the patient we hold, never used to find or create one (an extract is not an authority on demographics).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime

from records.ingest.formats.csv_mapping import CsvMapping, csv_mapping_check, fold
from records.ingest.formats.csv_rows import RowBuilder, RowProblem
from records.ingest.items import (
    Deletion,
    Item,
    Reader,
    Reason,
    Rejection,
    ResourceUnit,
    undecodable_detail,
    unreadable,
)
from records.ingest.matching import well_formed
from records.models import Feed

SUFFIXES = frozenset({".csv", ".txt"})


class _Lines:
    """The physical lines a csv.reader asks for, kept so each row's raw text (and first line) is known."""

    def __init__(self, text: str) -> None:
        self._lines = io.StringIO(text, newline="")
        self.number = 0
        self.taken: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._lines.readline()
        if not line:
            raise StopIteration
        self.number += 1
        self.taken.append(line)
        return line


def reader(feed: Feed) -> Reader:
    """The reader of this feed's extracts; raises CsvMappingError if the feed's mapping is not valid."""
    mapping = csv_mapping_check(feed.csv_mapping)
    return lambda location, data: _read(feed, mapping, location, data)


def _read(feed: Feed, mapping: CsvMapping, location: str, data: bytes) -> Iterator[Item]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        yield unreadable(location, undecodable_detail(data, error), data.decode("utf-8", errors="replace"))
        return
    if not text.strip():
        yield unreadable(location, "The file is empty.", text)
        return
    lines = _Lines(text)
    rows = csv.reader(lines, delimiter=mapping.delimiter)
    try:
        header = next(rows)
    except csv.Error as error:
        yield unreadable(location, f"The header line cannot be read as CSV: {error}.", text)
        return
    header_text = "".join(lines.taken).rstrip("\r\n")
    positions = _positions(header, mapping, location, text)
    if isinstance(positions, Rejection):
        yield positions
        return
    build = RowBuilder(feed, mapping)
    while True:
        lines.taken = []
        first = lines.number + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as error:
            raw = "".join(lines.taken).rstrip("\r\n")
            yield unreadable(f"{location}:{first}", f"Line {first} cannot be read as CSV: {error}.", raw)
            continue
        raw_row = "".join(lines.taken).rstrip("\r\n")
        if not any(value.strip() for value in row):
            continue
        yield _item(build, location, first, header, positions, row, f"{header_text}\n{raw_row}")


def _positions(
    header: list[str], mapping: CsvMapping, location: str, text: str
) -> dict[str, int] | Rejection:
    """Where each mapped column is, matching headings without regard to case or surrounding spaces."""
    folded = [fold(heading) for heading in header]
    positions: dict[str, int] = {}
    problems = []
    for name, column in mapping.columns.items():
        found = [index for index, heading in enumerate(folded) if heading == fold(column)]
        if len(found) != 1:
            problems.append(f"{'no' if not found else 'more than one'} column {column!r} (for {name})")
        else:
            positions[name] = found[0]
    if problems:
        return unreadable(
            location,
            "The header does not fit the feed's CSV mapping: it has "
            + "; ".join(problems)
            + ". Its columns are: "
            + ", ".join(repr(heading) for heading in header)
            + ".",
            text,
        )
    return positions


def _item(
    build: RowBuilder,
    location: str,
    line: int,
    header: list[str],
    positions: dict[str, int],
    row: list[str],
    raw: str,
) -> Item:
    """One non-blank row as a resource, a deletion, or a rejection keeping its line and raw text."""
    where = f"{location}:{line}"
    values = {name: row[index].strip() for name, index in positions.items() if index < len(row)}
    if len(row) != len(header):
        detail = f"Line {line} has {len(row)} fields; the header has {len(header)}."
        return Rejection(
            where, Reason.UNREADABLE, detail, raw, nhs_number=well_formed(values.get("nhs_number"))
        )
    try:
        resource, expected, is_deleted = build.resource(line, values)
    except RowProblem as problem:
        return Rejection(
            where,
            problem.reason,
            problem.detail,
            raw,
            resource_type=values.get("record_type", "")[:64],
            source_id=values.get("record_id", ""),
            nhs_number=well_formed(values.get("nhs_number")),
        )
    if is_deleted:
        return Deletion(where, str(resource["resourceType"]), str(resource["id"]), raw)
    meta = resource.get("meta", {})
    return ResourceUnit(
        location=where,
        container=where,
        full_url="",
        resource_type=str(resource["resourceType"]),
        source_id=str(resource["id"]),
        version_id="",
        last_updated=_as_datetime(meta.get("lastUpdated")),
        json=resource,
        source_text=raw,
        expected=expected,
    )


def _as_datetime(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None
