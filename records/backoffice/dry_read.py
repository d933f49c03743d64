"""Reading partner bytes as a run would, to show what they would become, without ingesting anything.

Used by the CSV mapping's preview and the quarantine's "check" before a fix is replayed. Always holds: nothing is
written and no patient is looked up (matching on the NHS number happens only in a real run, through the pipeline);
each item is the feed's own reader's verdict, then FHIR R4 validation of each resource, the same functions a run
uses; at most `limit` items are read, so a large file is never read whole into the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from records.ingest.fhir import InvalidResource, validate_json, validate_xml
from records.ingest.items import Deletion, Reader, ResourceUnit
from records.ingest.mapping import SUPPORTED_TYPES

PATIENT = "Patient"


@dataclass(frozen=True)
class ReadItem:
    """One item as a run would take it: a resource (valid or not), a deletion, or a rejection with its detail."""

    location: str
    kind: str  # "resource", "deletion" or "rejected"
    resource_type: str
    source_id: str
    problem: str = ""  # why a run would quarantine it; empty when it would go on to patient matching

    @property
    def line(self) -> int | None:
        """The line number a CSV or text location ends with ("sample.csv:3"), if any."""
        _, _, tail = self.location.rpartition(":")
        return int(tail) if tail.isdigit() else None

    @property
    def is_usable(self) -> bool:
        return not self.problem


def dry_read(read: Reader, location: str, data: bytes, *, limit: int) -> list[ReadItem]:
    """The first `limit` items `read` makes of `data`, each validated as a run would; writes and looks up nothing."""
    items: list[ReadItem] = []
    for item in islice(read(location, data), limit):
        if isinstance(item, Deletion):
            items.append(ReadItem(item.location, "deletion", item.resource_type, item.source_id))
        elif isinstance(item, ResourceUnit):
            items.append(
                ReadItem(item.location, "resource", item.resource_type, item.source_id, _problem(item))
            )
        else:
            items.append(
                ReadItem(
                    item.location, "rejected", item.resource_type, item.source_id, item.detail or item.reason
                )
            )
    return items


def _problem(unit: ResourceUnit) -> str:
    if unit.resource_type != PATIENT and unit.resource_type not in SUPPORTED_TYPES:
        return f"{unit.resource_type} is not a resource type the record shows."
    try:
        if unit.json is not None:
            validate_json(unit.json)
        else:
            validate_xml(unit.element)
    except InvalidResource as invalid:
        return str(invalid)
    return ""
