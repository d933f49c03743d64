"""`manage.py snomed_hierarchy_load PATH`: SNOMED CT is-a relationships from a release, for the sensitive sets.

Reads an RF2 relationship snapshot file (sct2_Relationship_Snapshot_*.txt) as it streams, keeps the active is-a
rows (typeId 116680003) as ConceptIsA rows named after the file, then re-flags stored entries. The whole file loads
in one transaction: a file refused halfway leaves the hierarchy as it was. Loading the same file twice adds nothing.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from consent.models import ConceptIsA
from consent.sensitive import CURATED_SOURCE, sensitive_flags_refresh

RF2_RELATIONSHIP_COLUMNS = (
    "id",
    "effectiveTime",
    "active",
    "moduleId",
    "sourceId",
    "destinationId",
    "relationshipGroup",
    "typeId",
    "characteristicTypeId",
    "modifierId",
)
IS_A = "116680003"
BATCH = 10_000
_SOURCE_MAX = ConceptIsA._meta.get_field("source").max_length or 100
_CONCEPT_MAX = ConceptIsA._meta.get_field("child").max_length or 18


def _is_concept_id(value: str) -> bool:
    # SNOMED CT identifiers are 6 to 18 digits.
    return value.isdigit() and 6 <= len(value) <= _CONCEPT_MAX


def is_a_edges(lines: TextIO, name: str) -> Iterator[tuple[str, str]]:
    """(child, parent) of every active is-a row of an RF2 relationship file; CommandError at the first line that
    is not of that format."""
    header = lines.readline().rstrip("\r\n").split("\t")
    if tuple(header) != RF2_RELATIONSHIP_COLUMNS:
        raise CommandError(
            f"{name} is not an RF2 relationship file: its first line should be the columns "
            f"{' '.join(RF2_RELATIONSHIP_COLUMNS)} separated by tabs."
        )
    for number, line in enumerate(lines, start=2):
        fields = line.rstrip("\r\n").split("\t")
        if fields == [""]:
            continue
        if len(fields) != len(RF2_RELATIONSHIP_COLUMNS):
            raise CommandError(
                f"{name}, line {number}: {len(fields)} columns where an RF2 relationship has 10."
            )
        row = dict(zip(RF2_RELATIONSHIP_COLUMNS, fields, strict=True))
        if row["active"] not in {"0", "1"}:
            raise CommandError(f"{name}, line {number}: active is {row['active']!r}, not 0 or 1.")
        if row["active"] != "1" or row["typeId"] != IS_A:
            continue
        if not (_is_concept_id(row["sourceId"]) and _is_concept_id(row["destinationId"])):
            raise CommandError(f"{name}, line {number}: sourceId and destinationId must be SNOMED CT ids.")
        yield row["sourceId"], row["destinationId"]


class Command(BaseCommand):
    help = (
        "Load the is-a hierarchy of a SNOMED CT release from its RF2 relationship snapshot file, so that the "
        "sensitive sets match every descendant of their concepts; then re-flag stored entries."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=pathlib.Path, help="an sct2_Relationship_Snapshot file of a release")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="first remove the relationships of earlier releases (the curated default stays)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: pathlib.Path = options["path"]
        if not path.is_file():
            raise CommandError(f"There is no file at {path}.")
        if "_full" in path.name.lower():
            # A full file holds every past state of each relationship: its rows once active would load even
            # where a later row made them inactive.
            raise CommandError(f"{path.name} is a full release file; load the snapshot file of the release.")
        source = path.name[:_SOURCE_MAX]
        with transaction.atomic():
            if options["replace"]:
                ConceptIsA.objects.exclude(source=CURATED_SOURCE).delete()
            found = self._load(path, source)
        changed = sensitive_flags_refresh()
        self.stdout.write(
            f"{found} active is-a relationships read from {path.name}; {ConceptIsA.objects.count()} held in all; "
            f"{changed} record entries re-flagged."
        )

    def _load(self, path: pathlib.Path, source: str) -> int:
        found = 0
        batch: list[ConceptIsA] = []
        try:
            with path.open(encoding="utf-8", newline="") as lines:
                for child, parent in is_a_edges(lines, path.name):
                    found += 1
                    batch.append(ConceptIsA(child=child, parent=parent, source=source))
                    if len(batch) >= BATCH:
                        ConceptIsA.objects.bulk_create(batch, ignore_conflicts=True)
                        batch = []
        except UnicodeDecodeError as error:
            raise CommandError(
                f"{path.name} is not an RF2 relationship file: it is not UTF-8 text."
            ) from error
        ConceptIsA.objects.bulk_create(batch, ignore_conflicts=True)
        return found
