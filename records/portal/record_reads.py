"""The record page's reads: which entries a decision lets the page show, how many each part of the page holds,
and the entries of each section's current page and of the summary.

Everything here reads from `visible_entries`, which is given only the sections the decision opens: a section the
role does not open, or an objection withholds, is never read. Vital signs are a part of the page, not a section of
the record: they are the investigation results that are Observations of the `vital-signs` category, shown under
their own heading and paged on their own (`?vital-signs=N`), and they are read, withheld and audited exactly as
investigation results are. The number of queries does not grow with the size of the record: one counts every
part of the page per partner, one reads every part's current page and summary together.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Case, CharField, Count, F, IntegerField, Max, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber

from consent.policy import Decision
from records.disclosure import not_withheld_as_sensitive
from records.models import RecordEntry
from records.sections import Section

VITAL_SIGNS = "vital-signs"
VITAL_SIGNS_TITLE = "Vital signs"
# FHIR's observation category for vital signs, as UK Core and every partner's feed send it.
_VITAL_SIGNS_ENTRY = Q(
    section=Section.INVESTIGATIONS,
    resource_type="Observation",
    resource__contains={"category": [{"coding": [{"code": "vital-signs"}]}]},
)
# Statuses (FHIR's, across resource types) that say an entry no longer holds: a resolved problem, a stopped
# medicine, an inactive alert, a revoked advance decision. The summary shows what still holds; an entry with no
# status is taken to hold, so nothing a partner left unsaid is hidden from the summary.
ENDED_STATUSES = (
    "inactive",
    "resolved",
    "remission",
    "refuted",
    "completed",
    "stopped",
    "cancelled",
    "not-taken",
    "revoked",
    "rejected",
    "ended",
    "superseded",
)


def part_key() -> Case:
    """The part of the page an entry is shown in: its section's key, or `vital-signs`."""
    return Case(
        When(_VITAL_SIGNS_ENTRY, then=Value(VITAL_SIGNS)), default=F("section"), output_field=CharField()
    )


@dataclass
class PartCount:
    # Entries shown, entries in all (the difference is withheld as sensitive), and shown entries that still hold.
    shown: int = 0
    total: int = 0
    holding: int = 0


@dataclass
class PartnerHolding:
    """A partner holding entries about the patient that this page may show."""

    organisation_id: int
    name: str
    ods_code: str
    kind: str
    entries: int = 0
    latest_at: datetime | None = None
    parts: list[str] = field(default_factory=list)


def counts_read(
    entries: QuerySet[RecordEntry], decision: Decision
) -> tuple[dict[str, PartCount], list[PartnerHolding]]:
    """How many entries each part of the page shows and holds, and which partners hold the shown ones (one
    query: one row per part and partner, so bounded by the partners, not by the record)."""
    shown = not_withheld_as_sensitive(decision)
    holding = shown & ~Q(status__in=ENDED_STATUSES)
    rows = (
        entries.order_by()
        .annotate(part=part_key())
        .values(
            "part", "organisation_id", "organisation__name", "organisation__ods_code", "organisation__kind"
        )
        .annotate(
            shown=Count("pk", filter=shown),
            total=Count("pk"),
            holding=Count("pk", filter=holding),
            latest_at=Max("effective_at", filter=shown),
        )
    )
    counts: dict[str, PartCount] = {}
    partners: dict[int, PartnerHolding] = {}
    for row in rows:
        count = counts.setdefault(row["part"], PartCount())
        count.shown += row["shown"]
        count.total += row["total"]
        count.holding += row["holding"]
        if not row["shown"]:
            continue
        partner = partners.setdefault(
            row["organisation_id"],
            PartnerHolding(
                organisation_id=row["organisation_id"],
                name=row["organisation__name"],
                ods_code=row["organisation__ods_code"],
                kind=row["organisation__kind"],
            ),
        )
        partner.entries += row["shown"]
        partner.parts.append(row["part"])
        if row["latest_at"] is not None and (
            partner.latest_at is None or row["latest_at"] > partner.latest_at
        ):
            partner.latest_at = row["latest_at"]
    return counts, sorted(partners.values(), key=lambda partner: (partner.name, partner.ods_code))


def _per_part(values: Mapping[str, int], default: int) -> Case | Value:
    """An entry's value from `values` (part → value), or `default`: a CASE on the section with a branch per
    other value, not per part, so the query stays as small as the parts that differ from the rest."""
    parts_of: dict[int, list[str]] = {}
    for part, value in values.items():
        if part != VITAL_SIGNS and value != default:
            parts_of.setdefault(value, []).append(part)
    whens = []
    vital = values.get(VITAL_SIGNS, default)
    if vital != values.get(Section.INVESTIGATIONS.value, default):
        whens.append(When(_VITAL_SIGNS_ENTRY, then=Value(vital)))
    whens += [When(section__in=parts, then=Value(value)) for value, parts in parts_of.items()]
    if not whens:
        return Value(default, output_field=IntegerField())
    return Case(*whens, default=Value(default), output_field=IntegerField())


def _most_common(values: Iterable[int]) -> int:
    counted = Counter(values)
    return counted.most_common(1)[0][0] if counted else 0


def entries_read(
    entries: QuerySet[RecordEntry],
    decision: Decision,
    pages: Mapping[str, tuple[int, int]],
    summary_sizes: Mapping[str, int],
) -> tuple[dict[str, list[RecordEntry]], dict[str, list[RecordEntry]]]:
    """The entries on each part's current page (`pages`: part → first and last position, most recent first) and
    the first entries of each summarised part (`summary_sizes`: part → how many; those that still hold first,
    then most recent first), in one query, each entry with its partner and its resource.

    Each entry's bounds are columns (`_per_part`), so the filter on its positions is one short condition
    whatever the number of parts: Django wraps a filter on window functions in an outer query and walks that
    condition many times to build it, which with a condition per part cost more than the query itself.
    """
    on_pages: dict[str, list[RecordEntry]] = {part: [] for part in pages}
    in_summary: dict[str, list[RecordEntry]] = {}
    if not pages and not summary_sizes:
        return on_pages, in_summary
    recent_first = [F("effective_at").desc(nulls_last=True), F("pk").desc()]
    ended_last = Case(
        When(status__in=ENDED_STATUSES, then=Value(1)), default=Value(0), output_field=IntegerField()
    )
    firsts = {part: first for part, (first, _last) in pages.items()}
    lasts = {part: last for part, (_first, last) in pages.items()}
    ranked = (
        entries.filter(not_withheld_as_sensitive(decision))
        .select_related("organisation")
        .annotate(
            part=part_key(),
            first_shown=_per_part(firsts, _most_common(firsts.values())) if pages else Value(1),
            last_shown=_per_part(lasts, _most_common(lasts.values())) if pages else Value(0),
            summary_size=_per_part(summary_sizes, 0),
        )
        .annotate(
            position=Window(RowNumber(), partition_by=[F("part")], order_by=recent_first),
            summary_rank=Window(
                RowNumber(), partition_by=[F("part")], order_by=[ended_last.asc(), *recent_first]
            ),
        )
        .filter(
            Q(position__gte=F("first_shown"), position__lte=F("last_shown"))
            | Q(summary_rank__lte=F("summary_size"))
        )
        .order_by("part", "position")
    )
    ranks: dict[str, list[tuple[int, RecordEntry]]] = {part: [] for part in summary_sizes}
    for entry in ranked:
        span = pages.get(entry.part)
        if span is not None and span[0] <= entry.position <= span[1]:
            on_pages[entry.part].append(entry)
        if entry.part in summary_sizes and entry.summary_rank <= summary_sizes[entry.part]:
            ranks[entry.part].append((entry.summary_rank, entry))
    for part, ranked_entries in ranks.items():
        in_summary[part] = [entry for _rank, entry in sorted(ranked_entries, key=operator.itemgetter(0))]
    return on_pages, in_summary
