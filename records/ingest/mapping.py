"""One validated clinical FHIR resource -> the fields of its RecordEntry.

Pure functions of the resource: no database, no patient (the sensitive sets are the process's own, loaded by the
pipeline once per run: `consent.sensitive`). What always holds: every supported resource type maps to
exactly one clinical PRSB section; a `meta.tag` from the RecordStandardHeadings code system overrides the default;
dates are timezone-aware; the summary is non-empty and at most 500 characters.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from consent.sensitive import SNOMED_CT, sensitive_codes
from records.ingest.fhir import (
    JsonObject,
    as_list,
    as_object,
    canonical_json,
    codings,
    is_restricted,
    parse_datetime,
    text,
)
from records.sections import CLINICAL_SECTIONS, HEADINGS_SYSTEM, Section
from records.terminology import code_in_words, looks_like_identifier, plain_term, readable_name, unit_text

SUMMARY_MAX = 500
ENTERED_IN_ERROR = "entered-in-error"

DEFAULT_SECTIONS: dict[str, Section] = {
    "Condition": Section.PROBLEMS,
    "AllergyIntolerance": Section.ALLERGIES,
    "MedicationRequest": Section.MEDICATIONS,
    "MedicationStatement": Section.MEDICATIONS,
    "MedicationDispense": Section.MEDICATIONS,
    "MedicationAdministration": Section.MEDICATIONS,
    "Procedure": Section.PROCEDURES,
    "Observation": Section.INVESTIGATIONS,
    "DiagnosticReport": Section.INVESTIGATIONS,
    "Immunization": Section.VACCINATIONS,
    "Encounter": Section.ENCOUNTERS,
    "EpisodeOfCare": Section.ENCOUNTERS,
    "CarePlan": Section.PLANS,
    "ServiceRequest": Section.REFERRALS,
    "Flag": Section.ALERTS,
    "DocumentReference": Section.DOCUMENTS,
    "Composition": Section.DOCUMENTS,
    "Consent": Section.LEGAL,
    "QuestionnaireResponse": Section.ASSESSMENTS,
    "RiskAssessment": Section.ASSESSMENTS,
    "CareTeam": Section.PROFESSIONAL_CONTACTS,
}
SUPPORTED_TYPES = frozenset(DEFAULT_SECTIONS)

# Observation.category codes (http://terminology.hl7.org/CodeSystem/observation-category, plus "assessment",
# which UK partners use for scored assessments).
OBSERVATION_CATEGORY_SECTIONS: dict[str, Section] = {
    "laboratory": Section.INVESTIGATIONS,
    "imaging": Section.INVESTIGATIONS,
    "vital-signs": Section.INVESTIGATIONS,
    "exam": Section.INVESTIGATIONS,
    "procedure": Section.INVESTIGATIONS,
    "social-history": Section.SOCIAL_CONTEXT,
    "survey": Section.ASSESSMENTS,
    "assessment": Section.ASSESSMENTS,
}

# Where each type keeps the concept that names it, in order of preference.
CONCEPT_FIELDS: dict[str, tuple[str, ...]] = {
    "MedicationRequest": ("medicationCodeableConcept",),
    "MedicationStatement": ("medicationCodeableConcept",),
    "MedicationDispense": ("medicationCodeableConcept",),
    "MedicationAdministration": ("medicationCodeableConcept",),
    "Immunization": ("vaccineCode",),
    "Encounter": ("type", "serviceType", "class"),
    "EpisodeOfCare": ("type",),
    "CarePlan": ("category",),
    "DocumentReference": ("type", "category"),
    "Composition": ("type", "category"),
    "Consent": ("scope", "category"),
    "QuestionnaireResponse": (),
    "CareTeam": ("category",),
}
_DEFAULT_CONCEPT_FIELDS = ("code",)

# FHIR names its moments consistently across resources; the first one present wins.
_EFFECTIVE_FIELDS = (
    "effective",
    "occurrence",
    "performed",
    "onset",
    "period",
    "whenHandedOver",
    "whenPrepared",
    "authoredOn",
    "authored",
    "dateTime",
    "date",
    "dateAsserted",
    "created",
    "issued",
    "recordedDate",
)
_RECORDED_FIELDS = (
    "recordedDate",
    "recorded",
    "issued",
    "dateAsserted",
    "authoredOn",
    "authored",
    "created",
    "date",
)
_WHITESPACE = re.compile(r"\s+")
# FHIR's extension for the display text of a canonical or reference (`_questionnaire`).
_DISPLAY_EXTENSION = "http://hl7.org/fhir/StructureDefinition/display"
# Words in a form's URL that name no form.
_FORM_NAME_NOISE = frozenset({"questionnaire", "example", "ukcore"})
# Blood pressure components: LOINC, then SNOMED CT.
_PRESSURE_CODES = {
    "8480-6": "systolic",
    "8462-4": "diastolic",
    "72313002": "systolic",
    "271649006": "systolic",
    "1091811000000102": "diastolic",
    "271650006": "diastolic",
}


@dataclass(frozen=True)
class MappedEntry:
    section: str
    resource_type: str
    source_id: str
    source_version: str
    source_last_updated: datetime | None
    effective_at: datetime | None
    effective_end: datetime | None
    recorded_at: datetime | None
    code_system: str
    code: str
    display: str
    status: str
    summary: str
    resource: JsonObject
    content_hash: str
    is_sensitive: bool
    is_confidential: bool
    is_entered_in_error: bool


@dataclass(frozen=True)
class MappedJson(MappedEntry):
    """A mapped entry with the canonical JSON text its content hash was taken of, for the upsert to store, so that
    the resource is serialised once. The text holds the same JSON value as `resource` (JSONB keeps no key order,
    spacing or escapes). Apart from MappedEntry, whose fields are the entry's columns."""

    canonical: str


def map_resource(resource: JsonObject) -> MappedJson:
    """Map a validated resource of a type in SUPPORTED_TYPES."""
    resource_type = text(resource.get("resourceType"))
    meta = as_object(resource.get("meta"))
    canonical = canonical_json(resource)
    # fhir.content_hash, without building the canonical JSON twice.
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    coding, concept_text = main_coding(resource)
    title = concept_words(coding, concept_text)
    effective_at, effective_end = _effective(resource)
    return MappedJson(
        section=section_for(resource),
        resource_type=resource_type,
        # No id: the content decides, so the same resource sent twice is still one entry.
        source_id=text(resource.get("id")) or f"sha256:{digest}",
        source_version=text(meta.get("versionId"))[:64],
        source_last_updated=parse_datetime(meta.get("lastUpdated")),
        effective_at=effective_at,
        effective_end=effective_end,
        recorded_at=_first_moment(resource, _RECORDED_KEYS)[0],
        code_system=text(coding.get("system"))[:200],
        code=text(coding.get("code"))[:64],
        display=(text(coding.get("display")) or concept_text)[:500],
        status=status_of(resource)[:64],
        summary=summary_of(resource, title),
        resource=resource,
        content_hash=digest,
        is_sensitive=is_sensitive(resource, canonical),
        is_confidential=is_restricted(resource),
        is_entered_in_error=is_entered_in_error(resource),
        canonical=canonical,
    )


def section_for(resource: JsonObject) -> Section:
    resource_type = text(resource.get("resourceType"))
    for tag in as_list(as_object(resource.get("meta")).get("tag")):
        tag = as_object(tag)
        if tag.get("system") == HEADINGS_SYSTEM and tag.get("code") in CLINICAL_SECTIONS:
            return Section(tag["code"])
    if resource_type == "Observation":
        for category in as_list(resource.get("category")):
            for coding in codings(category):
                section = OBSERVATION_CATEGORY_SECTIONS.get(text(coding.get("code")))
                if section is not None:
                    return section
    if resource_type == "Flag" and _mentions_safeguarding(resource.get("category")):
        return Section.SAFEGUARDING
    return DEFAULT_SECTIONS[resource_type]


def _mentions_safeguarding(categories: object) -> bool:
    for category in as_list(categories):
        words = [text(as_object(category).get("text"))]
        for coding in codings(category):
            words += [text(coding.get("code")), text(coding.get("display"))]
        if any("safeguard" in word.lower() for word in words):
            return True
    return False


def _concept(value: object) -> tuple[JsonObject, str]:
    """The preferred coding of a CodeableConcept (or a bare Coding) and the concept's text."""
    first = as_object(as_list(value)[0]) if as_list(value) else {}
    if "coding" not in first and "code" in first:
        return first, ""
    found = codings(first)
    coded = [coding for coding in found if text(coding.get("code"))]
    snomed = [coding for coding in coded if coding.get("system") == SNOMED_CT]
    chosen = (snomed or coded or found or [{}])[0]
    return chosen, text(first.get("text"))


def concept_words(coding: JsonObject, concept_text: str) -> str:
    """What a concept is called, in words: its text or display, or what its code means; never a bare code.

    "" when the concept has neither words nor a code."""
    display = plain_term(text(coding.get("display")))
    concept_text = plain_term(concept_text)
    for candidate in (concept_text, display):
        if candidate and not looks_like_identifier(candidate):
            return candidate
    code = text(coding.get("code"))
    if code:
        return code_in_words(text(coding.get("system")), code)
    return concept_text or display


def main_coding(resource: JsonObject) -> tuple[JsonObject, str]:
    resource_type = text(resource.get("resourceType"))
    for field in CONCEPT_FIELDS.get(resource_type, _DEFAULT_CONCEPT_FIELDS):
        coding, concept_text = _concept(resource.get(field))
        if coding or concept_text:
            return coding, concept_text
    if resource_type.startswith("Medication"):
        return {}, _medication_reference_name(resource)
    return {}, ""


def _medication_reference_name(resource: JsonObject) -> str:
    reference = as_object(resource.get("medicationReference"))
    target = text(reference.get("reference"))
    if target.startswith("#"):
        for contained in as_list(resource.get("contained")):
            contained = as_object(contained)
            if contained.get("resourceType") == "Medication" and contained.get("id") == target[1:]:
                coding, concept_text = _concept(contained.get("code"))
                return concept_text or text(coding.get("display"))
    return text(reference.get("display"))


def status_of(resource: JsonObject) -> str:
    status = text(resource.get("status"))
    if status:
        return status
    coding, concept_text = _concept(resource.get("clinicalStatus"))
    return text(coding.get("code")) or concept_text


def is_entered_in_error(resource: JsonObject) -> bool:
    if text(resource.get("status")) == ENTERED_IN_ERROR:
        return True
    return any(
        text(coding.get("code")) == ENTERED_IN_ERROR for coding in codings(resource.get("verificationStatus"))
    )


def is_sensitive(resource: JsonObject, canonical: str | None = None) -> bool:
    """True when a coding anywhere in the resource (SNOMED CT, ICD-10, Read v2 or CTV3) carries a code of the
    sensitive sets, SNOMED CT descendants included, as this process last loaded them (`consent.sensitive`).

    Given the resource's canonical JSON, a resource none of whose "code" values is in the sets is answered without
    walking every coding: no coding can carry a code its text does not hold.
    """
    return sensitive_codes().resource_is_sensitive(resource, canonical)


def _moment(value: object) -> tuple[datetime | None, datetime | None]:
    if isinstance(value, dict):
        start, end = parse_datetime(value.get("start")), parse_datetime(value.get("end"))
        return start or end, end
    return parse_datetime(value), None


def _moment_keys(names: tuple[str, ...]) -> tuple[str, ...]:
    """The element names a moment called `name` may take (FHIR's choice types), in order of preference."""
    return tuple(
        key for name in names for key in (name, f"{name}DateTime", f"{name}Period", f"{name}Instant")
    )


_EFFECTIVE_KEYS = _moment_keys(_EFFECTIVE_FIELDS)
_RECORDED_KEYS = _moment_keys(_RECORDED_FIELDS)
_ABATEMENT_KEYS = _moment_keys(("abatement",))


def _first_moment(resource: JsonObject, keys: tuple[str, ...]) -> tuple[datetime | None, datetime | None]:
    for key in keys:
        value = resource.get(key)
        if value is None:
            continue
        start, end = _moment(value)
        if start is not None:
            return start, end
    return None, None


def _effective(resource: JsonObject) -> tuple[datetime | None, datetime | None]:
    start, end = _first_moment(resource, _EFFECTIVE_KEYS)
    if end is None:
        # A resolved problem's abatement is when it ended.
        abated_from, abated_to = _first_moment(resource, _ABATEMENT_KEYS)
        end = abated_to or abated_from
    return start, end


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def quantity_text(quantity: JsonObject) -> str:
    """A Quantity in words, "7.2 mmol/L", with its comparator; "" when it has no value."""
    if "value" not in quantity:
        return ""
    unit = unit_text(text(quantity.get("unit")) or text(quantity.get("code")))
    number = f"{text(quantity.get('comparator'))}{_number(quantity['value'])}"
    joined = unit in {"%", "°C"} or unit.startswith("/")
    return f"{number}{unit}" if joined else f"{number} {unit}".strip()


def _value_text(holder: JsonObject) -> str:
    quantity = as_object(holder.get("valueQuantity"))
    if "value" in quantity:
        return quantity_text(quantity)
    if "valueCodeableConcept" in holder:
        coding, concept_text = _concept(holder["valueCodeableConcept"])
        return concept_words(coding, concept_text)
    for key in ("valueString", "valueDateTime", "valueInteger", "valueTime"):
        if key in holder:
            return _number(holder[key])
    if "valueBoolean" in holder:
        return "yes" if holder["valueBoolean"] else "no"
    return ""


def _blood_pressure(components: list[JsonObject]) -> str:
    """ "128/82 mmHg" from systolic and diastolic components in one unit; "" otherwise."""
    readings: dict[str, JsonObject] = {}
    for component in components:
        for coding in codings(component.get("code")):
            kind = _PRESSURE_CODES.get(text(coding.get("code")))
            if kind is not None:
                readings[kind] = as_object(component.get("valueQuantity"))
    systolic, diastolic = readings.get("systolic", {}), readings.get("diastolic", {})
    if "value" not in systolic or "value" not in diastolic:
        return ""
    unit = text(systolic.get("unit")) or text(systolic.get("code"))
    if unit != (text(diastolic.get("unit")) or text(diastolic.get("code"))):
        return ""
    return f"{_number(systolic['value'])}/{_number(diastolic['value'])} {unit_text(unit)}".strip()


def observation_value(resource: JsonObject) -> str:
    """An Observation's value in words, its components' when it has none of its own (a blood pressure is one
    value, "128/82 mmHg")."""
    value = _value_text(resource)
    if value:
        return value
    components = [as_object(component) for component in as_list(resource.get("component"))]
    pressure = _blood_pressure(components)
    if pressure:
        return pressure
    parts = []
    for component in components:
        coding, concept_text = _concept(component.get("code"))
        name = concept_words(coding, concept_text)
        reading = _value_text(component)
        if reading:
            parts.append(f"{name} {reading}".strip())
    return "; ".join(parts)


def dosage_text(resource: JsonObject) -> str:
    """How the medicine is taken: the first dosage's text, or its structured dose ("1 tablet")."""
    for key in ("dosageInstruction", "dosage"):
        for dosage in as_list(resource.get(key)):
            dosage = as_object(dosage)
            if text(dosage.get("text")):
                return text(dosage.get("text"))
            for rate in as_list(dosage.get("doseAndRate")):
                dose = quantity_text(as_object(as_object(rate).get("doseQuantity")))
                if dose:
                    return dose
    return ""


def questionnaire_name(resource: JsonObject) -> str:
    """The form a QuestionnaireResponse answers, in words: the display the partner gave its canonical URL, or words
    made of the URL's last segment ("CareAct2014NeedsAssessment" -> "Care Act 2014 Needs Assessment")."""
    for extension in as_list(as_object(resource.get("_questionnaire")).get("extension")):
        extension = as_object(extension)
        if extension.get("url") == _DISPLAY_EXTENSION and text(extension.get("valueString")):
            return text(extension.get("valueString"))
    canonical = text(resource.get("questionnaire")).split("|")[0].rstrip("/")
    if not canonical:
        return ""
    parts = re.split(r"[-_.]+", canonical.rsplit("/", 1)[-1])
    return readable_name(" ".join(part for part in parts if part.lower() not in _FORM_NAME_NOISE))


def type_in_words(resource_type: str) -> str:
    """A resource type as words: "AllergyIntolerance" -> "Allergy intolerance"."""
    spaced = re.sub(r"(?<!^)(?=[A-Z])", " ", resource_type)
    return spaced[:1] + spaced[1:].lower()


def own_title(resource: JsonObject) -> str:
    """The name a resource gives itself (a care plan's title, a form's name), where its type has one; else ""."""
    resource_type = text(resource.get("resourceType"))
    if resource_type == "CarePlan":
        return text(resource.get("title")) or text(resource.get("description"))
    if resource_type == "Composition":
        return text(resource.get("title"))
    if resource_type == "DocumentReference":
        return text(resource.get("description"))
    if resource_type == "CareTeam":
        return text(resource.get("name"))
    if resource_type == "QuestionnaireResponse":
        return questionnaire_name(resource)
    return ""


def title_of(resource: JsonObject) -> str:
    """What the resource is, in words, as its summary begins: its own name, its concept's, or its type's."""
    coding, concept_text = main_coding(resource)
    return (
        own_title(resource)
        or concept_words(coding, concept_text)
        or type_in_words(text(resource.get("resourceType")))
    )


def summary_of(resource: JsonObject, title: str) -> str:
    """A short line for the record page: what it is, and the detail a clinician looks for first."""
    resource_type = text(resource.get("resourceType"))
    detail = ""
    if resource_type.startswith("Medication"):
        detail = dosage_text(resource)
    elif resource_type == "Observation":
        detail = observation_value(resource)
    elif resource_type == "AllergyIntolerance":
        reaction = as_object((as_list(resource.get("reaction")) or [{}])[0])
        coding, concept_text = _concept(reaction.get("manifestation"))
        detail = concept_words(coding, concept_text)
    elif resource_type == "Immunization" and resource.get("status") == "not-done":
        detail = "not given"
    own = own_title(resource)
    title = own or title or type_in_words(resource_type)
    if resource_type == "QuestionnaireResponse" and own:
        title = f"Questionnaire response: {own}"
    line = f"{title[:1].upper()}{title[1:]}"
    if detail:
        line = f"{line}: {detail}" if resource_type == "Observation" else f"{line} — {detail}"
    line = _WHITESPACE.sub(" ", line).strip()
    return line if len(line) <= SUMMARY_MAX else line[: SUMMARY_MAX - 1] + "…"
