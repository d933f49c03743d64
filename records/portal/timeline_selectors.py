"""The timeline's read: one patient's encounters, results, documents, referrals and medications as one list of
events, most recent first, filtered and paged.

`timeline_build` runs only inside the door (`records.access_timeline.patient_timeline_open`), once the decision
has allowed the access. Always holds, exactly as on the record page (it reads through the same rules,
`records.disclosure.visible_entries` and `not_withheld_as_sensitive`): entered-in-error entries and entries deleted at
the source are never shown nor counted; sections the role does not open and sections or partners an objection
withholds are not read at all; sensitive and confidential entries from partners other than the user's own are
counted for the notice, never listed; a restricted patient's GP practice is not named to a role that may not see
their whereabouts, neither on a row nor among the partners to filter by. The partners offered are those holding
entries this page may show. A medication with an end date is two events, started and stopped. The number of
queries does not grow with the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Page, Paginator
from django.db.models import Case, CharField, Count, F, Q, QuerySet, Value, When
from django.utils import timezone

from consent.policy import Decision
from records.clinical import describe
from records.disclosure import Shown, not_withheld_as_sensitive, visible_entries
from records.models import Organisation, Patient, RecordEntry
from records.portal.selectors import withheld_notice
from records.portal.timeline_forms import TimelineFilterForm
from records.sections import CLINICAL_SECTIONS, SECTION_ORDER, Section

# The sections whose entries are things that happened at a time, in the order the section filter lists them.
TIMELINE_SECTIONS: tuple[Section, ...] = (
    Section.ENCOUNTERS,
    Section.INVESTIGATIONS,
    Section.DOCUMENTS,
    Section.REFERRALS,
    Section.MEDICATIONS,
)
TIMELINE_PAGE_SIZE = 50
STARTED = "started"
STOPPED = "stopped"


@dataclass(frozen=True)
class TimelineEvent:
    occurred_at: datetime | None
    # "started" or "stopped" for a medication; "" for anything else.
    kind: str
    entry: RecordEntry
    title: str
    section: Section
    # The entry's source is the restricted patient's GP practice, which this role may not be told.
    is_source_hidden: bool

    @property
    def is_document(self) -> bool:
        return self.section == Section.DOCUMENTS


@dataclass(frozen=True)
class TimelinePage:
    name: str
    nhs_number: str
    birth_date: date | None
    form: TimelineFilterForm
    # None when the filter is not valid: nothing is listed until it is corrected.
    page: Page[Any] | None
    events: list[TimelineEvent]
    # Plain sentences for the "Some information has been withheld" notice, as on the record page.
    withheld: list[str]
    # The filter as the page's links carry it to the other pages (never an NHS number).
    query: str


def _partner_label(name: str, ods_code: str) -> str:
    return f"{name} ({ods_code})"


def _holders(
    entries: QuerySet[RecordEntry], decision: Decision, *, hide_practice: bool
) -> tuple[list[tuple[str, str]], int]:
    """The partners holding entries this page may show (as filter choices), and how many entries are withheld as
    sensitive or confidential; one query."""
    rows = (
        entries.order_by()
        .values("organisation__ods_code", "organisation__name", "organisation__kind")
        .annotate(shown=Count("pk", filter=not_withheld_as_sensitive(decision)), total=Count("pk"))
    )
    partners: list[tuple[str, str]] = []
    withheld = 0
    for row in sorted(rows, key=lambda row: (row["organisation__name"], row["organisation__ods_code"])):
        withheld += row["total"] - row["shown"]
        if not row["shown"]:
            continue
        if hide_practice and row["organisation__kind"] == Organisation.Kind.GP_PRACTICE:
            continue
        partners.append(
            (
                row["organisation__ods_code"],
                _partner_label(row["organisation__name"], row["organisation__ods_code"]),
            )
        )
    return partners, withheld


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _in_range(field: str, date_from: date | None, date_to: date | None) -> Q:
    """`field` on or after the start of `date_from` and before the end of `date_to`, in local days."""
    wanted = Q()
    if date_from:
        wanted &= Q(**{f"{field}__gte": _day_start(date_from)})
    if date_to and date_to < date.max:
        wanted &= Q(**{f"{field}__lt": _day_start(date_to + timedelta(days=1))})
    return wanted


def _events(entries: QuerySet[RecordEntry], cleaned: Mapping[str, Any]) -> QuerySet[Any]:
    """Every event the filter selects, as (entry id, when, kind) rows in the timeline's order."""
    if cleaned.get("partner"):
        entries = entries.filter(organisation__ods_code=cleaned["partner"])
    if cleaned.get("section"):
        entries = entries.filter(section=cleaned["section"])
    date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
    started = (
        entries.filter(_in_range("effective_at", date_from, date_to))
        .annotate(
            event_at=F("effective_at"),
            kind=Case(
                When(section=Section.MEDICATIONS, then=Value(STARTED)),
                default=Value(""),
                output_field=CharField(),
            ),
        )
        .values_list("pk", "event_at", "kind")
    )
    stopped = (
        entries.filter(section=Section.MEDICATIONS, effective_end__isnull=False)
        .filter(_in_range("effective_end", date_from, date_to))
        .annotate(event_at=F("effective_end"), kind=Value(STOPPED, output_field=CharField()))
        .values_list("pk", "event_at", "kind")
    )
    return started.union(stopped, all=True).order_by(F("event_at").desc(nulls_last=True), "-pk", "kind")


def _carried_query(cleaned: Mapping[str, Any]) -> str:
    kept = {key: value for key, value in cleaned.items() if value}
    return urlencode(
        {key: value.isoformat() if isinstance(value, date) else value for key, value in kept.items()}
    )


def timeline_build(
    patient: Patient, decision: Decision, *, query: Mapping[str, str]
) -> tuple[TimelinePage, Shown]:
    """The timeline for one allowed access, filtered by `query` (partner, section, date_from, date_to, page), and
    what it shows and withholds for the door's audit row.

    An invalid filter lists nothing and says why on the form; a page past the end shows the last.
    """
    clinical = [section for section in SECTION_ORDER if section in CLINICAL_SECTIONS]
    role_hidden = [section for section in clinical if section not in decision.sections]
    open_sections = [
        section
        for section in TIMELINE_SECTIONS
        if section in decision.sections and section not in decision.withheld_sections
    ]
    hide_practice = patient.is_restricted and not decision.shows_restricted_demographics
    entries = visible_entries(patient, decision, open_sections)
    partners, sensitive_count = _holders(entries, decision, hide_practice=hide_practice)
    form = TimelineFilterForm(
        query,
        partners=partners,
        sections=[(section.value, section.label) for section in open_sections],
    )
    sentences, withheld_facts = withheld_notice(decision, role_hidden, sensitive_count, hide_practice)
    page: Page[Any] | None = None
    events: list[TimelineEvent] = []
    carried = ""
    if form.is_valid():
        carried = _carried_query(form.cleaned_data)
        selected = _events(entries.filter(not_withheld_as_sensitive(decision)), form.cleaned_data)
        page = Paginator(selected, TIMELINE_PAGE_SIZE).get_page(query.get("page"))
        rows = list(page.object_list)
        found = entries.select_related("organisation").in_bulk([row[0] for row in rows])
        for entry_id, occurred_at, kind in rows:
            entry = found[entry_id]
            events.append(
                TimelineEvent(
                    occurred_at=occurred_at,
                    kind=kind,
                    entry=entry,
                    title=describe(entry).title,
                    section=Section(entry.section),
                    is_source_hidden=hide_practice
                    and entry.organisation.kind == Organisation.Kind.GP_PRACTICE,
                )
            )
    shown_sections = [Section.DEMOGRAPHICS.value]
    shown_sections += [
        section.value for section in open_sections if any(e.section == section for e in events)
    ]
    timeline = TimelinePage(
        name=patient.full_name,
        nhs_number=patient.nhs_number_display,
        birth_date=patient.birth_date,
        form=form,
        page=page,
        events=events,
        withheld=sentences,
        query=carried,
    )
    shown = Shown(
        sections=shown_sections,
        partners=sorted({event.entry.organisation.ods_code for event in events}),
        withheld=withheld_facts,
    )
    return timeline, shown
