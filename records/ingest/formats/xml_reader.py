"""FHIR XML from partner bytes: a single resource or a Bundle, read without ever loading a DTD or an entity.

XML is read with a parser that loads no DTD, expands no entity and never touches the network, and any document
that declares a DOCTYPE is refused before it is parsed at all: FHIR XML never needs one, and a DOCTYPE is how
entity-expansion ("billion laughs") and external-entity (file:///etc/passwd) attacks arrive.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from lxml import etree

from records.ingest.fhir import FHIR_NAMESPACE, parse_datetime, safe_xml_parser, text
from records.ingest.items import (
    Item,
    Reason,
    Rejection,
    ResourceUnit,
    clean,
    entry_without_resource,
    unreadable,
)

_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_NS = f"{{{FHIR_NAMESPACE}}}"


def read_xml(location: str, data: bytes, decoded: str) -> Iterator[Item]:
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
            item = entry_without_resource(
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
