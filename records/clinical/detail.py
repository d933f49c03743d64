"""The words of one entry (`EntryDetail` and its `Fact`s) and the small readers every resource type's detail uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from django.utils import timezone

from records.ingest.fhir import JsonObject, as_list, as_object, codings, parse_datetime, text
from records.ingest.mapping import concept_words
from records.models import RecordEntry
from records.terminology import capitalised, code_in_words, known_display, looks_like_identifier, plain_term


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class EntryDetail:
    # What the entry is, in words (the concept's display text, or the partner's summary).
    title: str
    # Label and value pairs: dose, quantity, last issued, course (acute or repeat), end; value with unit,
    # reference range; and so on, by resource type.
    facts: list[Fact] = field(default_factory=list)
    # "high", "low", "abnormal", "critical" or "": a result outside its reference range, as the lab flagged it.
    flag: str = ""
    # The flag in words for the page ("High", "Low", "Abnormal", "Critical").
    flag_text: str = ""


@dataclass(frozen=True)
class ResultGroup:
    # The panel's name (a DiagnosticReport's), or "" for a result that stands alone.
    title: str
    # The report itself, when the group is a panel the page holds the report of; None otherwise.
    report: RecordEntry | None
    results: list[RecordEntry]


class Facts:
    """Facts in the order they are added, leaving out those with no value."""

    def __init__(self) -> None:
        self.items: list[Fact] = []

    def add(self, label: str, value: str) -> None:
        value = " ".join(value.split())
        if value:
            self.items.append(Fact(label, value))


def concept_text(value: object) -> str:
    """A CodeableConcept (or a Coding, or a list of either's first) in words, never a bare code: the text, the
    first display that is words, what a known code means, or a sentence saying only a code was sent."""
    return capitalised(_concept_words(value))


def _concept_words(value: object) -> str:
    first = as_object(as_list(value)[0]) if as_list(value) else {}
    if "coding" not in first and ("code" in first or "display" in first):
        return concept_words(first, "")
    found = codings(first)
    own = plain_term(text(first.get("text")))
    if own and not looks_like_identifier(own):
        return own
    for coding in found:
        display = plain_term(text(coding.get("display")))
        if display and not looks_like_identifier(display):
            return display
    for coding in found:
        known = known_display(text(coding.get("system")), text(coding.get("code")))
        if known:
            return known
    for coding in found:
        if text(coding.get("code")):
            return code_in_words(text(coding.get("system")), text(coding.get("code")))
    return own


def concepts_text(values: object) -> str:
    """Several CodeableConcepts in words, joined with commas, each once."""
    words: list[str] = []
    for value in as_list(values):
        word = concept_text(value)
        if word and word not in words:
            words.append(word)
    return ", ".join(words)


def date_text(value: object) -> str:
    """A FHIR date or dateTime as a reader writes the day ("3 Nov 2026"), in local time; a year or month alone as
    sent; "" for none."""
    raw = text(value)
    if len(raw) == 4:
        return raw
    if len(raw) == 7:
        moment = parse_datetime(raw)
        return moment.strftime("%b %Y") if moment is not None else raw
    if len(raw) == 10:
        try:
            return _day(date.fromisoformat(raw))
        except ValueError:
            return raw
    moment = parse_datetime(raw)
    return _day(timezone.localtime(moment).date()) if moment is not None else raw


def datetime_text(value: object) -> str:
    """A dateTime with its local time of day when it has one ("3 Nov 2026, 14:05")."""
    raw = text(value)
    moment = parse_datetime(raw)
    if moment is None or len(raw) <= 10:
        return date_text(raw)
    local = timezone.localtime(moment)
    return f"{_day(local.date())}, {local:%H:%M}"


def period_text(period: object, *, with_time: bool = False) -> str:
    """A Period: "3 Nov 2026 to 9 Nov 2026", "from 3 Nov 2026", "until 9 Nov 2026"."""
    period = as_object(period)
    show = datetime_text if with_time else date_text
    start, end = show(period.get("start")), show(period.get("end"))
    if start and end:
        return start if start == end else f"{start} to {end}"
    if start:
        return f"from {start}"
    return f"until {end}" if end else ""


def _day(day: date | datetime) -> str:
    return f"{day.day} {day:%b %Y}"


def sentence(value: str) -> str:
    """A FHIR code ("in-progress", "entered-in-error") as words: "In progress"."""
    words = value.replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def extension(holder: JsonObject, url: str) -> JsonObject:
    for found in as_list(holder.get("extension")):
        found = as_object(found)
        if found.get("url") == url:
            return found
    return {}


def reference_name(reference: object) -> str:
    """A Reference's display, or "" (a bare id means nothing to a reader)."""
    return text(as_object(reference).get("display"))


def coded_status(concept: object) -> str:
    """A status concept (clinicalStatus, verificationStatus) as a word: "Active", "Resolved"."""
    for coding in codings(concept):
        if text(coding.get("code")):
            return sentence(text(coding.get("display")) or text(coding.get("code")))
    return concept_text(concept)


def onset_text(resource: JsonObject, name: str) -> str:
    """When `name` (onset, abatement) happened, whichever of its FHIR choice types the resource uses."""
    for key in (f"{name}DateTime", f"{name}String"):
        if key in resource:
            return date_text(resource[key]) if key.endswith("DateTime") else text(resource[key])
    if f"{name}Period" in resource:
        return period_text(resource[f"{name}Period"])
    age = as_object(resource.get(f"{name}Age"))
    if "value" in age:
        return f"aged {age['value']}"
    return ""
