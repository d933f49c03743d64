"""Allergies, alerts and legal decisions: what keeps a patient safe, with its severity and its period."""

from __future__ import annotations

from records.clinical.detail import (
    EntryDetail,
    Facts,
    coded_status,
    concepts_text,
    date_text,
    onset_text,
    period_text,
    sentence,
)
from records.ingest.fhir import JsonObject, as_list, as_object, text
from records.ingest.mapping import title_of

_CRITICALITY = {"high": "High", "low": "Low", "unable-to-assess": "Unable to assess"}
_DECISIONS = {"deny": "Refuses", "permit": "Agrees to"}


def describe_allergy(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    reactions = [as_object(reaction) for reaction in as_list(resource.get("reaction"))]
    facts.add("Reaction", ", ".join(filter(None, (concepts_text(r.get("manifestation")) for r in reactions))))
    severities = [
        sentence(text(reaction.get("severity"))) for reaction in reactions if text(reaction.get("severity"))
    ]
    facts.add("Severity", ", ".join(dict.fromkeys(severities)))
    facts.add("Criticality", _CRITICALITY.get(text(resource.get("criticality")), ""))
    facts.add("Type", sentence(text(resource.get("type"))))
    facts.add(
        "Category", ", ".join(sentence(text(category)) for category in as_list(resource.get("category")))
    )
    status = coded_status(resource.get("clinicalStatus"))
    if status.lower() != "active":
        facts.add("Status", status)
    verification = coded_status(resource.get("verificationStatus"))
    if verification.lower() not in {"confirmed", ""}:
        facts.add("Verification", verification)
    facts.add("Onset", onset_text(resource, "onset"))
    facts.add("Last reaction", date_text(resource.get("lastOccurrence")))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_flag(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    facts.add("Category", concepts_text(resource.get("category")))
    facts.add("Period", period_text(resource.get("period")))
    status = text(resource.get("status"))
    if status and status != "active":
        facts.add("Status", sentence(status))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def describe_consent(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    provision = as_object(resource.get("provision"))
    decision = _DECISIONS.get(text(provision.get("type")), "")
    what = concepts_text(provision.get("code"))
    if decision and what:
        facts.add("Decision", f"{decision} {what[:1].lower()}{what[1:]}")
    facts.add("Recorded", date_text(resource.get("dateTime")))
    facts.add("Valid", period_text(provision.get("period")))
    facts.add("Legal basis", text(as_object(resource.get("policyRule")).get("text")))
    status = text(resource.get("status"))
    if status and status != "active":
        facts.add("Status", sentence(status))
    return EntryDetail(title=title_of(resource), facts=facts.items)
