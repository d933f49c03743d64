"""From partner bytes to FHIR resources: JSON, NDJSON or XML; a single resource or a Bundle of any type.

The other formats (`csv_extract`, `hl7v2`) build FHIR resources from their rows and messages and hand them on as the
same `ResourceUnit`s, so every format goes through one validate/match/map/upsert path.

Nothing here raises for bad input. Input that cannot be read becomes a `Rejection` carrying the raw text and a
sentence saying why, so the pipeline can quarantine it and carry on with the rest.

XML is read with a parser that loads no DTD, expands no entity and never touches the network, and any document
that declares a DOCTYPE is refused before it is parsed at all: FHIR XML never needs one, and a DOCTYPE is how
entity-expansion ("billion laughs") and external-entity (file:///etc/passwd) attacks arrive.

`ValidationPool` reads and validates a run's FHIR inputs again in worker processes, so that R4B validation (the
slowest step of a run) uses the machine's other cores while the run's own process matches, maps and writes.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from records.ingest.fhir import (
    FHIR_NAMESPACE,
    InvalidResource,
    JsonObject,
    as_object,
    is_resource_type,
    parse_datetime,
    safe_xml_parser,
    text,
    validate_json,
    validate_xml,
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


# Below this much input a run validates in its own process: starting workers costs more than they would save.
VALIDATION_POOL_MIN_BYTES = 1024 * 1024

# What a worker found for one resource: its type and id (to check it is the same resource); then None when it is
# valid JSON (the run keeps the dict it parsed itself), the FHIR JSON of a valid XML resource (what
# `fhir.validate_xml` returns), or the message of the InvalidResource it raised; then what the pool's `mapper`
# made of a valid resource (None when invalid, or without a mapper).
Verdict = tuple[str, str, JsonObject | str | None, Any]


def verdicts(
    source: Source,
    start: int,
    *,
    max_bytes: int,
    types: frozenset[str],
    skip: frozenset[int],
    mapper: Callable[[JsonObject], Any] | None = None,
    index: int = 0,
) -> dict[int, Verdict]:
    """Read one FHIR input as a run does and validate each resource whose type is in `types`, and map it.

    By position in the run (the input's items, as `read_source` yields them, numbered from `start`): the verdict
    on each resource validated, leaving out the positions in `skip`. Runs in a worker process: it reads, and
    returns only verdicts, validation messages (which name elements, never values) and what `mapper` returns;
    it logs nothing and never touches the database. It maps only while it is `_MAP_AHEAD` inputs ahead of the
    run (input `index` against the one the run has reached), so that the run does not wait for its mappings.
    """
    if _reached is not None and index - _reached.value < _MAP_AHEAD:
        mapper = None
    found: dict[int, Verdict] = {}
    for position, item in enumerate(read_source(source, max_bytes=max_bytes), start):
        if not isinstance(item, ResourceUnit) or item.resource_type not in types or position in skip:
            continue
        outcome: JsonObject | None = None
        try:
            if item.json is not None:
                validate_json(item.json)
            else:
                outcome = validate_xml(item.element)
        except InvalidResource as error:
            found[position] = (item.resource_type, item.source_id, str(error), None)
            continue
        resource = item.json if outcome is None else outcome
        mapped = mapper(resource) if mapper is not None and resource is not None else None
        found[position] = (item.resource_type, item.source_id, outcome, mapped)
    return found


# In a worker: the input the run's second pass has reached (shared memory), and how far ahead of it a worker must
# be to map as well as validate.
_reached: Any = None
_MAP_AHEAD = 3


def _worker_start(parent: int, reached: Any) -> None:
    """In each worker: end with the run's process, even if that is killed and never shuts the pool down."""
    global _reached
    _reached = reached
    with contextlib.suppress(OSError, AttributeError):
        # Linux: PR_SET_PDEATHSIG (1) delivers SIGKILL to this worker when the process that forked it ends.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


def fork_refusal() -> str:
    """Why this process must not fork worker processes now, or "" when it may."""
    if multiprocessing.current_process().daemon:
        # A Celery prefork worker (billiard) is daemonic: its children would outlive a terminated worker.
        return "daemonic process"
    billiard = sys.modules.get("billiard")
    if billiard is not None and billiard.current_process().daemon:
        return "daemonic process"
    if not hasattr(os, "fork"):
        return "no fork"
    tqdm_monitor = sys.modules.get("tqdm._monitor")
    monitor = getattr(tqdm_monitor, "TMonitor", None)
    others = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not (monitor is not None and isinstance(thread, monitor))
    ]
    if others:
        # A lock another thread holds at the fork would stay held in the worker for ever.
        return "other threads"
    return ""


class ValidationPool:
    """Validates a run's FHIR resources in worker processes (forked per run, always shut down) while it goes on.

    The run hands each input over once its first pass has read it (`submit`), naming the resources not to
    validate (see `pipeline`); a worker reads, validates and maps it again while the run goes on, and the second pass
    asks for its verdicts when it reaches it (`verdicts`), waiting if a worker is still on it. Whatever no worker
    answered for (a worker that failed, a resource that differs), the run validates itself. With `processes` under
    2, in a daemonic process (a Celery prefork worker), with other threads running, for a reader other than FHIR's,
    or for little input, there are no workers and no verdicts.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        processes: int,
        max_bytes: int,
        types: frozenset[str],
        read: Reader,
        mapper: Callable[[JsonObject], Any] | None = None,
    ) -> None:
        self._sources = sources
        self._max_bytes = max_bytes
        self._types = types
        self._mapper = mapper
        self._workers = 0
        self._futures: dict[int, Future[dict[int, Verdict]]] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._reached: Any = None
        if processes < 2 or read is not read_bytes or fork_refusal():
            return
        if sum(source.size() for source in sources) >= VALIDATION_POOL_MIN_BYTES:
            self._workers = processes - 1
            # Shared with the workers (inherited at the fork): the input the second pass has reached.
            self._reached = multiprocessing.get_context("fork").RawValue("q", -1)

    def __enter__(self) -> ValidationPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures.clear()

    def submit(self, index: int, start: int, skip: frozenset[int]) -> None:
        """Validate input `index`, whose first item is at position `start`, but not the positions in `skip`."""
        source = self._sources[index]
        if not self._workers or source.size() > self._max_bytes:
            return
        if self._pool is None:
            # Forked at the first input with anything to validate (never, for a run that changes nothing), and as
            # early as that: every page this process writes after the fork is copied, so the less it holds the
            # better. fork: the workers start with Django and the FHIR models imported, and read only what they
            # are sent; they never use the database connection they inherit.
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_worker_start,
                initargs=(os.getpid(), self._reached),
            )
        self._futures[index] = self._pool.submit(
            verdicts,
            source,
            start,
            max_bytes=self._max_bytes,
            types=self._types,
            skip=skip,
            mapper=self._mapper,
            index=index,
        )

    def verdicts(self, index: int) -> dict[int, Verdict]:
        """The verdicts on input `index` (by position), once a worker has them; empty if none will come.

        An input no worker has started on is taken back (empty), and the run does it itself rather than wait.
        """
        if self._reached is not None:
            self._reached.value = index
        future = self._futures.pop(index, None)
        if future is None or future.cancel():
            return {}
        try:
            return future.result()
        except Exception:  # the run validates these itself, and raises there if it must
            return {}
