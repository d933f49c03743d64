"""Investigation results: a value with its unit and reference range, flagged when outside it; reports gathered with
the results they point at.

What always holds: a flag is the lab's own (Observation.interpretation) when it sent one; only a numeric result
with no interpretation is compared with its reference range, and then only in the range's own unit, and the flag
says it was outside the range rather than claiming the lab's word for it."""

from __future__ import annotations

from collections.abc import Iterable

from records.clinical.detail import (
    EntryDetail,
    Facts,
    ResultGroup,
    concept_text,
    concepts_text,
    datetime_text,
    sentence,
)
from records.ingest.fhir import JsonObject, as_list, as_object, codings, text
from records.ingest.mapping import observation_value, quantity_text, title_of
from records.models import RecordEntry
from records.terminology import INTERPRETATION, unit_text

# v3 ObservationInterpretation codes that flag a result: (flag, words).
_FLAGS: dict[str, tuple[str, str]] = {
    "H": ("high", "High"),
    "HU": ("high", "Significantly high"),
    "HH": ("critical", "Critically high"),
    "L": ("low", "Low"),
    "LU": ("low", "Significantly low"),
    "LL": ("critical", "Critically low"),
    "A": ("abnormal", "Abnormal"),
    "AA": ("critical", "Critically abnormal"),
}
_SEVERITY = {"": 0, "abnormal": 1, "low": 2, "high": 2, "critical": 3}
# Interpretations that say nothing beyond the value: not repeated as a fact.
_UNREMARKABLE = frozenset({"N", ""})
_REPORTED_STATUSES = frozenset({"final", "amended", "corrected", "appended"})


def describe_observation(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    value = observation_value(resource)
    if not value and resource.get("dataAbsentReason"):
        value = f"Not available: {concept_text(resource.get('dataAbsentReason')).lower()}"
    facts.add("Result", value)
    facts.add("Reference range", range_text(resource))
    flag, flag_text, said = interpretation(resource)
    if said:
        facts.add("Interpretation", said)
    if not flag and not resource.get("interpretation"):
        flag, flag_text = _outside_range(resource)
        for component in as_list(resource.get("component")):
            if flag:
                break
            flag, flag_text, _ = interpretation(as_object(component))
            if not flag and not as_object(component).get("interpretation"):
                flag, flag_text = _outside_range(as_object(component))
    status = text(resource.get("status"))
    if status and status not in _REPORTED_STATUSES:
        facts.add("Status", sentence(status))
    facts.add("Method", concept_text(resource.get("method")))
    facts.add("Comment", _notes(resource))
    return EntryDetail(title=title_of(resource), facts=facts.items, flag=flag, flag_text=flag_text)


def describe_report(resource: JsonObject) -> EntryDetail:
    facts = Facts()
    status = text(resource.get("status"))
    if status and status not in _REPORTED_STATUSES:
        facts.add("Status", sentence(status))
    facts.add("Conclusion", text(resource.get("conclusion")))
    coded = concepts_text(resource.get("conclusionCode"))
    if coded and coded not in text(resource.get("conclusion")):
        facts.add("Diagnosis", coded)
    facts.add("Reported", datetime_text(resource.get("issued")))
    performers = [text(as_object(who).get("display")) for who in as_list(resource.get("performer"))]
    facts.add("Reported by", ", ".join(name for name in performers if name))
    return EntryDetail(title=title_of(resource), facts=facts.items)


def interpretation(holder: JsonObject) -> tuple[str, str, str]:
    """(flag, flag in words, the interpretation in words when it is not a flag and not "normal")."""
    flag, words, said = "", "", ""
    for concept in as_list(holder.get("interpretation")):
        for coding in codings(concept):
            code = text(coding.get("code"))
            known = _FLAGS.get(code) if text(coding.get("system")) in {INTERPRETATION, ""} else None
            if known is not None and _SEVERITY[known[0]] > _SEVERITY[flag]:
                flag, words = known
        if not flag and not _is_unremarkable(concept):
            said = concept_text(concept)
    return flag, words, said


def _is_unremarkable(concept: object) -> bool:
    return any(text(coding.get("code")) in _UNREMARKABLE for coding in codings(concept))


def range_text(holder: JsonObject) -> str:
    """The first reference range in words: "4-11 mmol/L" (with an en dash), "at least 60 mL/min", or the range's own text."""
    ranges = [as_object(found) for found in as_list(holder.get("referenceRange"))]
    if not ranges:
        return ""
    first = ranges[0]
    low, high = as_object(first.get("low")), as_object(first.get("high"))
    value_unit = _unit(as_object(holder.get("valueQuantity")))
    unit = unit_text(_unit(low) or _unit(high) or value_unit)
    words = ""
    if "value" in low and "value" in high:
        words = f"{_bare(low)}\u2013{_bare(high)} {unit}".strip()
    elif "value" in low:
        words = f"at least {quantity_text(low) if _unit(low) else f'{_bare(low)} {unit}'.strip()}"
    elif "value" in high:
        words = f"up to {quantity_text(high) if _unit(high) else f'{_bare(high)} {unit}'.strip()}"
    own = text(first.get("text"))
    if words and own:
        return f"{words} ({own})"
    return words or own


def _bare(quantity: JsonObject) -> str:
    return quantity_text({"value": quantity["value"]})


def _unit(quantity: JsonObject) -> str:
    return text(quantity.get("unit")) or text(quantity.get("code"))


def _outside_range(holder: JsonObject) -> tuple[str, str]:
    quantity = as_object(holder.get("valueQuantity"))
    value = quantity.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool) or text(quantity.get("comparator")):
        return "", ""
    for found in as_list(holder.get("referenceRange"))[:1]:
        found = as_object(found)
        low, high = as_object(found.get("low")), as_object(found.get("high"))
        if not _same_unit(quantity, low) or not _same_unit(quantity, high):
            return "", ""
        if isinstance(low.get("value"), int | float) and value < low["value"]:
            return "low", "Below the reference range"
        if isinstance(high.get("value"), int | float) and value > high["value"]:
            return "high", "Above the reference range"
    return "", ""


def _same_unit(value: JsonObject, bound: JsonObject) -> bool:
    """A bound with no unit is in the value's; one with a unit must name the value's unit by code or by text."""
    if not _unit(bound):
        return True
    names = {text(value.get("unit")), text(value.get("code"))} - {""}
    return bool(names & {text(bound.get("unit")), text(bound.get("code"))})


def _notes(resource: JsonObject) -> str:
    return " ".join(text(as_object(note).get("text")) for note in as_list(resource.get("note"))).strip()


def _reference_key(reference: object) -> str:
    """The id an Observation reference points at: "Observation/abc", "urn:uuid:abc" and an absolute URL
    ending in Observation/abc (with or without _history) all give "abc"; any other type gives ""."""
    target = text(as_object(reference).get("reference"))
    if target.startswith("urn:uuid:"):
        return target.removeprefix("urn:uuid:")
    parts = target.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Observation":
        return parts[-1]
    return ""


def _member_keys(entry: RecordEntry) -> list[str]:
    resource = as_object(entry.resource)
    field = "result" if entry.resource_type == "DiagnosticReport" else "hasMember"
    return [key for key in map(_reference_key, as_list(resource.get(field))) if key]


def group_results(entries: list[RecordEntry]) -> list[ResultGroup]:
    """Investigation results on one page, panels gathered under their report, in the page's order.

    A DiagnosticReport heads the Observations it references that are on the same page from the same partner, in
    the order it lists them; a group Observation (a panel with hasMember, as UK Core sends a full blood count)
    is opened into its members, and heads them itself when no report on the page holds it. A result in a panel
    is shown there only; every other entry stands alone where the page had it."""
    observations: dict[tuple[int, str], RecordEntry] = {
        (entry.organisation_id, entry.source_id): entry
        for entry in entries
        if entry.resource_type == "Observation"
    }
    panels: dict[int, list[RecordEntry]] = {}
    claimed: set[int] = set()
    heads = [entry for entry in entries if entry.resource_type == "DiagnosticReport"]
    heads += [entry for entry in entries if entry.resource_type == "Observation" and _member_keys(entry)]
    for head in heads:
        if id(head) in claimed:
            continue
        members = list(_members(head, observations, set(claimed)))
        panels[id(head)] = members
        claimed.update(id(member) for member in members)
        claimed.update(id(member) for member in _groups_within(head, observations))
    groups = []
    for entry in entries:
        if id(entry) in panels and id(entry) not in claimed:
            groups.append(
                ResultGroup(
                    title=title_of(as_object(entry.resource)), report=entry, results=panels[id(entry)]
                )
            )
        elif id(entry) not in claimed:
            groups.append(ResultGroup(title="", report=None, results=[entry]))
    return groups


def _members(
    head: RecordEntry, observations: dict[tuple[int, str], RecordEntry], seen: set[int]
) -> Iterable[RecordEntry]:
    seen.add(id(head))
    for key in _member_keys(head):
        member = observations.get((head.organisation_id, key))
        if member is None or id(member) in seen:
            continue
        if _member_keys(member) and not observation_value(as_object(member.resource)):
            # A group Observation: its members are the results.
            yield from _members(member, observations, seen)
        else:
            seen.add(id(member))
            yield member


def _groups_within(head: RecordEntry, observations: dict[tuple[int, str], RecordEntry]) -> list[RecordEntry]:
    found = []
    for key in _member_keys(head):
        member = observations.get((head.organisation_id, key))
        if member is not None and member is not head and _member_keys(member):
            found.append(member)
    return found
