"""R4B validation alone, one core, for reference: on the Synthea resources, and on the UK Core XML examples."""

from __future__ import annotations

import contextlib
import json
import time

from fhir.resources.R4B import get_fhir_model_class
from lxml import etree

from records.bench.inputs import UKCORE, Texts
from records.bench.rows import Row
from records.ingest.fhir import FHIR_NAMESPACE, InvalidResource, safe_xml_parser, validate_xml


def validation_alone(texts: Texts) -> Row:
    """R4B `model_validate` on each resource, nothing else: the figure the data README quotes per core."""
    resources = [entry["resource"] for _, data in texts for entry in json.loads(data)["entry"]]

    def validate_all() -> None:
        for resource in resources:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)

    # Once untimed: pydantic builds each model's validator on its first use, which a long-lived worker pays once.
    validate_all()
    started = time.perf_counter()
    validate_all()
    seconds = time.perf_counter() - started
    return Row("R4B validation alone, Synthea, 1 core", len(resources), 0, seconds, validated=len(resources))


def xml_validation_alone() -> Row:
    """`fhir.validate_xml` (R4B's XML reader, then the JSON the record stores) on every UK Core example resource.

    The one example that is itself invalid is counted like the others: refusing it is the same work.
    """
    elements = []
    for path in sorted(UKCORE.glob("*.xml")):
        root = etree.fromstring(path.read_bytes(), parser=safe_xml_parser())
        if etree.QName(root).localname != "Bundle":
            elements.append(root)
            continue
        for holder in root.iterfind(f"{{{FHIR_NAMESPACE}}}entry/{{{FHIR_NAMESPACE}}}resource"):
            elements += [child for child in holder if isinstance(child.tag, str)]

    def validate_all() -> None:
        for element in elements:
            with contextlib.suppress(InvalidResource):
                validate_xml(element)

    validate_all()  # untimed, as for JSON above
    started = time.perf_counter()
    validate_all()
    seconds = time.perf_counter() - started
    return Row("R4B XML validation, UK Core, 1 core", len(elements), 0, seconds, validated=len(elements))
