"""Reads for the portal: the record page.

`record_page_build` runs only inside the door (`records.access.get_patient_for_user`), once the decision has
allowed the access; it renders nothing the decision does not allow and reports what it withheld, for the
notice on the page and for the audit row. The page opens on a summary (`records.portal.summary`) built from the
same reads as the full sections below it (`records.portal.record_reads`), and says which partners hold this
patient's data and how fresh their feeds are (`records.portal.availability`). The number of queries it makes
does not grow with the size of the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.utils import timezone

from consent.policy import Decision
from records.disclosure import Shown, visible_entries
from records.models import Organisation, Patient, RecordEntry
from records.portal.availability import (
    DataAvailability,
    FeedAvailability,
    PartnerData,
    PatientAvailability,
    data_availability_get,
    patient_availability_build,
)
from records.portal.record_reads import (
    VITAL_SIGNS,
    VITAL_SIGNS_TITLE,
    PartCount,
    counts_read,
    entries_read,
    visible_rows,
)
from records.portal.summary import (
    SUMMARY_PLANS,
    EntryRow,
    RecordSummary,
    RowGroup,
    entry_row,
    row_groups,
    summary_build,
)
from records.sections import CLINICAL_SECTIONS, SECTION_ORDER, Section

__all__ = [
    "OBJECTION_WITHHELD",
    "RESTRICTED_WITHHELD",
    "ROLE_DEMOGRAPHICS_ONLY",
    "SENSITIVE_WITHHELD",
    "DataAvailability",
    "FeedAvailability",
    "PartnerData",
    "RecordPage",
    "data_availability_get",
    "record_page_build",
]

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
# The keys a page link carries: every section's, and vital signs'.
_PART_KEYS = frozenset([*(section.value for section in Section), VITAL_SIGNS])


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
class PageLink:
    number: int
    # The query string that opens this page of the section and keeps the other sections' pages ("" for none).
    query: str
    is_current: bool


@dataclass(frozen=True)
class RecordSection:
    key: str
    title: str
    entries: list[RecordEntry]
    page: Page[int]
    # The entries in words (`records.clinical.describe`), in the same order as `entries`.
    rows: list[EntryRow] = field(default_factory=list)
    # Investigation results gathered into panels (`records.clinical.group_results`); empty for other sections.
    groups: list[RowGroup] = field(default_factory=list)
    links: list[PageLink] = field(default_factory=list)

    @property
    def previous_link(self) -> PageLink | None:
        return self.links[self.page.number - 2] if self.page.has_previous() else None

    @property
    def next_link(self) -> PageLink | None:
        return self.links[self.page.number] if self.page.has_next() else None

    @property
    def is_documents(self) -> bool:
        return self.key == Section.DOCUMENTS.value


@dataclass(frozen=True)
class WhyAccess:
    """Why this user may open the record, for the line at the top: the basis in a few words, then where it came
    from; the decision's expiry the page shows beside it."""

    headline: str
    detail: str


@dataclass(frozen=True)
class RecordPage:
    demographics: Demographics
    sections: list[RecordSection]
    # Plain sentences for the "Some information has been withheld" notice; empty when nothing was withheld.
    withheld: list[str]
    availability: PatientAvailability
    summary: RecordSummary
    why: WhyAccess


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


def _page_number(asked: str | None) -> int:
    """The page asked for; anything that is not a positive whole number means the first."""
    try:
        return max(1, int(asked or 1))
    except ValueError:
        return 1


def _parts(open_sections: list[Section]) -> list[tuple[str, str]]:
    """The parts of the page holding entries, in page order, by key and title: each open section, and vital
    signs right after investigation results when those are open."""
    parts = []
    for section in open_sections:
        parts.append((section.value, section.label))
        if section == Section.INVESTIGATIONS:
            parts.append((VITAL_SIGNS, VITAL_SIGNS_TITLE))
    return parts


def _page_links(key: str, page: Page[int], requested: Mapping[str, str]) -> list[PageLink]:
    """Links to every page of one part, each keeping the other parts on the page they were on; only part keys
    are carried, so nothing else in a query string survives."""
    kept = {
        other: value
        for other, value in sorted(requested.items())
        if other in _PART_KEYS and other != key and value and value != "1"
    }
    links = []
    for number in page.paginator.page_range:
        query = dict(kept)
        if number > 1:
            query[key] = str(number)
        ordered = sorted(query.items())
        links.append(
            PageLink(
                number=number,
                query=f"?{urlencode(ordered)}" if ordered else "",
                is_current=number == page.number,
            )
        )
    return links


def withheld_notice(
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


def _why_access(decision: Decision) -> WhyAccess:
    """A grant's provenance is short and says it all ("Break-glass access BG-…: reason"); a relationship's begins
    with its basis ("Registered GP practice") and goes on with the data that made it."""
    words = decision.provenance or decision.basis
    if decision.grant_reference:
        return WhyAccess(headline=words, detail="")
    headline, _, detail = words.partition("; ")
    return WhyAccess(headline=headline, detail=detail)


def record_page_build(
    patient: Patient, decision: Decision, *, requested_pages: Mapping[str, str]
) -> tuple[RecordPage, Shown]:
    """The record page for one allowed access, and what it shows and withholds (for the door's audit row).

    Always holds: entered-in-error entries and entries deleted at the source are never shown nor counted;
    sections the role does not open and sections or partners withheld by an objection are not read at all, and
    the notice says only that the patient's objection withholds something, never which sections or partners;
    sensitive and confidential entries from partners other than the user's own are counted, never rendered, on
    the summary as in the sections; a restricted patient's address, phone and practice are left out unless the
    decision shows them, and when it does the audit row says so. The audit row names the sections opened and
    every partner the page names as holding data shown. Vital signs are shown apart from investigation results
    but are one section with them for every rule and on the audit row.
    `requested_pages` maps a part's key (a section's, or `vital-signs`) to the page wanted (missing or not a
    number: the first; past the end: the last).
    """
    clinical = [section for section in SECTION_ORDER if section in CLINICAL_SECTIONS]
    role_hidden = [section for section in clinical if section not in decision.sections]
    open_sections = [
        section
        for section in clinical
        if section in decision.sections and section not in decision.withheld_sections
    ]
    parts = _parts(open_sections)
    visible = visible_rows(visible_entries(patient, decision, open_sections), decision)
    counts, holdings = counts_read(visible)
    pages: dict[str, Page[int]] = {}
    for key, _title in parts:
        # A paginator over a range of positions: it validates the page number without another query.
        paginator = Paginator(range(counts.get(key, PartCount()).shown), settings.RECORD_PAGE_SIZE)
        pages[key] = paginator.get_page(_page_number(requested_pages.get(key)))
    opened = {key for key, _title in parts}
    on_pages, in_summary = entries_read(
        visible,
        # A page's last position as if it were full (no part holds more).
        {
            key: (page.start_index(), page.start_index() + page.paginator.per_page - 1)
            for key, page in pages.items()
            if page.paginator.count
        },
        {
            plan.key: plan.size
            for plan in SUMMARY_PLANS
            if counts.get(plan.key, PartCount()).shown and plan.key in opened
        },
    )
    demographics = _demographics(patient, decision)
    hides_practice = demographics.is_restricted_hidden
    sensitive_count = sum(count.total - count.shown for count in counts.values())
    sentences, withheld_facts = withheld_notice(decision, role_hidden, sensitive_count, hides_practice)
    sections = []
    for key, title in parts:
        found = on_pages.get(key, [])
        rows = [entry_row(entry, hides_practice=hides_practice) for entry in found]
        sections.append(
            RecordSection(
                key=key,
                title=title,
                entries=found,
                page=pages[key],
                rows=rows,
                groups=row_groups(rows, hides_practice=hides_practice)
                if key == Section.INVESTIGATIONS.value
                else [],
                links=_page_links(key, pages[key], requested_pages),
            )
        )
    summary = summary_build(opened, in_summary, counts, hides_practice=hides_practice)
    availability = patient_availability_build(
        holdings, data_availability_get(), hides_practice=hides_practice
    )
    shown_sections = [Section.DEMOGRAPHICS.value]
    if not hides_practice:
        shown_sections.append(Section.GP_PRACTICE.value)
    if patient.is_restricted and not hides_practice:
        # Every showing of a restricted patient's whereabouts is on the audit row, by name.
        shown_sections.append(RESTRICTED_DEMOGRAPHICS_SHOWN)
    shown_sections += [section.value for section in open_sections]
    # Every partner the page names as holding data shown: those of the rows and of the summary are among them.
    partners = sorted({holding.ods_code for holding in holdings})
    page = RecordPage(
        demographics=demographics,
        sections=sections,
        withheld=sentences,
        availability=availability,
        summary=summary,
        why=_why_access(decision),
    )
    return page, Shown(sections=shown_sections, partners=partners, withheld=withheld_facts)
