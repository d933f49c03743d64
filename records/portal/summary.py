"""The record's summary, what a clinician reads first, and the partners holding this patient's data.

Built from entries `record_reads` already read through the door: no queries, no decisions. The banners hold what a
clinician must not miss (allergies and adverse reactions, alerts, communication and reasonable-adjustment needs,
safeguarding, legal information); the parts below them hold active problems, current medications, the last
encounters, results and vital signs, and the care team. Always holds: a part is built only from a section the
decision opened, so what the role, an objection or the sensitive rules withhold is never on the summary; every
item says its source and date; a restricted patient's GP practice is named as "the patient's GP practice" to a
role that may not see their whereabouts, here as on every row of the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from django.utils import timezone
from django.utils.dates import MONTHS_3

from records.clinical import EntryDetail, Fact, describe, group_results
from records.models import Organisation, RecordEntry
from records.portal.record_reads import ENDED_STATUSES, VITAL_SIGNS, VITAL_SIGNS_TITLE, PartCount
from records.sections import Section

COMMUNICATION = "communication"
COMMUNICATION_TITLE = "Communication needs"
# Statuses a summary item does not repeat: what an entry on the summary is unless it says otherwise.
_ORDINARY_STATUSES = frozenset(
    {"", "active", "final", "amended", "corrected", "finished", "completed", "current"}
)
# Facts a summary item leaves out: it shows its own date and status, and a category or type adds little at a glance.
_FACTS_THE_ITEM_SAYS = frozenset(
    {"Status", "Period", "Recorded", "When", "Date", "Onset", "Category", "Type"}
)
# How many of an entry's facts a summary item shows; its row in the full section shows them all.
BRIEF_FACTS = 2
# A Flag is a communication or reasonable-adjustment need when it says so in its category (the NHS Reasonable
# Adjustment Flag's, or a partner's own) or names one in its text; the rest of the alerts stay alerts. Both come
# from the alerts section, so both are withheld whenever it is.
_COMMUNICATION_CATEGORIES = frozenset({"reasonable-adjustment", "communication", "NRAF", "RA"})
_COMMUNICATION_WORDS = (
    "interpreter",
    "sign language",
    "bsl",
    "large print",
    "large-print",
    "easy read",
    "braille",
    "hearing",
    "lip read",
    "communication",
    "reasonable adjustment",
)
_ENDED = frozenset(ENDED_STATUSES)


@dataclass(frozen=True)
class EntryRow:
    """One entry as a row or an item shows it: what it is in words, and its source as this role may be told."""

    entry: RecordEntry
    detail: EntryDetail
    # The source is a restricted patient's GP practice, which this role may not be told.
    is_source_hidden: bool

    @property
    def is_document(self) -> bool:
        return self.entry.resource_type in ("DocumentReference", "Composition")

    @cached_property
    def _local_effective_at(self) -> datetime | None:
        effective_at = self.entry.effective_at
        if effective_at is None or timezone.is_naive(effective_at):
            return effective_at
        return timezone.localtime(effective_at)

    @property
    def when_iso(self) -> str:
        """When the entry happened, for a `<time datetime>`: as the `date:'c'` filter writes it, in local time."""
        local = self._local_effective_at
        return local.isoformat() if local is not None else ""

    @property
    def when_text(self) -> str:
        """When the entry happened in words, as the `date:"j M Y"` filter writes it ("6 Dec 2026"), computed
        once a row instead of by the filter in the template, which the page calls hundreds of times."""
        local = self._local_effective_at
        if local is None:
            return ""
        return f"{local.day} {str(MONTHS_3[local.month]).title()} {local.year:04d}"

    @property
    def status_note(self) -> str:
        """The status, where a summary item should say it: not when it is what one expects of an entry."""
        status = self.entry.status
        return "" if status in _ORDINARY_STATUSES else status

    @property
    def brief_facts(self) -> list[Fact]:
        """The facts a summary item has room for: the first ones a clinician reads (a reaction and its severity,
        a dose), leaving out what the item says already (its date and status) or what adds little at a glance."""
        kept = [fact for fact in self.detail.facts if fact.label not in _FACTS_THE_ITEM_SAYS]
        return kept[:BRIEF_FACTS]


@dataclass(frozen=True)
class RowGroup:
    """Results gathered into a panel (`records.clinical.group_results`), as rows."""

    # The panel's name, or "" for a result that stands alone.
    title: str
    report: EntryRow | None
    rows: list[EntryRow]


@dataclass(frozen=True)
class SummaryPart:
    # The anchor of the full section it summarises (a section key, or `vital-signs`).
    key: str
    kind: str
    title: str
    rows: list[EntryRow]
    # Entries of the full section this part leaves out: older ones, or (for the parts of what still holds)
    # others that still hold.
    more: int
    # Said when there are no rows: what "nothing" means here.
    empty: str
    groups: list[RowGroup] = field(default_factory=list)


@dataclass(frozen=True)
class SummaryPlan:
    key: str
    kind: str
    title: str
    size: int
    # Only entries that still hold (an active problem, a current medicine), not the most recent of any status.
    holding_only: bool
    empty: str


# What the summary reads, per part of the page; the banners first, in the order they are shown (alerts other than
# communication needs after all of them: see summary_build).
BANNER_PLANS: tuple[SummaryPlan, ...] = (
    SummaryPlan(
        Section.ALLERGIES.value,
        "allergies",
        "Allergies and adverse reactions",
        8,
        True,
        "None recorded by the partners sharing data with you.",
    ),
    SummaryPlan(Section.ALERTS.value, "alerts", "Alerts", 10, True, ""),
    SummaryPlan(Section.SAFEGUARDING.value, "safeguarding", "Safeguarding", 6, True, ""),
    SummaryPlan(Section.LEGAL.value, "legal", "Legal information", 6, True, ""),
)
PART_PLANS: tuple[SummaryPlan, ...] = (
    SummaryPlan(
        Section.PROBLEMS.value, "problems", "Active problems", 8, True, "No active problems recorded."
    ),
    SummaryPlan(
        Section.MEDICATIONS.value,
        "medications",
        "Current medications",
        8,
        True,
        "No current medications recorded.",
    ),
    SummaryPlan(
        Section.ENCOUNTERS.value, "encounters", "Recent encounters", 3, False, "No encounters recorded."
    ),
    SummaryPlan(Section.INVESTIGATIONS.value, "results", "Latest results", 5, False, "No results recorded."),
    SummaryPlan(
        VITAL_SIGNS, "vitals", f"Latest {VITAL_SIGNS_TITLE.lower()}", 6, False, "No vital signs recorded."
    ),
    SummaryPlan(
        Section.PROFESSIONAL_CONTACTS.value,
        "contacts",
        "Care team and professional contacts",
        4,
        True,
        "No care team recorded.",
    ),
)
SUMMARY_PLANS = BANNER_PLANS + PART_PLANS


@dataclass(frozen=True)
class RecordSummary:
    banners: list[SummaryPart]
    parts: list[SummaryPart]
    # The banners' sections opened to this user that hold nothing that still holds, by title, for one quiet line.
    quiet_banners: list[str]


def entry_row(entry: RecordEntry, *, hides_practice: bool) -> EntryRow:
    hidden = hides_practice and entry.organisation.kind == Organisation.Kind.GP_PRACTICE
    return EntryRow(entry=entry, detail=describe(entry), is_source_hidden=hidden)


def row_groups(rows: list[EntryRow], *, hides_practice: bool) -> list[RowGroup]:
    """Investigation results gathered into panels, in the order the rows are in."""
    by_entry = {id(row.entry): row for row in rows}

    def as_row(entry: RecordEntry) -> EntryRow:
        return by_entry.get(id(entry)) or entry_row(entry, hides_practice=hides_practice)

    return [
        RowGroup(
            title=group.title,
            report=as_row(group.report) if group.report is not None else None,
            rows=[as_row(entry) for entry in group.results],
        )
        for group in group_results([row.entry for row in rows])
    ]


def _flag_texts(entry: RecordEntry) -> Iterable[str]:
    resource = entry.resource if isinstance(entry.resource, dict) else {}
    for category in resource.get("category") or []:
        if isinstance(category, dict):
            for coding in category.get("coding") or []:
                if isinstance(coding, dict):
                    yield str(coding.get("code") or "")
    code = resource.get("code")
    if isinstance(code, dict):
        yield str(code.get("text") or "")


def is_communication_need(entry: RecordEntry) -> bool:
    """Whether an alert is a communication or reasonable-adjustment need (see `_COMMUNICATION_WORDS`)."""
    texts = list(_flag_texts(entry))
    if _COMMUNICATION_CATEGORIES & set(texts):
        return True
    words = " ".join([*texts, entry.summary]).lower()
    return any(word in words for word in _COMMUNICATION_WORDS)


def _part(
    plan: SummaryPlan,
    rows: list[EntryRow],
    more: int,
    *,
    hides_practice: bool,
    kind: str = "",
    title: str = "",
) -> SummaryPart:
    groups = (
        row_groups(rows, hides_practice=hides_practice) if plan.key == Section.INVESTIGATIONS.value else []
    )
    return SummaryPart(
        key=plan.key,
        kind=kind or plan.kind,
        title=title or plan.title,
        rows=rows,
        more=more,
        empty=plan.empty,
        groups=groups,
    )


def summary_build(
    opened: Iterable[str],
    read: Mapping[str, list[RecordEntry]],
    counts: Mapping[str, PartCount],
    *,
    hides_practice: bool,
) -> RecordSummary:
    """The summary of the parts of the page the decision opened (`opened`: part keys), from what was read."""
    keys = set(opened)
    banners: list[SummaryPart] = []
    quiet: list[str] = []
    parts: list[SummaryPart] = []
    # Banners in plan order, then those that go after all of them (alerts other than communication needs).
    placed: list[tuple[SummaryPlan, SummaryPart]] = []
    trailing: list[tuple[SummaryPlan, SummaryPart]] = []
    for plan in SUMMARY_PLANS:
        if plan.key not in keys:
            continue
        entries = read.get(plan.key, [])
        if plan.holding_only:
            entries = [entry for entry in entries if entry.status not in _ENDED]
        rows = [entry_row(entry, hides_practice=hides_practice) for entry in entries]
        count = counts.get(plan.key, PartCount())
        more = max(0, (count.holding if plan.holding_only else count.shown) - len(rows))
        if plan in PART_PLANS:
            parts.append(_part(plan, rows, more, hides_practice=hides_practice))
            continue
        if plan.key == Section.ALERTS.value:
            # Split on what was read; what was not read is counted under the alerts, whatever its kind. Other alerts
            # follow the legal banner: a communication need, safeguarding and an advance decision are what an
            # unplanned contact must meet first, and on a phone the first screen holds four banners at most.
            needs = [row for row in rows if is_communication_need(row.entry)]
            others = [row for row in rows if not is_communication_need(row.entry)]
            placed.append(
                (
                    plan,
                    _part(
                        plan,
                        needs,
                        0,
                        hides_practice=hides_practice,
                        kind=COMMUNICATION,
                        title=COMMUNICATION_TITLE,
                    ),
                )
            )
            trailing.append((plan, _part(plan, others, more, hides_practice=hides_practice)))
        else:
            placed.append((plan, _part(plan, rows, more, hides_practice=hides_practice)))
    for plan, part in [*placed, *trailing]:
        if part.rows or part.more or plan.empty:
            banners.append(part)
        else:
            quiet.append(part.title)
    return RecordSummary(banners=banners, parts=parts, quiet_banners=quiet)
