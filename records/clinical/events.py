"""Problems, encounters, vaccinations, procedures, referrals and plans: the facts a clinician scans for in each."""

from __future__ import annotations

from records.clinical.detail import (
    EntryDetail,
    Facts,
    coded_status,
    concept_text,
    concepts_text,
    date_text,
    onset_text,
    period_text,
    reference_name,
    sentence,
)
from records.ingest.fhir import JsonObject, as_list, as_object, text
from records.ingest.mapping import title_of

# How many of a form's answers the entry shows; the rest are in the partner's own record.
MAX_ANSWERS = 8


def _status(facts: Facts, resource: JsonObject, usual: frozenset[str]) -> None:
    status = text(resource.get("status"))
    if status and status not in usual:
        reason = concept_text(resource.get("statusReason"))
        facts.add("Status", f"{sentence(status)}: {reason}" if reason else sentence(status))


def describe_condition(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    facts.add("Status", coded_status(resource.get("clinicalStatus")))
    verification = coded_status(resource.get("verificationStatus"))
    if verification.lower() != "confirmed":
        facts.add("Verification", verification)
    facts.add("Onset", onset_text(resource, "onset"))
    facts.add("Resolved", onset_text(resource, "abatement"))
    facts.add("Severity", concept_text(resource.get("severity")))
    facts.add("Body site", concepts_text(resource.get("bodySite")))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_encounter(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    facts.add("Class", concept_text(resource.get("class")))
    facts.add("When", period_text(resource.get("period"), with_time=True))
    facts.add(
        "Service",
        concepts_text(resource.get("serviceType")) or reference_name(resource.get("serviceProvider")),
    )
    places = [reference_name(as_object(place).get("location")) for place in as_list(resource.get("location"))]
    facts.add("Location", ", ".join(place for place in places if place))
    facts.add("Reason", concepts_text(resource.get("reasonCode")))
    stay = as_object(resource.get("hospitalization"))
    facts.add("Admitted from", concept_text(stay.get("admitSource")))
    facts.add("Outcome", concept_text(stay.get("dischargeDisposition")))
    _status(facts, resource, frozenset({"finished"}))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_episode(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    facts.add("Period", period_text(resource.get("period")))
    facts.add("Care manager", reference_name(resource.get("careManager")))
    facts.add("Team", ", ".join(reference_name(team) for team in as_list(resource.get("team"))))
    _status(facts, resource, frozenset())
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_immunization(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    for protocol in as_list(resource.get("protocolApplied"))[:1]:
        protocol = as_object(protocol)
        dose = protocol.get("doseNumberPositiveInt", protocol.get("doseNumberString"))
        series = protocol.get("seriesDosesPositiveInt", protocol.get("seriesDosesString"))
        if dose is not None:
            facts.add("Dose", f"{dose} of {series}" if series is not None else str(dose))
    facts.add("Batch", text(resource.get("lotNumber")))
    facts.add("Site", concept_text(resource.get("site")))
    facts.add("Route", concept_text(resource.get("route")))
    if text(resource.get("status")) == "not-done":
        reason = concept_text(resource.get("statusReason"))
        facts.add("Status", f"Not given: {reason}" if reason else "Not given")
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_procedure(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    facts.add("Body site", concepts_text(resource.get("bodySite")))
    facts.add("Outcome", concept_text(resource.get("outcome")))
    facts.add("Reason", concepts_text(resource.get("reasonCode")))
    _status(facts, resource, frozenset({"completed"}))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_request(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    performers = [reference_name(who) for who in as_list(resource.get("performer"))]
    facts.add("To", ", ".join(name for name in performers if name))
    facts.add("Requested by", reference_name(resource.get("requester")))
    priority = text(resource.get("priority"))
    if priority and priority != "routine":
        facts.add("Priority", sentence(priority))
    facts.add("Reason", concepts_text(resource.get("reasonCode")))
    _status(facts, resource, frozenset({"active"}))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_care_plan(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    facts.add("Period", period_text(resource.get("period")))
    activities = [
        text(as_object(as_object(activity).get("detail")).get("description"))
        for activity in as_list(resource.get("activity"))
    ]
    facts.add("Activities", "; ".join(activity for activity in activities if activity))
    _status(facts, resource, frozenset({"active"}))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_care_team(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    for participant in as_list(resource.get("participant")):
        participant = as_object(participant)
        facts.add(
            concepts_text(participant.get("role")) or "Member", reference_name(participant.get("member"))
        )
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_questionnaire_response(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    for item in _items(as_list(resource.get("item")))[:MAX_ANSWERS]:
        answers = [_answer(as_object(answer)) for answer in as_list(item.get("answer"))]
        facts.add(text(item.get("text")) or "Answer", ", ".join(answer for answer in answers if answer))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def _items(items: list[object]) -> list[JsonObject]:
    """Answered items, nested groups opened, in the form's order."""
    found: list[JsonObject] = []
    for item in items:
        item = as_object(item)
        if item.get("answer") and text(item.get("text")):
            found.append(item)
        found.extend(_items(as_list(item.get("item"))))
    return found


def _answer(answer: JsonObject) -> str:
    if "valueBoolean" in answer:
        return "Yes" if answer["valueBoolean"] else "No"
    if "valueCoding" in answer:
        return concept_text(answer["valueCoding"])
    for key in ("valueDate", "valueDateTime"):
        if key in answer:
            return date_text(answer[key])
    for key in ("valueString", "valueInteger", "valueDecimal", "valueTime"):
        if key in answer:
            return str(answer[key]).strip()
    return ""
