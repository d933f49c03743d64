"""What every partner format is read into: the inputs of a run, and the items a reader yields from each.

A reader (`Reader`) turns one input's bytes into items, in order: a `ResourceUnit` (a FHIR resource as read, before
validation), a `Rejection` (input that will not become a record entry, with its reason and raw text) or a
`Deletion` (a partner's transaction DELETE). Every format (`readers` for FHIR JSON, `xml_reader` for FHIR XML,
`csv_extract`, `hl7v2`) yields the same items, so every format goes through one validate/match/map/upsert path.
Nothing here raises for bad input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from records.ingest.fhir import JsonObject, is_resource_type
from records.models import QuarantinedRecord

Reason = QuarantinedRecord.Reason


@dataclass(frozen=True)
class Source:
    """One input: a file, or bytes handed over by a caller. `location` names it in quarantine and messages."""

    location: str
    path: Path | None = None
    data: bytes | None = None

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.path is None:
            raise RuntimeError("invariant: self.path is not None")
        return self.path.stat().st_size

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise RuntimeError("invariant: self.path is not None")
        return self.path.read_bytes()

    def read_prefix(self, limit: int) -> bytes:
        if self.data is not None:
            return self.data[:limit]
        if self.path is None:
            raise RuntimeError("invariant: self.path is not None")
        with self.path.open("rb") as handle:
            return handle.read(limit)

    def update_checksum(self, checksum: Any) -> None:
        if self.data is not None:
            checksum.update(self.data)
            return
        if self.path is None:
            raise RuntimeError("invariant: self.path is not None")
        with self.path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                checksum.update(chunk)


@dataclass(frozen=True)
class ExpectedPatient:
    """What a record says about its patient besides the NHS number, to cross-check against the patient we hold."""

    family_name: str = ""
    birth_date: date | None = None


@dataclass(frozen=True)
class ResourceUnit:
    """One resource as read, before validation. Exactly one of `json` and `element` is set."""

    location: str
    container: str  # the file, NDJSON line or Bundle it came in: references resolve here first
    full_url: str
    resource_type: str
    source_id: str
    version_id: str
    last_updated: datetime | None
    json: JsonObject | None = None
    element: Any = None
    # Built from a partner's own text (an HL7 v2 message, a CSV header and row): quarantine keeps that text, which
    # the same feed can read again on replay, rather than the FHIR we made of it.
    source_text: str | None = None
    # Which of the resources made from one source text this is ("Patient", "Encounter"), so that each one that is
    # quarantined keeps its own row although they share the text.
    part: str = ""
    # Demographics the record states for its patient (a CSV row's surname and date of birth): a patient we hold
    # with different ones is a demographic mismatch.
    expected: ExpectedPatient | None = None

    def raw(self) -> str:
        if self.source_text is not None:
            return clean(self.source_text)
        if self.element is not None:
            return clean(etree.tostring(self.element, encoding="unicode"))
        return json_text(self.json)


@dataclass(frozen=True)
class Rejection:
    """Input that will not become a record entry, with the quarantine reason and the raw text."""

    location: str
    reason: str
    detail: str
    raw: str
    resource_type: str = ""
    source_id: str = ""
    # The NHS number the input names, when it could be read (ten digits): kept so it can be replayed.
    nhs_number: str = ""


@dataclass(frozen=True)
class Deletion:
    """A transaction Bundle's DELETE of `resource_type/source_id`: the partner deleted that resource."""

    location: str
    resource_type: str
    source_id: str
    raw: str


Item = ResourceUnit | Rejection | Deletion
# Reads one file's bytes into items; each feed format has one.
Reader = Callable[[str, bytes], Iterator[Item]]


def json_text(value: object) -> str:
    """The partner's JSON as text to keep (see `clean`)."""
    return clean(json.dumps(value, ensure_ascii=False))


def clean(value: str) -> str:
    """PostgreSQL text cannot hold NUL; everything else of the partner's text is kept as sent."""
    return value.replace("\x00", "\ufffd")


def unreadable(location: str, detail: str, raw: str) -> Rejection:
    """A rejection of input that could not be read at all, keeping its raw text."""
    return Rejection(location=location, reason=Reason.UNREADABLE, detail=detail, raw=clean(raw))


def undecodable_detail(data: bytes, error: UnicodeDecodeError) -> str:
    """Says where UTF-8 decoding failed and, when the bytes show it, which encoding the file is in instead."""
    bad = data[error.start : error.start + 1].hex()
    found = ""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        found = " It starts with a UTF-16 byte order mark: save or export it as UTF-8."
    return (
        f"The file is not valid UTF-8 (byte 0x{bad} at offset {error.start}: {error.reason}).{found} "
        "Only UTF-8 (with or without a byte order mark) is read."
    )


def entry_without_resource(location: str, method: str, url: str) -> Deletion | Rejection | None:
    """A transaction DELETE of `Type/id` is a deletion to apply; a read request (GET, HEAD) carries no data at all.

    A conditional DELETE (`Type?search`) names no resource we can find without running the partner's search, so
    it is quarantined for a person to apply rather than guessed at.
    """
    if method.upper() != "DELETE":
        return None
    if "?" in url:
        return Rejection(
            location,
            Reason.UNSUPPORTED_TYPE,
            f"A conditional DELETE ({url}) is not applied: the ingester deletes only a resource named as Type/id.",
            "",
            resource_type=url.split("?")[0].rsplit("/", 1)[-1],
        )
    parts = url.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) < 2 or not is_resource_type(parts[-2]) or not parts[-1]:
        return Rejection(
            location,
            Reason.INVALID_RESOURCE,
            f"A DELETE request must name the resource as Type/id; its url is {url or 'empty'}.",
            "",
        )
    return Deletion(location, resource_type=parts[-2], source_id=parts[-1], raw="")


def new_checksum() -> Any:
    return hashlib.sha256()
