"""From partner bytes to FHIR resources: JSON, NDJSON or XML; a single resource or a Bundle of any type.

The other formats (`csv_extract`, `hl7v2`) build FHIR resources from their rows and messages and hand them on as the
same `ResourceUnit`s, so every format goes through one validate/match/map/upsert path.

Nothing here raises for bad input. Input that cannot be read becomes a `Rejection` carrying the raw text and a
sentence saying why, so the pipeline can quarantine it and carry on with the rest.

XML is read with a parser that loads no DTD, expands no entity and never touches the network, and any document
that declares a DOCTYPE is refused before it is parsed at all: FHIR XML never needs one, and a DOCTYPE is how
entity-expansion ("billion laughs") and external-entity (file:///etc/passwd) attacks arrive.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from records.ingest.fhir import (
    FHIR_NAMESPACE,
    JsonObject,
    as_object,
    is_resource_type,
    parse_datetime,
    safe_xml_parser,
    text,
)
from records.models import QuarantinedRecord

Reason = QuarantinedRecord.Reason

SUFFIXES = frozenset({".json", ".ndjson", ".jsonl", ".xml"})
_NDJSON_SUFFIXES = frozenset({".ndjson", ".jsonl"})
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_RAW_PREVIEW_BYTES = 64 * 1024
_NS = f"{{{FHIR_NAMESPACE}}}"


@dataclass(frozen=True)
class Source:
    """One input: a file, or bytes handed over by a caller. `location` names it in quarantine and messages."""

    location: str
    path: Path | None = None
    data: bytes | None = None

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        return self.path.stat().st_size

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def read_prefix(self, limit: int) -> bytes:
        if self.data is not None:
            return self.data[:limit]
        assert self.path is not None
        with self.path.open("rb") as handle:
            return handle.read(limit)

    def update_checksum(self, checksum: Any) -> None:
        if self.data is not None:
            checksum.update(self.data)
            return
        assert self.path is not None
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
        return _dump(self.json)


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


def _dump(value: object) -> str:
    return clean(json.dumps(value, ensure_ascii=False))


def clean(value: str) -> str:
    """PostgreSQL text cannot hold NUL; everything else of the partner's text is kept as sent."""
    return value.replace("\x00", "\ufffd")


def sources_for_path(path: Path, suffixes: frozenset[str] = SUFFIXES) -> list[Source]:
    """The inputs under a path: the file itself, or every file below a folder whose suffix is one of `suffixes`.

    Folders are walked recursively and sorted by relative path, so a run does not depend on the order the file
    system lists them. Hidden files and folders (a leading dot) are skipped, as are files of other kinds.
    """
    if path.is_file():
        return [Source(location=path.name, path=path)]
    found = []
    for candidate in path.rglob("*"):
        relative = candidate.relative_to(path)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if candidate.is_file() and candidate.suffix.lower() in suffixes:
            found.append(Source(location=relative.as_posix(), path=candidate))
    return sorted(found, key=lambda source: source.location)


def read_source(
    source: Source, *, max_bytes: int, checksum: Any | None = None, read: Reader | None = None
) -> Iterator[Item]:
    """Every resource in one input, in order, or the rejections that stand in for what could not be read.

    `read` turns the bytes of one input into items (FHIR by default); whatever the format, an input over
    `max_bytes` is not read at all but quarantined whole with its first bytes as a preview.
    """
    size = source.size()
    if size > max_bytes:
        if checksum is not None:
            source.update_checksum(checksum)
        preview = source.read_prefix(_RAW_PREVIEW_BYTES).decode("utf-8", errors="replace")
        yield Rejection(
            location=source.location,
            reason=Reason.UNREADABLE,
            detail=f"The file is {size} bytes; the largest the ingester reads (INGEST_MAX_FILE_BYTES) is "
            f"{max_bytes}. Only its first {_RAW_PREVIEW_BYTES} bytes are kept here.",
            raw=clean(preview),
        )
        return
    data = source.read()
    if checksum is not None:
        checksum.update(data)
    yield from (read or read_bytes)(source.location, data)


def read_bytes(location: str, data: bytes) -> Iterator[Item]:
    """Resources from one file's bytes, telling JSON, NDJSON and XML apart by their content."""
    try:
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        yield unreadable(location, undecodable_detail(data, error), data.decode("utf-8", errors="replace"))
        return
    stripped = decoded.lstrip()
    if not stripped:
        yield unreadable(location, "The file is empty.", decoded)
    elif stripped.startswith("<"):
        yield from _read_xml(location, data, decoded)
    elif location.lower().endswith(tuple(_NDJSON_SUFFIXES)):
        yield from _read_ndjson(location, decoded)
    else:
        yield from _read_json_document(location, decoded)


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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number FHIR allows")


def _load_json(value: str) -> Any:
    return json.loads(value, parse_constant=_reject_constant)


def _read_json_document(location: str, decoded: str) -> Iterator[Item]:
    try:
        document = _load_json(decoded)
    except ValueError as error:
        if _looks_like_ndjson(decoded):
            yield from _read_ndjson(location, decoded)
            return
        yield unreadable(location, f"The file is not valid JSON: {error}.", decoded)
        return
    yield from _from_json(location, decoded, document)


def _looks_like_ndjson(decoded: str) -> bool:
    lines = [line for line in decoded.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return isinstance(_load_json(lines[0]), dict)
    except ValueError:
        return False


def _read_ndjson(location: str, decoded: str) -> Iterator[Item]:
    for number, line in enumerate(decoded.splitlines(), start=1):
        if not line.strip():
            continue
        line_location = f"{location}:{number}"
        try:
            document = _load_json(line)
        except ValueError as error:
            yield unreadable(line_location, f"Line {number} is not valid JSON: {error}.", line)
            continue
        yield from _from_json(line_location, line, document)


def _from_json(location: str, raw: str, document: Any) -> Iterator[Item]:
    if not isinstance(document, dict):
        yield unreadable(location, "A FHIR resource is a JSON object; this is not one.", raw)
        return
    if "\\u0000" in raw:
        # JSONB refuses the NUL character; the resource cannot be stored as sent.
        yield unreadable(
            location, "The JSON contains the NUL character (\\u0000), which cannot be stored.", raw
        )
        return
    if document.get("resourceType") == "Bundle":
        yield from _json_bundle(location, document)
    else:
        yield _json_unit(location, location, "", document)


def _json_unit(location: str, container: str, full_url: str, resource: JsonObject) -> ResourceUnit:
    meta = as_object(resource.get("meta"))
    return ResourceUnit(
        location=location,
        container=container,
        full_url=full_url,
        resource_type=text(resource.get("resourceType")),
        source_id=text(resource.get("id")),
        version_id=text(meta.get("versionId")),
        last_updated=parse_datetime(meta.get("lastUpdated")),
        json=resource,
    )


def _json_bundle(location: str, bundle: JsonObject) -> Iterator[Item]:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        yield unreadable(location, "Bundle.entry is not a list.", _dump(bundle))
        return
    for index, entry in enumerate(entries):
        entry_location = f"{location}#entry[{index}]"
        if not isinstance(entry, dict):
            yield Rejection(
                entry_location, Reason.INVALID_RESOURCE, "A Bundle entry is not an object.", _dump(entry)
            )
            continue
        resource = entry.get("resource")
        request = as_object(entry.get("request"))
        full_url = text(entry.get("fullUrl"))
        if resource is None:
            item = _entry_without_resource(
                entry_location, text(request.get("method")), text(request.get("url"))
            )
            if item is not None:
                yield replace(item, raw=_dump(entry))
            continue
        if not isinstance(resource, dict):
            yield Rejection(
                entry_location,
                Reason.INVALID_RESOURCE,
                "Bundle entry.resource is not a JSON object.",
                _dump(entry),
            )
            continue
        if resource.get("resourceType") == "Bundle":
            yield Rejection(
                entry_location,
                Reason.UNSUPPORTED_TYPE,
                "A Bundle inside a Bundle is not opened; send its entries in the outer Bundle.",
                _dump(resource),
                resource_type="Bundle",
                source_id=text(resource.get("id")),
            )
            continue
        yield _json_unit(entry_location, location, full_url, resource)


def _entry_without_resource(location: str, method: str, url: str) -> Deletion | Rejection | None:
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


def _read_xml(location: str, data: bytes, decoded: str) -> Iterator[Item]:
    if _DOCTYPE.search(data):
        yield unreadable(
            location,
            "XML with a document type declaration (DOCTYPE or ENTITY) is refused: FHIR XML never needs one, "
            "and entities are how entity-expansion and external-file attacks work.",
            decoded,
        )
        return
    try:
        root = etree.fromstring(data, parser=safe_xml_parser())
    except etree.XMLSyntaxError as error:
        yield unreadable(location, f"The file is not well-formed XML: {error}.", decoded)
        return
    if root.getroottree().docinfo.doctype:
        yield unreadable(location, "XML with a document type declaration is refused.", decoded)
        return
    if etree.QName(root).namespace != FHIR_NAMESPACE:
        yield unreadable(
            location,
            f"The root element <{etree.QName(root).localname}> is not in the FHIR namespace.",
            decoded,
        )
        return
    if etree.QName(root).localname == "Bundle":
        yield from _xml_bundle(location, root)
    else:
        yield _xml_unit(location, location, "", root)


def _value(element: Any, path: str) -> str:
    found = element.find(path)
    return text(found.get("value")) if found is not None else ""


def _xml_unit(location: str, container: str, full_url: str, element: Any) -> ResourceUnit:
    return ResourceUnit(
        location=location,
        container=container,
        full_url=full_url,
        resource_type=etree.QName(element).localname,
        source_id=_value(element, f"{_NS}id"),
        version_id=_value(element, f"{_NS}meta/{_NS}versionId"),
        last_updated=parse_datetime(_value(element, f"{_NS}meta/{_NS}lastUpdated")),
        element=element,
    )


def _xml_bundle(location: str, bundle: Any) -> Iterator[Item]:
    for index, entry in enumerate(bundle.findall(f"{_NS}entry")):
        entry_location = f"{location}#entry[{index}]"
        full_url = _value(entry, f"{_NS}fullUrl")
        holder = entry.find(f"{_NS}resource")
        children = [child for child in holder if isinstance(child.tag, str)] if holder is not None else []
        raw = clean(etree.tostring(entry, encoding="unicode"))
        if not children:
            item = _entry_without_resource(
                entry_location,
                _value(entry, f"{_NS}request/{_NS}method"),
                _value(entry, f"{_NS}request/{_NS}url"),
            )
            if item is not None:
                yield replace(item, raw=raw)
            continue
        resource = children[0]
        qualified = etree.QName(resource)
        if len(children) > 1 or qualified.namespace != FHIR_NAMESPACE:
            yield Rejection(
                entry_location,
                Reason.INVALID_RESOURCE,
                "Bundle entry.resource must hold exactly one FHIR resource element.",
                raw,
            )
            continue
        if qualified.localname == "Bundle":
            yield Rejection(
                entry_location,
                Reason.UNSUPPORTED_TYPE,
                "A Bundle inside a Bundle is not opened; send its entries in the outer Bundle.",
                raw,
                resource_type="Bundle",
                source_id=_value(resource, f"{_NS}id"),
            )
            continue
        yield _xml_unit(entry_location, location, full_url, resource)


def new_checksum() -> Any:
    return hashlib.sha256()
