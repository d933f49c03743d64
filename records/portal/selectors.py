"""Reads for the portal.

`record_page_build` runs only inside the door (`records.access.get_patient_for_user`), once the decision has
allowed the access; it renders nothing the decision does not allow and reports what it withheld, for the
notice on the page and for the audit row. The number of queries it makes does not grow with the size of the
record.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import reduce

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, F, Prefetch, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from consent.policy import Decision
from records.disclosure import Shown
from records.models import Feed, Organisation, Patient, RecordEntry
from records.sections import CLINICAL_SECTIONS, SECTION_ORDER, Section

ROLE_DEMOGRAPHICS_ONLY = "Your role shows demographics only; clinical information is not shown."
# Says that something is withheld, never what: neither the sections nor the partners an objection covers.
OBJECTION_WITHHELD = "Some information is not shown because the patient has asked for it not to be shared."
SENSITIVE_WITHHELD = (
    "Some entries are not shown because the partner that sent them marked them as sensitive or confidential."
)
RESTRICTED_WITHHELD = (
    "This patient's record is restricted: their address, phone number and GP practice are not shown "
    "to your role."
)

# The audit row's marker, among the sections shown, that a restricted patient's address, phone and practice were shown.
RESTRICTED_DEMOGRAPHICS_SHOWN = "restricted-demographics"


@dataclass(frozen=True)
class Demographics:
    """The person demographics and GP practice, holding only what this decision lets the page show."""

    name: str
    nhs_number: str
    birth_date: date | None
    age: str
    sex: str
    death_date: date | None
    address: str
    postcode: str
    phone: str
    practice: Organisation | None
    is_restricted_hidden: bool


@dataclass(frozen=True)
class RecordSection:
    key: str
    title: str
    entries: list[RecordEntry]
    page: Page[int]


@dataclass(frozen=True)
class FeedAvailability:
    """A live dataset as the record page shows it: when it last arrived, and whether that is too long ago."""

    name: str
    partner: str
    last_success_at: datetime | None
    # No success within twice its schedule: this partner's part of the record may be out of date.
    is_stale: bool


@dataclass(frozen=True)
class PartnerData:
    organisation: Organisation
    feeds: list[FeedAvailability]


@dataclass(frozen=True)
class DataAvailability:
    live: list[PartnerData]
    not_joined: list[Organisation]

    @property
    def stale(self) -> list[FeedAvailability]:
        return [feed for partner in self.live for feed in partner.feeds if feed.is_stale]


@dataclass(frozen=True)
class RecordPage:
    demographics: Demographics
    sections: list[RecordSection]
    # Plain sentences for the "Some information has been withheld" notice; empty when nothing was withheld.
    withheld: list[str]
    availability: DataAvailability


def data_availability_get(now: datetime | None = None) -> DataAvailability:
    """Every active partner with its live datasets (each flagged stale or not as of `now`), and the active
    partners that have no live dataset yet."""
    now = now or timezone.now()
    live_feeds = Prefetch(
        "feeds", queryset=Feed.objects.filter(state=Feed.State.LIVE).order_by("name"), to_attr="live"
    )
    organisations = Organisation.objects.filter(is_active=True).order_by("name").prefetch_related(live_feeds)
    live: list[PartnerData] = []
    not_joined: list[Organisation] = []
    for organisation in organisations:
        feeds: list[Feed] = organisation.live
        if feeds:
            shown = [
                FeedAvailability(
                    name=feed.name,
                    partner=organisation.name,
                    last_success_at=feed.last_success_at,
                    is_stale=feed.is_stale(now),
                )
                for feed in feeds
            ]
            live.append(PartnerData(organisation=organisation, feeds=shown))
        else:
            not_joined.append(organisation)
    return DataAvailability(live=live, not_joined=not_joined)


def _age(birth_date: date | None, on: date) -> str:
    if birth_date is None:
        return ""
    months = (on.year - birth_date.year) * 12 + on.month - birth_date.month - (on.day < birth_date.day)
    # Children under two are described in months and babies in days, as clinicians do.
    if months >= 24:
        return f"{months // 12} years"
    if months >= 1:
        return "1 month" if months == 1 else f"{months} months"
    days = (on - birth_date).days
    if days >= 0:
        return "1 day" if days == 1 else f"{days} days"
    return ""


def _demographics(patient: Patient, decision: Decision) -> Demographics:
    hidden = patient.is_restricted and not decision.shows_restricted_demographics
    return Demographics(
        name=patient.full_name,
        nhs_number=patient.nhs_number_display,
        birth_date=patient.birth_date,
        age=_age(patient.birth_date, patient.death_date or timezone.localdate()),
        sex=patient.get_sex_display(),
        death_date=patient.death_date,
        address="" if hidden else patient.address,
        postcode="" if hidden else patient.postcode,
        phone="" if hidden else patient.phone,
        practice=None if hidden else patient.registered_practice,
        is_restricted_hidden=hidden,
    )


def _visible_entries(patient: Patient, decision: Decision, sections: list[Section]) -> QuerySet[RecordEntry]:
    # What the source deleted or marked entered in error is kept for the audit trail, never shown nor counted.
    entries = RecordEntry.objects.filter(
        patient=patient, is_entered_in_error=False, is_deleted_at_source=False, section__in=sections
    )
    if decision.withheld_partners:
        entries = entries.exclude(organisation__ods_code__in=decision.withheld_partners)
    return entries


def _not_withheld_as_sensitive(decision: Decision) -> Q:
    """The entries this decision shows despite the sensitive rules: ordinary ones, and the user's own partner's."""
    if not decision.withholds_sensitive:
        return Q()
    ordinary = Q(is_sensitive=False, is_confidential=False)
    if not decision.sensitive_visible_from:
        return ordinary
    return ordinary | Q(organisation__ods_code__in=sorted(decision.sensitive_visible_from))


def _page_number(asked: str | None) -> int:
    """The page asked for; anything that is not a positive whole number means the first."""
    try:
        return max(1, int(asked or 1))
    except ValueError:
        return 1


def _pages(
    entries: QuerySet[RecordEntry], sections: list[Section], decision: Decision, requested: Mapping[str, str]
) -> tuple[dict[Section, Page[int]], int]:
    """One page per section, and how many entries were withheld as sensitive or confidential (one query)."""
    shown = _not_withheld_as_sensitive(decision)
    counts = {
        row["section"]: row
        for row in entries.order_by()
        .values("section")
        .annotate(shown=Count("pk", filter=shown), total=Count("pk"))
    }
    pages: dict[Section, Page[int]] = {}
    withheld = 0
    for section in sections:
        row = counts.get(section, {"shown": 0, "total": 0})
        withheld += row["total"] - row["shown"]
        # A paginator over a range of positions: it validates the page number without another query.
        paginator = Paginator(range(row["shown"]), settings.RECORD_PAGE_SIZE)
        pages[section] = paginator.get_page(_page_number(requested.get(section.value)))
    return pages, withheld


def _entries_on_pages(
    entries: QuerySet[RecordEntry], decision: Decision, pages: dict[Section, Page[int]]
) -> dict[Section, list[RecordEntry]]:
    """The entries on each section's current page, most recent first, in one query."""
    wanted = [
        Q(section=section, position__gte=page.start_index(), position__lte=page.end_index())
        for section, page in pages.items()
        if page.paginator.count
    ]
    found: dict[Section, list[RecordEntry]] = {section: [] for section in pages}
    if not wanted:
        return found
    entries = entries.filter(_not_withheld_as_sensitive(decision))
    ranked = (
        entries.select_related("organisation")
        .only(
            "section",
            "resource_type",
            "summary",
            "status",
            "effective_at",
            "organisation__name",
            "organisation__ods_code",
        )
        .annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("section")],
                order_by=[F("effective_at").desc(nulls_last=True), F("pk").desc()],
            )
        )
        .filter(reduce(operator.or_, wanted))
        .order_by("section", "position")
    )
    for entry in ranked:
        found[Section(entry.section)].append(entry)
    return found


def _withheld(
    decision: Decision, role_hidden: list[Section], sensitive_count: int, restricted: bool
) -> tuple[list[str], str]:
    """The sentences for the page's notice, and the same facts tersely for the audit row.

    The page says that the patient's objection withholds something, never what; the audit row says which
    objections, sections and partners, for the privacy officer.
    """
    sentences: list[str] = []
    facts: list[str] = []
    if decision.withheld_sections or decision.withheld_partners:
        sentences.append(OBJECTION_WITHHELD)
        facts.append("objection:" + ",".join(decision.objections_applied))
    if decision.withheld_sections:
        facts.append("objection-sections:" + ",".join(sorted(decision.withheld_sections)))
    if decision.withheld_partners:
        facts.append("objection-partners:" + ",".join(sorted(decision.withheld_partners)))
    if role_hidden and len(role_hidden) == len(CLINICAL_SECTIONS):
        sentences.append(ROLE_DEMOGRAPHICS_ONLY)
    elif role_hidden:
        names = ", ".join(section.label for section in role_hidden)
        sentences.append(f"Your role does not open these sections, so they are not shown: {names}.")
    if role_hidden:
        facts.append("role-sections:" + ",".join(section.value for section in role_hidden))
    if sensitive_count:
        sentences.append(SENSITIVE_WITHHELD)
        facts.append(f"sensitive-entries:{sensitive_count}")
    if restricted:
        sentences.append(RESTRICTED_WITHHELD)
        facts.append("restricted-demographics")
    return sentences, "; ".join(facts)


def record_page_build(
    patient: Patient, decision: Decision, *, requested_pages: Mapping[str, str]
) -> tuple[RecordPage, Shown]:
    """The record page for one allowed access, and what it shows and withholds (for the door's audit row).

    Always holds: entered-in-error entries and entries deleted at the source are never shown nor counted;
    sections the role does not open and sections or partners withheld by an objection are not read at all, and
    the notice says only that the patient's objection withholds something, never which sections or partners;
    sensitive and confidential entries from partners other than the user's own are counted, never rendered; a
    restricted patient's address, phone and practice are left out unless the decision shows them, and when it
    does the audit row says so.
    `requested_pages` maps a section key to the page wanted (missing or not a number: the first; past the end:
    the last).
    """
    clinical = [section for section in SECTION_ORDER if section in CLINICAL_SECTIONS]
    role_hidden = [section for section in clinical if section not in decision.sections]
    open_sections = [
        section
        for section in clinical
        if section in decision.sections and section not in decision.withheld_sections
    ]
    entries = _visible_entries(patient, decision, open_sections)
    pages, sensitive_count = _pages(entries, open_sections, decision, requested_pages)
    on_pages = _entries_on_pages(entries, decision, pages)
    demographics = _demographics(patient, decision)
    availability = data_availability_get()
    sentences, withheld_facts = _withheld(
        decision, role_hidden, sensitive_count, demographics.is_restricted_hidden
    )
    sections = [
        RecordSection(key=section.value, title=section.label, entries=on_pages[section], page=pages[section])
        for section in open_sections
    ]
    shown_sections = [Section.DEMOGRAPHICS.value]
    if not demographics.is_restricted_hidden:
        shown_sections.append(Section.GP_PRACTICE.value)
    if patient.is_restricted and not demographics.is_restricted_hidden:
        # Every showing of a restricted patient's whereabouts is on the audit row, by name.
        shown_sections.append(RESTRICTED_DEMOGRAPHICS_SHOWN)
    shown_sections += [section.key for section in sections]
    partners = sorted({entry.organisation.ods_code for section in sections for entry in section.entries})
    page = RecordPage(
        demographics=demographics, sections=sections, withheld=sentences, availability=availability
    )
    return page, Shown(sections=shown_sections, partners=partners, withheld=withheld_facts)
