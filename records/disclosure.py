"""Which of a patient's entries a decision shows, and what a page is about to show, described for the audit row.

A neutral module: the door (`records.access` and the doors beside it) records what is shown and the portal's
selectors build it, and neither needs to import the other for it. Every page that lists or opens entries (the
record, its summary, the timeline, a document) reads them through `visible_entries` and
`not_withheld_as_sensitive`, so the rules of what a decision shows are written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet

from records.models import Patient, RecordEntry
from records.sections import Section

if TYPE_CHECKING:
    from consent.policy import Decision


@dataclass(frozen=True)
class Shown:
    """What a page is about to show, for the audit row."""

    sections: list[str] = field(default_factory=list)
    partners: list[str] = field(default_factory=list)
    withheld: str = ""
    # The one item of the record the page opens (a document), as its source names it ("DocumentReference/<id>"):
    # the audit row's query and reason. Empty for a page of the whole record.
    item: str = ""


def visible_entries(patient: Patient, decision: Decision, sections: list[Section]) -> QuerySet[RecordEntry]:
    """The patient's entries in `sections` that the decision opens, from partners no objection withholds, before
    the sensitive rules (`not_withheld_as_sensitive`).

    Always holds: a section the role does not open or an objection withholds is never read, whatever the caller
    asks for; what the source deleted or marked entered in error is kept for the audit trail, never shown nor
    counted.
    """
    opened = [
        section
        for section in sections
        if section in decision.sections and section not in decision.withheld_sections
    ]
    entries = RecordEntry.objects.filter(
        patient=patient, is_entered_in_error=False, is_deleted_at_source=False, section__in=opened
    )
    if decision.withheld_partners:
        entries = entries.exclude(organisation__ods_code__in=sorted(decision.withheld_partners))
    return entries


def not_withheld_as_sensitive(decision: Decision) -> Q:
    """The entries this decision shows despite the sensitive rules: ordinary ones, and the user's own partner's."""
    if not decision.withholds_sensitive:
        return Q()
    ordinary = Q(is_sensitive=False, is_confidential=False)
    if not decision.sensitive_visible_from:
        return ordinary
    return ordinary | Q(organisation__ods_code__in=sorted(decision.sensitive_visible_from))
