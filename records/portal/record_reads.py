"""The record page's reads: which entries a decision lets the page show, how many each part of the page holds,
and the entries of each section's current page and of the summary.

Everything here reads from `visible_entries`, which is given only the sections the decision opens: a section the
role does not open, or an objection withholds, is never read. Vital signs are a part of the page, not a section of
the record: they are the investigation results that are Observations of the `vital-signs` category, shown under
their own heading and paged on their own (`?vital-signs=N`), and they are read, withheld and audited exactly as
investigation results are. The number of queries does not grow with the size of the record: one counts every
part of the page per partner, one reads every part's current page and summary together.

Django builds the rows a decision shows (`visible_rows`: `visible_entries`, each entry's part of the page, and
whether the sensitive rules show it), once an open; the two statements around them are SQL written here, since
building a grouping and two windows through the ORM cost more than running them (about a quarter of an open's
Python). Their only values are parameters.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import BooleanField, Case, CharField, ExpressionWrapper, F, Q, QuerySet, Value, When
from django.db.models.query import RawQuerySet

from consent.policy import Decision
from records.disclosure import not_withheld_as_sensitive
from records.models import Organisation, RecordEntry
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


@dataclass(frozen=True)
class VisibleRows:
    """The entries a decision lets the page read, as SQL: every column of each entry (`records_recordentry`'s), its
    partner's (as `partner_<column>`), its part of the page (`part`) and whether the sensitive rules show it
    (`is_shown`). Entries it does not show are counted, never read."""

    # Empty when no entry can be visible: then nothing is read.
    sql: str
    params: tuple[Any, ...]


_PARTNER_COLUMNS = tuple(column.attname for column in Organisation._meta.concrete_fields)


def visible_rows(entries: QuerySet[RecordEntry], decision: Decision) -> VisibleRows:
    """`entries` (from `visible_entries`) with each entry's part and whether it is shown, compiled once an open."""
    condition = not_withheld_as_sensitive(decision)
    shown = ExpressionWrapper(condition, output_field=BooleanField()) if condition else Value(True)
    rows = entries.order_by().annotate(
        part=part_key(),
        is_shown=shown,
        **{f"partner_{name}": F(f"organisation__{name}") for name in _PARTNER_COLUMNS},
    )
    try:
        sql, params = rows.query.sql_with_params()
    except EmptyResultSet:
        # Nothing can match (the decision opens no section): no statement is sent, as the ORM would send none.
        return VisibleRows(sql="", params=())
    return VisibleRows(sql=sql, params=tuple(params))


# One row per part and partner, so bounded by the partners, not by the record. `status` is never null.
_COUNTS_SQL = """
SELECT part, organisation_id, partner_name, partner_ods_code, partner_kind,
       count(*) FILTER (WHERE is_shown) AS shown,
       count(*) AS total,
       count(*) FILTER (WHERE is_shown AND NOT status = ANY(%s)) AS holding,
       max(effective_at) FILTER (WHERE is_shown) AS latest_at
FROM ({visible}) AS visible
GROUP BY part, organisation_id, partner_name, partner_ods_code, partner_kind
"""


def counts_read(visible: VisibleRows) -> tuple[dict[str, PartCount], list[PartnerHolding]]:
    """How many entries each part of the page shows and holds, and which partners hold the shown ones (one
    query)."""
    if not visible.sql:
        return {}, []
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS_SQL.format(visible=visible.sql), [list(ENDED_STATUSES), *visible.params])
        rows = cursor.fetchall()
    counts: dict[str, PartCount] = {}
    partners: dict[int, PartnerHolding] = {}
    for part, organisation_id, name, ods_code, kind, shown, total, holding, latest_at in rows:
        count = counts.setdefault(part, PartCount())
        count.shown += shown
        count.total += total
        count.holding += holding
        if not shown:
            continue
        partner = partners.setdefault(
            organisation_id,
            PartnerHolding(organisation_id=organisation_id, name=name, ods_code=ods_code, kind=kind),
        )
        partner.entries += shown
        partner.parts.append(part)
        if latest_at is not None and (partner.latest_at is None or latest_at > partner.latest_at):
            partner.latest_at = latest_at
    return counts, sorted(partners.values(), key=lambda partner: (partner.name, partner.ods_code))


# Each shown entry's position in its part, most recent first, and its rank for the summary (those that still hold
# first, then most recent first); kept when on its part's current page or among its part's summary's first.
# `wanted` holds, per part read, the positions of its current page and the size of its summary.
_ENTRIES_SQL = """
SELECT ranked.* FROM (
    SELECT visible.*,
           row_number() OVER (
               PARTITION BY part ORDER BY effective_at DESC NULLS LAST, id DESC
           ) AS position,
           row_number() OVER (
               PARTITION BY part ORDER BY status = ANY(%s), effective_at DESC NULLS LAST, id DESC
           ) AS summary_rank
    FROM ({visible}) AS visible
    WHERE is_shown
) AS ranked
JOIN unnest(%s::text[], %s::integer[], %s::integer[], %s::integer[])
    AS wanted (part, first_shown, last_shown, summary_size) USING (part)
WHERE position BETWEEN first_shown AND last_shown OR summary_rank <= summary_size
ORDER BY part, position
"""


def entries_read(
    visible: VisibleRows, pages: Mapping[str, tuple[int, int]], summary_sizes: Mapping[str, int]
) -> tuple[dict[str, list[RecordEntry]], dict[str, list[RecordEntry]]]:
    """The entries on each part's current page (`pages`: part → first and last position, most recent first) and
    the first entries of each summarised part (`summary_sizes`: part → how many; those that still hold first,
    then most recent first), in one query, each entry with its partner and its resource."""
    on_pages: dict[str, list[RecordEntry]] = {part: [] for part in pages}
    in_summary: dict[str, list[RecordEntry]] = {}
    if not visible.sql or (not pages and not summary_sizes):
        return on_pages, in_summary
    parts = sorted({*pages, *summary_sizes})
    # Each entry carries its `part`, `position` and `summary_rank` as the statement's own columns.
    ranked: RawQuerySet[Any] = RecordEntry.objects.raw(
        _ENTRIES_SQL.format(visible=visible.sql),
        [
            list(ENDED_STATUSES),
            *visible.params,
            parts,
            [pages[part][0] if part in pages else 1 for part in parts],
            [pages[part][1] if part in pages else 0 for part in parts],
            [summary_sizes.get(part, 0) for part in parts],
        ],
    )
    organisation_field = RecordEntry._meta.get_field("organisation")
    partners: dict[int, Organisation] = {}
    ranks: dict[str, list[tuple[int, RecordEntry]]] = {part: [] for part in summary_sizes}
    for entry in ranked:
        partner = partners.get(entry.organisation_id)
        if partner is None:
            values = [getattr(entry, f"partner_{name}") for name in _PARTNER_COLUMNS]
            partner = partners[entry.organisation_id] = Organisation.from_db(
                ranked.db, list(_PARTNER_COLUMNS), values
            )
        organisation_field.set_cached_value(entry, partner)
        span = pages.get(entry.part)
        if span is not None and span[0] <= entry.position <= span[1]:
            on_pages[entry.part].append(entry)
        if entry.part in summary_sizes and entry.summary_rank <= summary_sizes[entry.part]:
            ranks[entry.part].append((entry.summary_rank, entry))
    for part, ranked_entries in ranks.items():
        in_summary[part] = [entry for _rank, entry in sorted(ranked_entries, key=operator.itemgetter(0))]
    return on_pages, in_summary
