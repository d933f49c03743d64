"""FHIR R4 validation and the small readers of FHIR JSON the other ingest modules share.

Validation uses the `fhir.resources` R4B models: the package's default models are R5, which reject many R4
resources, and R4B differs from R4 in no element our partners send. R4B checks the base resource structure, not UK
Core profile rules; the rules that matter to us (NHS number, ODS code) are checked by `matching`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from lxml import etree
from pydantic import ValidationError

FHIR_NAMESPACE = "http://hl7.org/fhir"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
# Restricted and very restricted: the source asks for the item (or the patient's whereabouts) to be protected.
RESTRICTED_CONFIDENTIALITY_CODES = frozenset({"R", "V"})

JsonObject = dict[str, Any]

_MAX_ERRORS_SHOWN = 5
_ID_LENGTH = 64
_NOT_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9\-.]+")


class InvalidResource(Exception):
    """The resource does not conform to FHIR R4; the message says where, for a person to read."""


def safe_xml_parser() -> Any:
    """An lxml parser that never loads a DTD, expands an entity or touches the network.

    Readers also refuse any document that declares a DOCTYPE before it reaches this parser; this is the second lock.
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


@cache
def is_resource_type(name: str) -> bool:
    """True for the name of a FHIR R4 resource (not a data type such as CodeableConcept)."""
    if not name.isascii() or not name.isalpha():
        return False
    try:
        model = get_fhir_model_class(name)
    except ValueError:
        return False
    return issubclass(model, Resource)


def _summarise(error: ValidationError) -> str:
    problems = []
    for item in error.errors()[:_MAX_ERRORS_SHOWN]:
        where = ".".join(str(part) for part in item["loc"]) or "(resource)"
        # Only the message: the input value may be patient data, and the raw payload is kept anyway.
        problems.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(problems)
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{error.error_count()} validation error(s): " + "; ".join(problems) + suffix


def validate_json(resource: JsonObject) -> JsonObject:
    """Validate a FHIR JSON resource; return it unchanged (it is what we store) or raise InvalidResource."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not is_resource_type(resource_type):
        raise InvalidResource(f"resourceType {resource_type!r} is not a FHIR R4 resource type.")
    try:
        get_fhir_model_class(resource_type).model_validate(resource)
    except ValidationError as error:
        raise InvalidResource(_summarise(error)) from error
    return resource


def validate_xml(element: Any) -> JsonObject:
    """Validate one FHIR XML resource element and return it as FHIR JSON, or raise InvalidResource."""
    resource_type = etree.QName(element).localname
    if not is_resource_type(resource_type):
        raise InvalidResource(f"<{resource_type}> is not a FHIR R4 resource type.")
    model = get_fhir_model_class(resource_type)
    try:
        validated = model.model_validate_xml(etree.tostring(element), xmlparser=safe_xml_parser())
    except ValidationError as error:
        raise InvalidResource(_summarise(error)) from error
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        # The XML reader of fhir.resources reports an element it does not know as a KeyError naming it.
        raise InvalidResource(
            f"the XML does not follow the FHIR R4 structure: {type(error).__name__} {error}"
        ) from error
    dumped: JsonObject = validated.model_dump(mode="json", exclude_none=True)
    return dumped


def fhir_id(value: str) -> str:
    """A valid FHIR id (letters, digits, '-' and '.', at most 64) standing for a partner's own record id.

    An id that is already valid is kept as it is, so the partner's reference stays recognisable. Any other is made
    valid by replacing what FHIR does not allow and adding a short hash of the original, so two different partner
    ids can never become the same FHIR id, and the same one always becomes the same.
    """
    value = value.strip()
    if value and len(value) <= _ID_LENGTH and not _NOT_ID_CHARACTERS.search(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
    readable = _NOT_ID_CHARACTERS.sub("-", value).strip("-")[: _ID_LENGTH - len(digest) - 1]
    return f"{readable}-{digest}" if readable else digest


def canonical_json(resource: Mapping[str, Any]) -> str:
    """The resource as compact JSON with its keys sorted: what its content hash is taken of, and what is stored.

    orjson writes the same text as `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` but for
    the exponent of a very small or large number (1e-7, not 1e-07; either is the same JSONB value); what it cannot
    write (an integer beyond 64 bits) the standard library writes.
    """
    try:
        return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(resource: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(resource).encode("utf-8")).hexdigest()


def parse_datetime(value: object) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime; a date alone (or year, year-month) is midnight UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1, tzinfo=UTC)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    # FHIR requires a zone with a time; a partner that leaves it off is taken to mean UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def as_object(value: object) -> JsonObject:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def codings(concept: object) -> list[JsonObject]:
    return [coding for coding in as_list(as_object(concept).get("coding")) if isinstance(coding, dict)]


def walk_codings(node: object) -> Iterator[JsonObject]:
    """Every Coding-shaped object anywhere in a resource (codes in extensions and contained resources included)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if isinstance(current.get("system"), str) and isinstance(current.get("code"), str):
                yield current
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def security_codes(resource: JsonObject) -> set[str]:
    """The v3-Confidentiality codes in meta.security."""
    meta = as_object(resource.get("meta"))
    return {
        text(label.get("code"))
        for label in as_list(meta.get("security"))
        if isinstance(label, dict) and label.get("system") == CONFIDENTIALITY_SYSTEM
    }


def is_restricted(resource: JsonObject) -> bool:
    return bool(security_codes(resource) & RESTRICTED_CONFIDENTIALITY_CODES)


def version_key(version_id: str, last_updated: datetime | None) -> tuple[datetime, int]:
    """Sorts versions of one resource oldest first; unknown parts sort lowest."""
    floor = datetime.min.replace(tzinfo=UTC)
    number = int(version_id) if version_id.isdigit() and len(version_id) < 19 else -1
    return (last_updated or floor, number)


def is_older(
    incoming_version: str,
    incoming_updated: datetime | None,
    stored_version: str,
    stored_updated: datetime | None,
) -> bool:
    """True when the incoming copy is known to be older than the stored one (meta.lastUpdated, then versionId)."""
    if incoming_updated is not None and stored_updated is not None and incoming_updated != stored_updated:
        return incoming_updated < stored_updated
    if incoming_version.isdigit() and stored_version.isdigit() and incoming_version != stored_version:
        return int(incoming_version) < int(stored_version)
    return False
