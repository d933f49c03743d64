"""The door to one document in a patient's record (a letter, a discharge summary), opened as its own audited
action, `view-document`.

What always holds:
- the patient is opened through `records.access.get_patient_for_user`, decided by `consent.policy.decide` as
  `view-document`, so the relationship, the role, the patient's objections and every other rule apply as they do to
  the record page, and the access is audited the same way;
- the entry is read only inside that allowed access, and only when the record page would show it to this user: it
  is the patient's (or was a record since merged into theirs), filed under Documents, neither entered in error nor
  deleted at the source, its section opened by the role and not withheld by an objection, its partner not withheld
  by an objection, and, when its partner marked it sensitive or confidential, from the user's own organisation
  (the rules of `records.portal.selectors`, which the portal's layer keeps out of the door's reach, so they are
  restated here, one per line);
- any other entry id, whether it does not exist, is another patient's, or is hidden, gets the same answer: a
  `view-document` event with outcome denied naming the entry id asked for is committed, then `PatientNotFound`;
- an allowed open's event names the document as its source does ("DocumentReference/<id>") and the section and
  partner shown; a PDF download is its own open and its own event, and a document with no PDF has none to open.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

from django.http import HttpRequest

from audit.models import AccessEvent
from audit.services import AccessFacts, access_event_record
from consent.policy import Decision
from records.access import PatientAccess, PatientNotFound, User, actor_of, context_of, get_patient_for_user
from records.disclosure import Shown, not_withheld_as_sensitive, visible_entries
from records.documents import DocumentContent, document_read
from records.models import Patient, RecordEntry
from records.sections import Section

NOT_SHOWN = "no such document in this patient's record, or not one this user may see"


class _DocumentNotShown(Exception):
    """Raised inside the door's transaction, so nothing of the allowed access is written; answered as a denial."""

    def __init__(self, patient: Patient, decision: Decision) -> None:
        super().__init__()
        self.patient = patient
        self.decision = decision


@dataclass(frozen=True)
class OpenedDocument:
    """One document as the page shows it: who it is about, where it came from, and what it says."""

    patient_name: str
    nhs_number: str
    birth_date: date | None
    title: str
    # The kind of document as its source codes it ("Discharge summary"), when it says.
    kind: str
    written_at: datetime | None
    status: str
    partner: str
    partner_ods: str
    content: DocumentContent


def _document_visible(patient: Patient, decision: Decision, entry_id: int) -> RecordEntry | None:
    """The entry, when the record page would show it under this decision; otherwise None."""
    return (
        visible_entries(patient, decision, [Section.DOCUMENTS])
        .filter(not_withheld_as_sensitive(decision), pk=entry_id)
        .select_related("organisation")
        .first()
    )


def _document_build(
    patient: Patient, decision: Decision, *, entry_id: int, as_pdf: bool
) -> tuple[OpenedDocument, Shown]:
    entry = _document_visible(patient, decision, entry_id)
    if entry is None:
        raise _DocumentNotShown(patient, decision)
    content = document_read(entry.resource, entry.summary)
    if as_pdf and content.pdf is None:
        raise _DocumentNotShown(patient, decision)
    opened = OpenedDocument(
        patient_name=patient.full_name,
        nhs_number=patient.nhs_number_display,
        birth_date=patient.birth_date,
        title=entry.summary,
        kind=entry.display,
        written_at=entry.effective_at or entry.recorded_at,
        status=entry.status,
        partner=entry.organisation.name,
        partner_ods=entry.organisation.ods_code,
        content=content,
    )
    item = f"{entry.resource_type}/{entry.source_id}"
    shown = Shown(
        # The page names the patient (name, NHS number, date of birth) above the document.
        sections=[Section.DEMOGRAPHICS.value, Section.DOCUMENTS.value],
        partners=[entry.organisation.ods_code],
        item=f"{item} as PDF" if as_pdf else item,
    )
    return opened, shown


def document_open_for_user(
    *,
    user: User,
    public_id: uuid.UUID | str,
    entry_id: int,
    request: HttpRequest | None,
    as_pdf: bool = False,
) -> PatientAccess[OpenedDocument]:
    """Open one document of one patient for this user (its PDF attachment, with `as_pdf`), audited as
    `view-document`: see the module's docstring for what always holds.

    Raises `PatientNotFound` for a patient the user may not see, and for an entry that is missing, another
    patient's, or hidden from them, each audited and committed first.
    """
    asked = f"document entry {entry_id}{' as PDF' if as_pdf else ''}"
    build = partial(_document_build, entry_id=entry_id, as_pdf=as_pdf)
    try:
        return get_patient_for_user(
            user=user,
            public_id=public_id,
            request=request,
            build=build,
            action=AccessEvent.Action.VIEW_DOCUMENT,
            view=asked,
        )
    except _DocumentNotShown as refused:
        access_event_record(
            actor_of(user),
            AccessFacts(
                action=AccessEvent.Action.VIEW_DOCUMENT,
                outcome=AccessEvent.Outcome.DENIED,
                patient_id=refused.patient.pk,
                query=asked,
                basis=refused.decision.basis,
                reason=f"{asked}: {NOT_SHOWN}",
            ),
            context_of(request),
        )
    raise PatientNotFound
