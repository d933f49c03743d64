"""Medicines: what a prescriber needs before prescribing again, from MedicationRequest, MedicationStatement,
MedicationDispense and MedicationAdministration as partners send them (UK Core extensions included).

What always holds: every fact is read from the resource itself; a number the sender did not send is not inferred
(an authorisation's repeats are shown as the sender counts them, since UK senders count them differently)."""

from __future__ import annotations

from records.clinical.detail import (
    EntryDetail,
    Facts,
    concept_text,
    concepts_text,
    date_text,
    extension,
    sentence,
)
from records.ingest.fhir import JsonObject, as_list, as_object, codings, text
from records.ingest.mapping import dosage_text, quantity_text, title_of

REPEAT_INFORMATION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
)
LAST_ISSUE_DATE = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationStatementLastIssueDate"
)

# MedicationRequest.courseOfTherapyType: FHIR's codes and UK Core's.
_COURSES = {
    "acute": "Acute",
    "continuous": "Repeat",
    "seasonal": "Seasonal",
    "continuous-repeat-dispensing": "Repeat dispensing",
    "continuous-repeating-dispensing": "Repeat dispensing",
}
# An issue (a prescription order) rather than the plan or proposal it follows.
_ORDER_INTENTS = frozenset({"order", "original-order", "reflex-order", "filler-order", "instance-order"})
_ENDED = frozenset({"stopped", "completed", "cancelled", "on-hold", "not-taken", "declined", "intended"})


def describe_medication(resource: JsonObject) -> EntryDetail:
    resource_type = text(resource.get("resourceType"))
    facts = Facts()
    if resource_type == "MedicationRequest":
        _request(resource, facts)
    elif resource_type == "MedicationStatement":
        _statement(resource, facts)
    elif resource_type == "MedicationDispense":
        _dispense(resource, facts)
    else:
        facts.add("Dose", dosage_text(resource))
        facts.add("Given", date_text(resource.get("effectiveDateTime")))
    status = text(resource.get("status"))
    if status in _ENDED:
        reason = concept_text(resource.get("statusReason")) or concepts_text(resource.get("statusReason"))
        facts.add("Status", f"{sentence(status)}: {reason}" if reason else sentence(status))
    facts.add("Reason", concepts_text(resource.get("reasonCode")))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def course(resource: JsonObject) -> str:
    """ "Acute", "Repeat", "Repeat dispensing" or "Seasonal"; "" when the sender does not say."""
    for coding in codings(resource.get("courseOfTherapyType")):
        named = _COURSES.get(text(coding.get("code")))
        if named:
            return named
    if resource.get("courseOfTherapyType"):
        return concept_text(resource.get("courseOfTherapyType"))
    return "Repeat" if extension(resource, REPEAT_INFORMATION) else ""


def _repeat_information(resource: JsonObject) -> dict[str, object]:
    found = extension(resource, REPEAT_INFORMATION)
    values: dict[str, object] = {}
    for part in as_list(found.get("extension")):
        part = as_object(part)
        for key, value in part.items():
            if key.startswith("value"):
                values[text(part.get("url"))] = value
    return values


def _request(resource: JsonObject, facts: Facts) -> None:
    kind = course(resource)
    dispense = as_object(resource.get("dispenseRequest"))
    repeats = _repeat_information(resource)
    facts.add("Course", kind)
    facts.add("Dose", dosage_text(resource))
    supply = as_object(dispense.get("expectedSupplyDuration"))
    quantity = quantity_text(as_object(dispense.get("quantity")))
    if quantity and "value" in supply:
        quantity = f"{quantity} (supply for {quantity_text(supply)})"
    facts.add("Quantity", quantity)
    authored = date_text(resource.get("authoredOn"))
    intent = text(resource.get("intent"))
    if intent in _ORDER_INTENTS:
        facts.add("Last issued" if kind.startswith("Repeat") else "Issued", authored)
    else:
        facts.add("Authorised", authored)
    issued = repeats.get("numberOfPrescriptionsIssued", repeats.get("numberOfRepeatPrescriptionsIssued"))
    allowed = repeats.get("numberOfRepeatPrescriptionsAllowed")
    if issued is not None:
        facts.add("Issues made", f"{issued} of {allowed}" if allowed is not None else str(issued))
    elif allowed is not None:
        facts.add("Issues allowed", str(allowed))
    if "numberOfRepeatsAllowed" in dispense:
        facts.add("Repeats allowed", str(dispense["numberOfRepeatsAllowed"]))
    authorised_until = date_text(repeats.get("authorisationExpiryDate"))
    facts.add("Authorised until", authorised_until)
    end = date_text(as_object(dispense.get("validityPeriod")).get("end"))
    if end != authorised_until:
        facts.add("End", end)
    facts.add("Prescriber", text(as_object(resource.get("requester")).get("display")))


def _statement(resource: JsonObject, facts: Facts) -> None:
    facts.add("Course", course(resource))
    facts.add("Dose", dosage_text(resource))
    facts.add("Last issued", date_text(extension(resource, LAST_ISSUE_DATE).get("valueDateTime")))
    facts.add("Started", date_text(as_object(resource.get("effectivePeriod")).get("start")))
    facts.add("End", date_text(as_object(resource.get("effectivePeriod")).get("end")))


def _dispense(resource: JsonObject, facts: Facts) -> None:
    facts.add("Dose", dosage_text(resource))
    facts.add("Quantity", quantity_text(as_object(resource.get("quantity"))))
    facts.add("Supply", quantity_text(as_object(resource.get("daysSupply"))))
    facts.add("Issued", date_text(resource.get("whenHandedOver") or resource.get("whenPrepared")))
