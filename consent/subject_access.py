"""Subject access requests from receipt to fulfilment, the deadline alerts of patients' cases, and the national data
opt-out.

What always holds:
- a request moves only forward: received → identity verified (matched to a patient) → fulfilled; withdrawn from
  any open step. Any other step is refused with `CaseStepRefused`, which says why, and changes nothing;
- a request is due one calendar month after receipt; an extension moves the due date later, never earlier, with a
  reason, and no later than three calendar months after receipt (one month and the two further months the law
  allows for a complex request);
- a request is overdue when, at the moment asked, it is still open and its due date has passed;
- a fulfilled request keeps its access report exactly as sent: a CSV of every access event about the patient;
- an overdue objection or request raises one `CASE_OVERDUE` alert, however often the check runs; the alert names
  the case's reference, never the patient;
- a patient has at most one national data opt-out; recording it again changes nothing.

Nothing here decides who may do these things or writes the access trail: that is the door's
(`records.access_requests`), which asks `consent.policy.may_manage_patients_rights`.
"""

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from auditlog.models import LogEntry
from dateutil.relativedelta import relativedelta
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from audit.models import AccessEvent, Alert
from consent.letters import ICO_CONTACT, LETTER_FONT_FAMILY, letter_font_files
from consent.letters import TEAM as LETTER_TEAM
from consent.models import (
    BreakGlassGrant,
    LegitimateRelationship,
    NationalOptOut,
    Objection,
    SelfClaimedRelationship,
    SubjectAccessRequest,
)
from consent.objections import subject_access_receive
from consent.policy import relationship_provenance
from consent.roles import JobRole
from records import nhs_number
from records.models import Feed, Organisation, Patient, RecordEntry

Status = SubjectAccessRequest.Status
OPEN = (Status.RECEIVED, Status.IDENTITY_VERIFIED)
# One month, and at most two further months for a complex request (UK GDPR article 12(3)).
LONGEST_EXTENSION = relativedelta(months=3)
# Merge chains are short in practice; the bound only guards against a cycle in bad source data.
_MAX_MERGE_HOPS = 10


class CaseStepRefused(ValueError):
    """The step is not possible from where the case stands, or its input is not acceptable; nothing was changed."""


# Receiving and working a request.


def _refuse_unless(condition: bool, message: str) -> None:
    if not condition:
        raise CaseStepRefused(message)


def subject_access_enter(
    *,
    channel: str,
    requester_name: str,
    contact_by: str,
    contact_detail: str,
    nhs_number_text: str = "",
    birth_date: date | None = None,
    entered_by_id: int | None = None,
    received_at: datetime | None = None,
) -> SubjectAccessRequest:
    """Record a subject access request staff took by phone, letter, in person or online, due a calendar month after
    `received_at` (now, if not given).

    Raises `CaseStepRefused`, storing nothing, for a channel or contact method not on the list, a blank or overlong
    name or contact, an NHS number that is not valid, or a birth date or receipt in the future.
    """
    now = timezone.now()
    number = nhs_number.normalise(nhs_number_text)
    _refuse_unless(channel in Objection.Channel.values, f"{channel!r} is not a way a request is received.")
    _refuse_unless(contact_by in Objection.ContactBy.values, f"{contact_by!r} is not a way to contact them.")
    _refuse_unless(bool(requester_name.strip()), "Give the name of the person asking.")
    _refuse_unless(bool(contact_detail.strip()), "Give how to contact the person asking.")
    _refuse_unless(len(requester_name.strip()) <= 200, "A name has 200 characters at most.")
    _refuse_unless(len(contact_detail.strip()) <= 300, "A contact detail has 300 characters at most.")
    _refuse_unless(
        not number or nhs_number.is_valid(number), f"{nhs_number_text!r} is not a valid NHS number."
    )
    _refuse_unless(
        birth_date is None or birth_date <= timezone.localdate(now), "A birth date is not in the future."
    )
    _refuse_unless(received_at is None or received_at <= now, "A request is not received in the future.")
    return subject_access_receive(
        channel=channel,
        requester_name=requester_name.strip(),
        contact_by=contact_by,
        contact_detail=contact_detail.strip(),
        nhs_number=number,
        birth_date=birth_date,
        entered_by_id=entered_by_id,
        received_at=received_at or now,
    )


def _locked(reference: str) -> SubjectAccessRequest:
    """The request, locked until the transaction ends; `SubjectAccessRequest.DoesNotExist` if there is none."""
    return SubjectAccessRequest.objects.select_for_update().get(reference=reference)


def _where(request: SubjectAccessRequest) -> str:
    return f"{request.reference} is {request.get_status_display().lower()}"


def subject_access_get(reference: str) -> SubjectAccessRequest | None:
    return (
        SubjectAccessRequest.objects.select_related("entered_by", "identity_checked_by", "fulfilled_by")
        .filter(reference=reference)
        .first()
    )


def subject_access_step_check(
    reference: str, *, allowed_from: Iterable[str], step: str
) -> SubjectAccessRequest:
    """The request, locked to the end of the caller's transaction, if `step` may be taken from where it stands;
    `CaseStepRefused` otherwise.

    For the door, which checks the step before it reads anything about a patient.
    """
    request = _locked(reference)
    _refuse_unless(request.status in set(allowed_from), f"{_where(request)}: {step}")
    return request


def subject_access_identity_verify(
    *,
    reference: str,
    patient: Patient,
    nhs_number_text: str,
    birth_date: date,
    by_user_id: int | None,
    now: datetime | None = None,
) -> SubjectAccessRequest:
    """Mark a received request's identity as verified, matched to `patient` by the NHS number and birth date given.

    The NHS number and birth date verified are kept on the request. Raises `CaseStepRefused` for a request that is
    not just received.
    """
    with transaction.atomic():
        request = subject_access_step_check(
            reference,
            allowed_from=[Status.RECEIVED],
            step="only a received request has its identity verified.",
        )
        request.status = Status.IDENTITY_VERIFIED
        request.patient = patient
        request.nhs_number = nhs_number.normalise(nhs_number_text)
        request.birth_date = birth_date
        request.identity_checked_at = now or timezone.now()
        request.identity_checked_by_id = by_user_id
        request.save(
            update_fields=[
                "status",
                "patient",
                "nhs_number",
                "birth_date",
                "identity_checked_at",
                "identity_checked_by",
            ]
        )
        return request


def subject_access_latest_due(request: SubjectAccessRequest) -> datetime:
    """The latest a request may be made due: three calendar months after receipt."""
    latest: datetime = request.received_at + LONGEST_EXTENSION
    return latest


def subject_access_extend(*, reference: str, due_on: date, reason: str) -> SubjectAccessRequest:
    """Make an open request due on a later day, at the same time of day it was due, with a reason.

    Raises `CaseStepRefused` for a request that is not open, a blank reason, a day not later than the one it is
    due, or one past `subject_access_latest_due`.
    """
    _refuse_unless(bool(reason.strip()), "Say why the request needs longer.")
    with transaction.atomic():
        request = subject_access_step_check(
            reference, allowed_from=OPEN, step="only an open request is extended."
        )
        current = timezone.localtime(request.due_at)
        _refuse_unless(
            due_on > current.date(),
            f"An extension moves the due date later: {request.reference} is due {current:%-d %B %Y} already.",
        )
        latest = timezone.localtime(subject_access_latest_due(request))
        _refuse_unless(
            due_on <= latest.date(),
            f"The law allows two further months at most: {request.reference} can be due "
            f"no later than {latest:%-d %B %Y}.",
        )
        request.due_at = timezone.make_aware(datetime.combine(due_on, current.time()))
        request.extension_reason = reason.strip()
        request.save(update_fields=["due_at", "extension_reason"])
        return request


def subject_access_fulfil(
    *, reference: str, report: str, by_user_id: int | None, now: datetime | None = None
) -> SubjectAccessRequest:
    """Mark a request whose identity is verified as fulfilled, keeping `report`, the access report sent.

    Raises `CaseStepRefused` for a request in any other step.
    """
    with transaction.atomic():
        request = subject_access_step_check(
            reference,
            allowed_from=[Status.IDENTITY_VERIFIED],
            step="only a request whose identity is verified is fulfilled.",
        )
        request.status = Status.FULFILLED
        request.report = report
        request.fulfilled_at = now or timezone.now()
        request.fulfilled_by_id = by_user_id
        request.save(update_fields=["status", "report", "fulfilled_at", "fulfilled_by"])
        return request


def subject_access_withdraw(*, reference: str, note: str = "") -> SubjectAccessRequest:
    """Mark an open request as withdrawn by the person who made it, with an optional note of what they said.

    Raises `CaseStepRefused` for a request that is fulfilled or withdrawn already.
    """
    with transaction.atomic():
        request = subject_access_step_check(
            reference, allowed_from=OPEN, step="only an open request is withdrawn."
        )
        request.status = Status.WITHDRAWN
        request.withdrawn_at = timezone.now()
        request.withdrawn_note = note.strip()
        request.save(update_fields=["status", "withdrawn_at", "withdrawn_note"])
        return request


def subject_access_is_overdue(request: SubjectAccessRequest, now: datetime | None = None) -> bool:
    return request.status in OPEN and request.due_at < (now or timezone.now())


def subject_access_overdue(now: datetime | None = None) -> QuerySet[SubjectAccessRequest]:
    """Open requests whose due date had passed at `now` (the moment of the call, if not given)."""
    return SubjectAccessRequest.objects.filter(status__in=OPEN, due_at__lt=now or timezone.now())


def subject_access_register() -> QuerySet[SubjectAccessRequest]:
    """Every request: open ones first, soonest due first; then the closed ones, most recently received first."""
    is_open = Q(status__in=OPEN)
    return SubjectAccessRequest.objects.annotate(
        is_closed=Case(When(is_open, then=Value(0)), default=Value(1), output_field=IntegerField()),
        open_due_at=Case(When(is_open, then=F("due_at")), default=None),
    ).order_by("is_closed", F("open_due_at").asc(nulls_last=True), "-received_at", "pk")


# The patient's access report.

REPORT_HEADER = ("When (UTC)", "User", "Job role", "Organisation", "Action", "Purpose", "Outcome", "Basis")
# A spreadsheet would run a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def patient_record_ids(patient: Patient) -> list[int]:
    """The patient's record and every record merged into it (whose accesses are the patient's too)."""
    ids = [patient.pk]
    frontier = [patient.pk]
    for _ in range(_MAX_MERGE_HOPS):
        frontier = [
            pk for pk in Patient.objects.filter(merged_into__in=frontier).values_list("pk", flat=True)
        ]
        frontier = [pk for pk in frontier if pk not in ids]
        if not frontier:
            break
        ids += frontier
    return ids


def _role_words(code: str) -> str:
    if not code:
        return ""
    try:
        return f"{JobRole(code).label} ({code})"
    except ValueError:
        return code


# How a patient is told who looked: the role in everyday words, by organisation kind where it matters.
_ROLE_FOR_PATIENT: dict[str, str] = {
    JobRole.CLINICAL_PRACTITIONER: "A clinician",
    JobRole.NURSE: "A nurse",
    JobRole.HEALTH_PROFESSIONAL: "A health professional",
    JobRole.ADMIN_CLINICAL_SUPPORT: "A receptionist or administrator",
    JobRole.SOCIAL_CARE_PRACTITIONER: "A social worker",
    JobRole.PRIVACY_OFFICER: "A privacy officer",
}
# What was done, as (done, tried to do) for the patient.
_ACTION_FOR_PATIENT: dict[str, tuple[str, str]] = {
    AccessEvent.Action.SEARCH: ("searched for your record", "search for your record"),
    AccessEvent.Action.VIEW_RECORD: ("looked at your record", "look at your record"),
    AccessEvent.Action.VIEW_SECTION: ("looked at part of your record", "look at part of your record"),
    AccessEvent.Action.VIEW_DOCUMENT: (
        "looked at a document in your record",
        "look at a document in your record",
    ),
    AccessEvent.Action.EXPORT: (
        "downloaded information about your record",
        "download information about your record",
    ),
    AccessEvent.Action.DECLARE_RELATIONSHIP: (
        "said they were caring for you, to see your record",
        "say they were caring for you, to see your record",
    ),
    AccessEvent.Action.BREAK_GLASS: (
        "used emergency access to your record",
        "use emergency access to your record",
    ),
    AccessEvent.Action.END_GRANT: ("ended their access to your record", "end their access to your record"),
    AccessEvent.Action.READ_AUDIT: (
        "looked at the list of who has seen your record",
        "look at the list of who has seen your record",
    ),
    AccessEvent.Action.REVEAL: (
        "looked at information a partner sent about you, to fix a problem with it",
        "look at information a partner sent about you",
    ),
    AccessEvent.Action.MATCH_PATIENT: (
        "matched your request to your record",
        "match a request to your record",
    ),
    AccessEvent.Action.OBJECTION_OVERRIDE: (
        "saw information you asked not to be shared, to keep you or someone else safe",
        "see information you asked not to be shared",
    ),
}
_BASIS_FOR_PATIENT: dict[str, str] = {
    LegitimateRelationship.Basis.REGISTERED_PRACTICE: "because you are registered there",
    LegitimateRelationship.Basis.CARE_EVENT: "because you are being cared for there",
    LegitimateRelationship.Basis.CASELOAD: "because you are on one of their caseloads",
    LegitimateRelationship.Basis.REFERRAL: "because you were referred to them",
}
_PURPOSE_FOR_PATIENT: dict[str, str] = {
    AccessEvent.Purpose.AUDIT: "to check that your record is used properly",
    AccessEvent.Purpose.FEED_SUPPORT: "to fix a problem with information sent about you",
    AccessEvent.Purpose.PATIENTS_RIGHTS: "to deal with your request or objection",
}
# The basis `consent.policy.decide` writes: a relationship by id, or a personal grant by reference.
_RELATIONSHIP_BASIS = re.compile(r"^(?P<kind>[a-z-]+):(?P<ods>\w*) relationship (?P<id>\d+)")
_GRANT_BASIS = re.compile(r"^(?P<kind>self-claim|break-glass):(?P<ods>\w*) (?P<reference>\S+)")


@dataclass(frozen=True)
class AccessLine:
    """One access event about a patient, in words: for the privacy officer's page and CSV, and the patient's PDF."""

    event: AccessEvent
    role: str
    organisation_name: str
    organisation: str
    action: str
    purpose: str
    outcome: str
    # Where the basis names a relationship, its provenance; a self-claim or break-glass, its reason.
    basis_words: str
    # For the patient: one sentence, no codes.
    told_to_patient: str


@dataclass(frozen=True)
class _Sources:
    organisations: dict[str, tuple[str, str]]
    relationships: dict[int, LegitimateRelationship]
    grants: dict[str, SelfClaimedRelationship | BreakGlassGrant]


def _sources_for(events: list[AccessEvent]) -> _Sources:
    """What the events' bases name, each kind read in one query, whatever the number of events."""
    relationship_ids = set()
    references = set()
    for event in events:
        if found := _RELATIONSHIP_BASIS.match(event.basis):
            relationship_ids.add(int(found["id"]))
        elif found := _GRANT_BASIS.match(event.basis):
            references.add(found["reference"])
    relationships = LegitimateRelationship.objects.filter(pk__in=relationship_ids).select_related(
        "group__care_team", "source_feed__organisation"
    )
    # Each kind is asked for even when no basis names one, so the queries are the same for every patient.
    grants: dict[str, SelfClaimedRelationship | BreakGlassGrant] = {
        claim.reference: claim for claim in SelfClaimedRelationship.objects.filter(reference__in=references)
    }
    grants.update(
        {glass.reference: glass for glass in BreakGlassGrant.objects.filter(reference__in=references)}
    )
    return _Sources(
        organisations={
            ods: (name, kind)
            for ods, name, kind in Organisation.objects.values_list("ods_code", "name", "kind")
        },
        relationships={relationship.pk: relationship for relationship in relationships},
        grants=grants,
    )


def _basis_words(event: AccessEvent, sources: _Sources) -> tuple[str, str]:
    """The basis in words for staff, and the kind of basis (a relationship basis, or self-claim or break-glass)."""
    if found := _RELATIONSHIP_BASIS.match(event.basis):
        relationship = sources.relationships.get(int(found["id"]))
        if relationship is not None:
            return relationship_provenance(relationship), found["kind"]
        label = dict(LegitimateRelationship.Basis.choices).get(found["kind"], found["kind"])
        return f"{label}; relationship {found['id']}, since replaced", found["kind"]
    if found := _GRANT_BASIS.match(event.basis):
        grant = sources.grants.get(found["reference"])
        described = "Self-claimed relationship" if found["kind"] == "self-claim" else "Break-glass access"
        if grant is None:
            return f"{described} {found['reference']}", found["kind"]
        return (
            f"{described} {grant.reference}: {grant.get_reason_code_display()}: {grant.reason_text}",
            found["kind"],
        )
    return event.basis, ""


def _told_to_patient(event: AccessEvent, sources: _Sources, basis_kind: str) -> str:
    name, kind = sources.organisations.get(event.organisation_ods, ("", ""))
    who = _ROLE_FOR_PATIENT.get(event.job_role, "A member of staff")
    if event.job_role == JobRole.CLINICAL_PRACTITIONER and kind == Organisation.Kind.GP_PRACTICE:
        who = "A GP"
    if name:
        who = f"{who} at {name}"
    done, tried = _ACTION_FOR_PATIENT.get(event.action, ("used your record", "use your record"))
    if event.outcome != AccessEvent.Outcome.ALLOWED:
        return f"{who} tried to {tried}, but was not allowed to."
    found = _GRANT_BASIS.match(event.basis)
    grant = sources.grants.get(found["reference"]) if found else None
    if basis_kind == "self-claim":
        why = " saying they were caring for you"
    elif basis_kind == "break-glass":
        why = " using emergency access"
    else:
        why = f" {_BASIS_FOR_PATIENT.get(basis_kind) or _PURPOSE_FOR_PATIENT.get(event.purpose, '')}".rstrip()
    given = ""
    if grant is not None:
        given = f"{grant.get_reason_code_display()}: {grant.reason_text}"
    elif event.action in (AccessEvent.Action.DECLARE_RELATIONSHIP, AccessEvent.Action.BREAK_GLASS):
        given = event.reason
    sentence = f"{who} {done}{why}."
    return f"{sentence} The reason they gave: {given.rstrip('. ')}." if given else sentence


def patient_access_lines(patient: Patient, *, newest_first: bool = False) -> list[AccessLine]:
    """Every access event about the patient and the records merged into theirs, in words, oldest first (or newest
    first). Events about anyone else are never in it. The organisation is named, the role and action are words,
    and the basis says where a relationship came from or why a grant was made.

    Reading it is reading the audit about a patient: only the door calls it, and audits it.
    """
    order = ("-occurred_at", "-id") if newest_first else ("occurred_at", "id")
    events = list(AccessEvent.objects.filter(patient_id__in=patient_record_ids(patient)).order_by(*order))
    sources = _sources_for(events)
    actions = dict(AccessEvent.Action.choices)
    purposes = dict(AccessEvent.Purpose.choices)
    outcomes = dict(AccessEvent.Outcome.choices)
    lines = []
    for event in events:
        ods = event.organisation_ods
        name = sources.organisations.get(ods, ("", ""))[0]
        basis_words, basis_kind = _basis_words(event, sources)
        lines.append(
            AccessLine(
                event=event,
                role=_role_words(event.job_role),
                organisation_name=name or ods,
                organisation=f"{name} ({ods})" if name else ods,
                action=actions.get(event.action, event.action),
                purpose=purposes.get(event.purpose, event.purpose),
                outcome=outcomes.get(event.outcome, event.outcome),
                basis_words=basis_words,
                told_to_patient=_told_to_patient(event, sources, basis_kind),
            )
        )
    return lines


def _csv_text(lines: Iterable[AccessLine], *, in_words: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_HEADER + (("Basis in words", "Reason") if in_words else ()))
    for line in lines:
        event = line.event
        row = (
            event.occurred_at.astimezone(UTC).isoformat(timespec="seconds"),
            event.username,
            line.role,
            line.organisation,
            line.action,
            line.purpose,
            line.outcome,
            event.basis,
        ) + ((line.basis_words, event.reason) if in_words else ())
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


def patient_access_report(patient: Patient) -> str:
    """Every access event about the patient, oldest first, as CSV: when, who (user, job role, organisation), what
    action, for what purpose, allowed or denied, and on what basis. Events about anyone else are never in it.

    Reading it is reading the audit about a patient: only the door calls it, and audits it.
    """
    return _csv_text(patient_access_lines(patient), in_words=False)


def access_report_csv(lines: Iterable[AccessLine]) -> str:
    """The privacy officer's CSV of the lines: `patient_access_report`'s columns, then the basis in words and the
    reason given."""
    return _csv_text(lines, in_words=True)


def access_report_pdf(patient: Patient, lines: Iterable[AccessLine], *, today: date | None = None) -> bytes:
    """The lines as a PDF a patient can read: dated, addressed to them by name, each access one sentence in plain
    words (who, where, what, why, or that they were refused) with its date and time, no codes.

    Set in the letters' DejaVu Sans (`consent.letters`); raises `LetterFontMissing` without it.
    """
    pdf = FPDF(format="A4")
    for style, path in letter_font_files().items():
        pdf.add_font(LETTER_FONT_FAMILY, style, str(path))
    pdf.set_title("Who has looked at your shared care record")
    pdf.set_author(LETTER_TEAM)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    pdf.set_font(LETTER_FONT_FAMILY, "B", 14)
    pdf.multi_cell(0, 8, "Who has looked at your shared care record", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(LETTER_FONT_FAMILY, size=11)
    name = f"{patient.given_name} {patient.family_name}".strip() or "the patient"
    paragraphs = [
        f"For {name}, made on {_day_words(today or timezone.localdate())} by the {LETTER_TEAM}.",
        "Every time someone searches for, looks at or downloads your shared care record, it is recorded. "
        "This is the full list, newest first, including anyone who tried and was not allowed.",
    ]
    for text in paragraphs:
        pdf.multi_cell(0, 5.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    shown = False
    for line in lines:
        shown = True
        moment = timezone.localtime(line.event.occurred_at)
        pdf.set_font(LETTER_FONT_FAMILY, "B", 11)
        pdf.multi_cell(
            0, 5.5, f"{_day_words(moment.date())} at {moment:%H:%M}", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        pdf.set_font(LETTER_FONT_FAMILY, size=11)
        pdf.multi_cell(0, 5.5, line.told_to_patient, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
    if not shown:
        pdf.multi_cell(0, 5.5, "No one has looked at your record.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.multi_cell(
        0,
        5.5,
        "If you think someone looked at your record who should not have, please tell us and we will look into it. "
        f"You can also complain to the Information Commissioner's Office: {ICO_CONTACT}.",
        align="L",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    return bytes(pdf.output())


def _day_words(moment: date) -> str:
    return f"{moment.day} {moment:%B %Y}"


# The change history of a request, as django-auditlog recorded it.


@dataclass(frozen=True)
class Change:
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    actor: str
    what: str
    changes: list[Change]


# Fields whose values the history does not repeat: the report is long and is downloaded on its own; the patient is
# a record id, shown only as whether the request is matched.
_HISTORY_SUMMARISED = {"report": "access report attached", "patient": "matched to a patient"}
_HISTORY_HIDDEN = {"id"}
_USER_FIELDS = {"entered_by", "identity_checked_by", "fulfilled_by"}
_ACTION_WORDS = {
    LogEntry.Action.CREATE: "Received",
    LogEntry.Action.UPDATE: "Changed",
    LogEntry.Action.DELETE: "Deleted",
}


def _value_words(field_name: str, value: Any, usernames: dict[str, str]) -> str:
    if value in (None, "None", ""):
        return "—"
    if field_name in _HISTORY_SUMMARISED:
        return _HISTORY_SUMMARISED[field_name]
    if field_name in _USER_FIELDS:
        return usernames.get(str(value), "a user no longer held")
    field = SubjectAccessRequest._meta.get_field(field_name)
    if isinstance(field, models.DateTimeField):
        # django-auditlog keeps a date and time as naive UTC text.
        moment = datetime.fromisoformat(str(value))
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return f"{timezone.localtime(moment):%-d %b %Y %H:%M}"
    if isinstance(field, models.DateField):
        return f"{date.fromisoformat(str(value)):%-d %b %Y}"
    choices = dict(field.flatchoices)  # type: ignore[union-attr]
    return str(choices.get(value, value))


_LABELS = {"nhs_number": "NHS number"}
# The model's own order, so every entry of the history lists its fields alike.
_FIELD_ORDER = {field.name: position for position, field in enumerate(SubjectAccessRequest._meta.fields)}


def _field_label(field_name: str) -> str:
    if field_name in _LABELS:
        return _LABELS[field_name]
    field = SubjectAccessRequest._meta.get_field(field_name)
    return str(field.verbose_name) if isinstance(field, models.Field) else field_name


def subject_access_history(request: SubjectAccessRequest) -> list[HistoryLine]:
    """Every change django-auditlog recorded to the request, oldest first, with who made it."""
    entries = list(
        LogEntry.objects.get_for_object(request).select_related("actor").order_by("timestamp", "pk")
    )
    user_ids = {
        str(value)
        for entry in entries
        for name, pair in entry.changes_dict.items()
        if name in _USER_FIELDS
        for value in pair
        if value not in (None, "None", "")
    }
    usernames = {
        str(pk): username
        for pk, username in get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username")
    }
    lines = []
    for entry in entries:
        changes = [
            Change(
                field=_field_label(name),
                before=_value_words(name, before, usernames),
                after=_value_words(name, after, usernames),
            )
            for name, (before, after) in sorted(
                entry.changes_dict.items(), key=lambda item: _FIELD_ORDER.get(item[0], len(_FIELD_ORDER))
            )
            if name not in _HISTORY_HIDDEN
            and _value_words(name, before, usernames) != _value_words(name, after, usernames)
        ]
        lines.append(
            HistoryLine(
                at=entry.timestamp,
                actor=entry.actor.get_username() if entry.actor is not None else "sharedcare",
                what=_ACTION_WORDS.get(entry.action, "Changed"),
                changes=changes,
            )
        )
    return lines


# Deadlines: one alert per overdue case.

C = TypeVar("C", Objection, SubjectAccessRequest)


def _overdue_alert_raise(case: C, kind_words: str, moment: datetime) -> bool:
    """Raise the case's overdue alert unless it has one; the case row is locked so two checks never both raise."""
    with transaction.atomic():
        locked = type(case).objects.select_for_update().filter(pk=case.pk, due_at__lt=moment).first()
        if locked is None or locked.status not in _open_statuses(locked):
            return False
        if Alert.objects.filter(kind=Alert.Kind.CASE_OVERDUE, reference=locked.reference).exists():
            return False
        due = timezone.localtime(locked.due_at)
        Alert.objects.create(
            kind=Alert.Kind.CASE_OVERDUE,
            reference=locked.reference,
            reason=(
                f"{kind_words} {locked.reference} was due on {due:%-d %B %Y} and is still "
                f"{locked.get_status_display().lower()}."
            ),
            raised_at=moment,
        )
        return True


def _open_statuses(case: Objection | SubjectAccessRequest) -> tuple[str, ...]:
    return tuple(Objection.OPEN) if isinstance(case, Objection) else tuple(OPEN)


def case_overdue_alerts_raise(now: datetime | None = None) -> list[str]:
    """Raise one `CASE_OVERDUE` alert for every objection and subject access request that is open and past its due
    date at `now`, and has none yet; return the references alerted.

    Safe to run twice, and at the same time: a case has one overdue alert, ever, however often this runs. The alert
    names the reference, never the patient.
    """
    moment = now or timezone.now()
    alerted = Alert.objects.filter(kind=Alert.Kind.CASE_OVERDUE).values("reference")
    raised = [
        request.reference
        for request in subject_access_overdue(moment).exclude(reference__in=alerted)
        if _overdue_alert_raise(request, "Subject access request", moment)
    ]
    overdue_objections = Objection.objects.filter(status__in=Objection.OPEN, due_at__lt=moment)
    raised += [
        objection.reference
        for objection in overdue_objections.exclude(reference__in=alerted)
        if _overdue_alert_raise(objection, "Objection", moment)
    ]
    return raised


# The national data opt-out.


def patient_matching(nhs_number_text: str, birth_date: date) -> Patient | None:
    """The patient held under this NHS number (or the record it was merged into), if their birth date is this one."""
    patient = Patient.objects.filter(nhs_number=nhs_number.normalise(nhs_number_text)).first()
    hops = 0
    while patient is not None and patient.merged_into_id is not None and hops < _MAX_MERGE_HOPS:
        patient = Patient.objects.filter(pk=patient.merged_into_id).first()
        hops += 1
    if patient is None or patient.birth_date != birth_date:
        return None
    return patient


def national_opt_out_record(
    patient: Patient,
    source: str,
    *,
    source_feed: Feed | None = None,
    recorded_by_id: int | None = None,
    note: str = "",
    recorded_at: datetime | None = None,
) -> tuple[NationalOptOut, bool]:
    """Record that the patient has a national data opt-out; return it and whether it is new.

    What a feed says comes with its feed (`source_feed`), what staff record with who they are (`recorded_by_id`);
    `CaseStepRefused` otherwise, and for a source not on the list. An opt-out already recorded is returned as it is.
    """
    _refuse_unless(source in NationalOptOut.Source.values, f"{source!r} is not a source of an opt-out.")
    _refuse_unless(
        source != NationalOptOut.Source.FEED or source_feed is not None,
        "An opt-out from a feed names its feed.",
    )
    _refuse_unless(
        source != NationalOptOut.Source.STAFF or recorded_by_id is not None,
        "An opt-out recorded by staff names who recorded it.",
    )
    with transaction.atomic():
        opt_out, created = NationalOptOut.objects.get_or_create(
            patient=patient,
            defaults={
                "source": source,
                "source_feed": source_feed,
                "recorded_by_id": recorded_by_id,
                "note": note.strip(),
                "recorded_at": recorded_at or timezone.now(),
            },
        )
    return opt_out, created


def national_opt_out_remove(patient: Patient) -> bool:
    """Remove the patient's national data opt-out; return whether there was one. django-auditlog keeps what it was."""
    opt_out = NationalOptOut.objects.filter(patient=patient).first()
    if opt_out is None:
        return False
    opt_out.delete()
    return True


def national_opt_out_get(opt_out_id: int) -> NationalOptOut | None:
    return NationalOptOut.objects.select_related("patient").filter(pk=opt_out_id).first()


def national_opt_outs() -> QuerySet[NationalOptOut]:
    """Every recorded opt-out with its patient, most recently recorded first."""
    return NationalOptOut.objects.select_related("patient", "source_feed__organisation").order_by(
        "-recorded_at", "-pk"
    )


# National data opt-outs a partner's feed sends, as NHS England's opt-out Consent (profile NDOP-Consent-1, with its
# opt-out source extension): active means the patient has opted out; any other status, or the resource deleted at
# the source, means the opt-out that feed recorded is lifted. An opt-out staff recorded is never lifted by a feed.
NDOP_MARKERS = ("NDOP-Consent", "Extension-NDOP-OptOutSource")


def _is_national_opt_out(resource: dict[str, Any]) -> bool:
    profiles = (resource.get("meta") or {}).get("profile") or []
    extensions = [extension.get("url", "") for extension in resource.get("extension") or []]
    return any(marker in text for marker in NDOP_MARKERS for text in [*profiles, *extensions])


def national_opt_outs_from_run(run_id: int) -> tuple[int, int]:
    """Record or lift the opt-outs an ingest run's Consent resources say; return how many of each.

    Called by the ingest as a run finishes, in its transaction, so an opt-out stands or falls with the run.
    """
    recorded = lifted = 0
    entries = (
        RecordEntry.objects.filter(ingest_run_id=run_id, resource_type="Consent")
        .select_related("patient", "feed")
        .order_by("pk")
    )
    for entry in entries:
        if not _is_national_opt_out(entry.resource):
            continue
        if entry.resource.get("status") == "active" and not entry.is_deleted_at_source:
            recorded += national_opt_out_record(
                entry.patient, NationalOptOut.Source.FEED, source_feed=entry.feed
            )[1]
        else:
            held = NationalOptOut.objects.filter(
                patient=entry.patient, source=NationalOptOut.Source.FEED, source_feed=entry.feed
            )
            lifted += bool(held.delete()[0])
    return recorded, lifted
