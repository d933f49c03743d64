"""From partner bytes to FHIR resources: JSON, NDJSON or XML; a single resource or a Bundle of any type.

The items a reader yields, and the inputs of a run, are defined in `items`; XML is read by `xml_reader`. The other
formats (`csv_extract`, `hl7v2`) build FHIR resources from their rows and messages and hand them on as the same
`ResourceUnit`s, so every format goes through one validate/match/map/upsert path.

Nothing here raises for bad input. Input that cannot be read becomes a `Rejection` carrying the raw text and a
sentence saying why, so the pipeline can quarantine it and carry on with the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from records.ingest.fhir import JsonObject, as_object, parse_datetime, text
from records.ingest.formats.xml_reader import read_xml
from records.ingest.items import (
    Item,
    Reader,
    Reason,
    Rejection,
    ResourceUnit,
    Source,
    clean,
    entry_without_resource,
    json_text,
    undecodable_detail,
    unreadable,
)

SUFFIXES = frozenset({".json", ".ndjson", ".jsonl", ".xml"})
_NDJSON_SUFFIXES = frozenset({".ndjson", ".jsonl"})
_RAW_PREVIEW_BYTES = 64 * 1024


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
        yield from read_xml(location, data, decoded)
    elif location.lower().endswith(tuple(_NDJSON_SUFFIXES)):
        yield from _read_ndjson(location, decoded)
    else:
        yield from _read_json_document(location, decoded)


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
        yield unreadable(location, "Bundle.entry is not a list.", json_text(bundle))
        return
    for index, entry in enumerate(entries):
        entry_location = f"{location}#entry[{index}]"
        if not isinstance(entry, dict):
            yield Rejection(
                entry_location, Reason.INVALID_RESOURCE, "A Bundle entry is not an object.", json_text(entry)
            )
            continue
        resource = entry.get("resource")
        request = as_object(entry.get("request"))
        full_url = text(entry.get("fullUrl"))
        if resource is None:
            item = entry_without_resource(
                entry_location, text(request.get("method")), text(request.get("url"))
            )
            if item is not None:
                yield replace(item, raw=json_text(entry))
            continue
        if not isinstance(resource, dict):
            yield Rejection(
                entry_location,
                Reason.INVALID_RESOURCE,
                "Bundle entry.resource is not a JSON object.",
                json_text(entry),
            )
            continue
        if resource.get("resourceType") == "Bundle":
            yield Rejection(
                entry_location,
                Reason.UNSUPPORTED_TYPE,
                "A Bundle inside a Bundle is not opened; send its entries in the outer Bundle.",
                json_text(resource),
                resource_type="Bundle",
                source_id=text(resource.get("id")),
            )
            continue
        yield _json_unit(entry_location, location, full_url, resource)
