"""Patients' rights as cases: objections to sharing and subject access requests, from receipt to their end.

What always holds:
- a case is named by a reference that says nothing about the patient (e.g. "OB-7QK2M9ZD"), with no letters a
  patient could misread on a phone (no 0/O, 1/I/L);
- a case is due one calendar month after receipt (the 31st of a shorter month gives its last day), and an
  extension moves the due date with a reason;
- the same submission sent again within `RESUBMIT_WINDOW` is recognised by its fingerprint and not stored twice;
- nothing here says whether a patient exists: a case is matched to a patient only by the IG team (or, for an
  objection a patient made to their own GP practice, by that practice), through `records.access_objections`;
- an objection moves only along its workflow: received → identity verified (matched to a patient) or not found →
  under review (clinical input) → upheld, partly upheld or not upheld → patient informed; withdrawn at any time,
  after which it is no longer enforced. A step its case is not ready for is refused with `ObjectionStepRefused`
  and bad values with `ValueError`, and in both cases nothing is changed;
- each step is one save of the locked row, inside one transaction, with its actor named to django-auditlog, so the
  case's change history says who did what and when; the step's own fields (`identity_checked_by`, `decided_by`,
  `informed_by`...) say it too where the model has them;
- a decided scope is never wider than what was asked: upheld is all of it, partly upheld a part of it;
- an extension only moves the due date later, for a reason, and never past three calendar months after receipt
  (one month and the two further months the law allows for a complex case);
- a case is overdue while it is open and its due date has passed, by the clock at the moment of asking.
"""

import hashlib
import json
import secrets
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from auditlog.context import auditlog_value, set_actor
from dateutil.relativedelta import relativedelta
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from consent.models import Objection, SubjectAccessRequest
from records.models import Organisation
from records.sections import CLINICAL_SECTIONS, Section
from sharedcare.advisory_locks import submission_lock

OBJECTION_PREFIX = "OB-"
SUBJECT_ACCESS_PREFIX = "SAR-"
# Letters and digits a patient cannot misread when typing a reference from a letter or a phone screen.
_REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_REFERENCE_LENGTH = 8
# A submission identical to one received this recently is the same submission sent twice (a double tap, a retry).
RESUBMIT_WINDOW = timedelta(minutes=30)


def case_reference_new(prefix: str) -> str:
    """A fresh, random case reference such as "OB-7QK2M9ZD"."""
    return prefix + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(_REFERENCE_LENGTH))


def calendar_month_after(moment: datetime) -> datetime:
    """One calendar month after `moment`, as the law counts it: 31 January gives 28 (or 29) February."""
    later: datetime = moment + relativedelta(months=1)
    return later


def _fingerprint(fields: dict[str, Any]) -> str:
    def normal(value: Any) -> Any:
        if isinstance(value, str):
            return " ".join(value.split()).casefold()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, list | tuple | set | frozenset):
            return sorted(normal(item) for item in value)
        return value

    text = json.dumps({key: normal(value) for key, value in sorted(fields.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def objection_receive(
    *,
    channel: str,
    given_name: str,
    family_name: str,
    birth_date: date,
    contact_by: str,
    contact_detail: str,
    nhs_number: str = "",
    address: str = "",
    postcode: str = "",
    on_behalf: str = Objection.OnBehalf.SELF,
    requester_name: str = "",
    reason_text: str = "",
    scope_whole_record: bool = False,
    scope_sections: Iterable[str] = (),
    scope_from_partners: Iterable[str] = (),
    scope_to_partners: Iterable[str] = (),
    entered_by_id: int | None = None,
    entered_for_id: int | None = None,
    received_at: datetime | None = None,
) -> tuple[Objection, bool]:
    """Record an objection as received, due one calendar month later; or, for the same submission sent again
    within `RESUBMIT_WINDOW`, the one already stored. Returns the objection and whether it is new.

    Validation of what a person typed is the form's; this stores what it is given.
    """
    # Demographics and the GP practice identify the patient to whoever cares for them: only a whole-record objection
    # withholds them, so a case never asks for them as sections (it would be upheld and enforce nothing).
    not_clinical = sorted(set(scope_sections) - {section.value for section in CLINICAL_SECTIONS})
    if not_clinical:
        raise ValueError(f"Only clinical sections are withheld by section, not {', '.join(not_clinical)}.")
    received = received_at or timezone.now()
    fields: dict[str, Any] = {
        "channel": channel,
        "given_name": given_name,
        "family_name": family_name,
        "birth_date": birth_date,
        "nhs_number": nhs_number,
        "address": address,
        "postcode": postcode,
        "contact_by": contact_by,
        "contact_detail": contact_detail,
        "on_behalf": on_behalf,
        "requester_name": requester_name,
        "reason_text": reason_text,
        "scope_whole_record": scope_whole_record,
        "scope_sections": sorted(set(scope_sections)),
        "scope_from_partners": sorted(set(scope_from_partners)),
        "scope_to_partners": sorted(set(scope_to_partners)),
    }
    fingerprint = _fingerprint(fields)
    with transaction.atomic():
        # Serialise receipts of one fingerprint, so two copies arriving together still make one case.
        submission_lock(fingerprint)
        earlier = (
            Objection.objects.filter(fingerprint=fingerprint, received_at__gte=received - RESUBMIT_WINDOW)
            .order_by("pk")
            .first()
        )
        if earlier is not None:
            return earlier, False
        objection = Objection.objects.create(
            reference=case_reference_new(OBJECTION_PREFIX),
            received_at=received,
            due_at=calendar_month_after(received),
            fingerprint=fingerprint,
            entered_by_id=entered_by_id,
            entered_for_id=entered_for_id,
            **fields,
        )
        return objection, True


def subject_access_receive(
    *,
    channel: str,
    requester_name: str,
    contact_by: str,
    contact_detail: str,
    nhs_number: str = "",
    birth_date: date | None = None,
    entered_by_id: int | None = None,
    received_at: datetime | None = None,
) -> SubjectAccessRequest:
    """Record a subject access request as received, due one calendar month later."""
    received = received_at or timezone.now()
    return SubjectAccessRequest.objects.create(
        reference=case_reference_new(SUBJECT_ACCESS_PREFIX),
        channel=channel,
        requester_name=requester_name,
        contact_by=contact_by,
        contact_detail=contact_detail,
        nhs_number=nhs_number,
        birth_date=birth_date,
        received_at=received,
        due_at=calendar_month_after(received),
        entered_by_id=entered_by_id,
    )


# The objection's workflow: the IG team's steps, each refused unless the case is ready for it.

# One month, and the two further months UK GDPR (Article 12(3)) allows for a complex request.
LONGEST_EXTENSION_MONTHS = 3
_NOTE_MAX = 5000
Status = Objection.Status
DECIDED = (Status.UPHELD, Status.PARTLY_UPHELD, Status.NOT_UPHELD)
# The outcomes a patient is told of by letter: a decision, or that no record matched the details they gave.
LETTER_STATUSES = (*DECIDED, Status.NOT_FOUND)


class ObjectionStepRefused(Exception):
    """The case is not in a state where this step can be taken; nothing was changed."""


@contextmanager
def _change_actor(user: AbstractBaseUser) -> Iterator[None]:
    """Name `user` as the actor of the change-log entries written inside, then give back the enclosing context.

    A web request has its actor from AuditlogMiddleware already; a service called from a shell, a task or a test
    does not. auditlog's `set_actor` drops the enclosing context when it ends, so it is put back.
    """
    enclosing = auditlog_value.get(None)
    try:
        with set_actor(user):
            yield
    finally:
        if enclosing is not None:
            auditlog_value.set(enclosing)


def _locked(objection_id: int) -> Objection:
    objection: Objection = Objection.objects.select_for_update().get(pk=objection_id)
    return objection


def _require(objection: Objection, step: str, states: Collection[str]) -> None:
    if objection.status not in states:
        raise ObjectionStepRefused(
            f"{step} is not possible: case {objection.reference} is {objection.get_status_display().lower()}."
        )


def _text(value: str, what: str, *, required: bool = True) -> str:
    text = value.strip()
    if required and not text:
        raise ValueError(f"{what} is needed.")
    if len(text) > _NOTE_MAX:
        raise ValueError(f"{what} is too long: {_NOTE_MAX} characters at most.")
    return text


def _save(objection: Objection, by: AbstractBaseUser, fields: list[str]) -> Objection:
    with _change_actor(by):
        # One save of the fields the step changed: django-auditlog sees exactly those changes.
        objection.save(update_fields=fields)
    return objection


def objection_identity_verify(
    *, objection_id: int, patient_id: int, by: AbstractBaseUser, note: str = "", now: datetime | None = None
) -> Objection:
    """Record that the requester is the patient `patient_id`: the case moves to identity verified.

    From received, or from not found when the requester has since given details that match. The caller (the door,
    `records.access_objections`) has found the patient and audited the match.
    """
    with transaction.atomic():
        objection = _locked(objection_id)
        _require(objection, "Verifying identity", (Status.RECEIVED, Status.NOT_FOUND))
        objection.identity_note = _text(note, "A note on how identity was checked", required=False)
        objection.patient_id = patient_id
        objection.status = Status.IDENTITY_VERIFIED
        objection.identity_checked_at = now or timezone.now()
        objection.identity_checked_by_id = by.pk
        return _save(
            objection,
            by,
            ["identity_note", "patient", "status", "identity_checked_at", "identity_checked_by"],
        )


def objection_identity_not_found(
    *, objection_id: int, by: AbstractBaseUser, note: str, now: datetime | None = None
) -> Objection:
    """Record that no patient we hold matches the details given; the note says what was tried."""
    with transaction.atomic():
        objection = _locked(objection_id)
        _require(objection, "Recording that no patient matched", (Status.RECEIVED,))
        objection.identity_note = _text(note, "A note of what was tried")
        objection.status = Status.NOT_FOUND
        objection.identity_checked_at = now or timezone.now()
        objection.identity_checked_by_id = by.pk
        return _save(objection, by, ["identity_note", "status", "identity_checked_at", "identity_checked_by"])


def objection_clinical_input_record(
    *, objection_id: int, by: AbstractBaseUser, clinician: str, text: str, now: datetime | None = None
) -> Objection:
    """Record the clinician consulted and what they advised: the case is under review.

    May be recorded again while the case is under review (a second opinion); the change history keeps the first.
    """
    with transaction.atomic():
        objection = _locked(objection_id)
        _require(objection, "Recording clinical input", (Status.IDENTITY_VERIFIED, Status.UNDER_REVIEW))
        objection.clinical_input_by = _text(clinician, "The clinician consulted")[:200]
        objection.clinical_input = _text(text, "What the clinician advised")
        objection.clinical_input_at = now or timezone.now()
        objection.status = Status.UNDER_REVIEW
        return _save(objection, by, ["clinical_input_by", "clinical_input", "clinical_input_at", "status"])


def _asked(objection: Objection) -> tuple[bool, set[str], set[str], set[str]]:
    return (
        objection.scope_whole_record,
        set(objection.scope_sections),
        set(objection.scope_from_partners),
        set(objection.scope_to_partners),
    )


def _within_asked(
    objection: Objection,
    whole_record: bool,
    sections: set[str],
    from_partners: set[str],
    to_partners: set[str],
) -> None:
    asked_whole, asked_sections, asked_from, asked_to = _asked(objection)
    if not (whole_record or sections or from_partners or to_partners):
        raise ValueError("A partly upheld objection upholds some of what was asked: choose which parts.")
    if asked_whole:
        # The whole record covers every section and every partner; any part of it is within what was asked.
        if whole_record:
            raise ValueError("Upholding the whole record is all that was asked: the objection is upheld.")
        unknown_sections = sections - set(Section)
        known = set(
            Organisation.objects.filter(ods_code__in=from_partners | to_partners).values_list(
                "ods_code", flat=True
            )
        )
        unknown = unknown_sections | ((from_partners | to_partners) - known)
        if unknown:
            raise ValueError(f"These are not sections or partners: {', '.join(sorted(unknown))}.")
        return
    if whole_record:
        raise ValueError("The patient did not object to sharing the whole record.")
    wider = (sections - asked_sections) | (from_partners - asked_from) | (to_partners - asked_to)
    if wider:
        raise ValueError(f"These were not asked for: {', '.join(sorted(wider))}.")
    if (sections, from_partners, to_partners) == (asked_sections, asked_from, asked_to):
        raise ValueError("That is all that was asked: the objection is upheld, not partly upheld.")


def objection_decide(
    *,
    objection_id: int,
    by: AbstractBaseUser,
    outcome: str,
    whole_record: bool = False,
    sections: Iterable[str] = (),
    from_partners: Iterable[str] = (),
    to_partners: Iterable[str] = (),
    refusal_reason: str = "",
    note: str = "",
    break_glass_may_override: bool = False,
    now: datetime | None = None,
) -> Objection:
    """Decide a case under review: upheld (all that was asked), partly upheld (the part given, within what was
    asked) or not upheld (with a refusal reason).

    Always holds: only a case under review is decided, once; the upheld scope is what `consent.policy.decide`
    enforces from now on, and is empty for a case not upheld; a refusal reason is given for a case not upheld and
    may be given for the part of a partly upheld case that was refused, never for one upheld in full; whether a
    break-glass may set the objection aside is said only of a case upheld in whole or in part.
    """
    chosen = (bool(whole_record), set(sections), set(from_partners), set(to_partners))
    reason = Objection.RefusalReason(refusal_reason) if refusal_reason else ""
    with transaction.atomic():
        objection = _locked(objection_id)
        _require(objection, "Deciding", (Status.UNDER_REVIEW,))
        if outcome == Status.UPHELD:
            if any(chosen):
                raise ValueError("An upheld objection upholds all that was asked: choose no parts.")
            if reason:
                raise ValueError("An upheld objection has no refusal reason.")
            chosen = _asked(objection)
        elif outcome == Status.PARTLY_UPHELD:
            _within_asked(objection, *chosen)
        elif outcome == Status.NOT_UPHELD:
            if any(chosen):
                raise ValueError("An objection not upheld upholds nothing: choose no parts.")
            if not reason:
                raise ValueError("Say why the objection is not upheld: choose a reason.")
            if break_glass_may_override:
                raise ValueError("Only an upheld objection can be set aside by a break-glass.")
        else:
            raise ValueError("The outcome must be upheld, partly upheld or not upheld.")
        objection.upheld_whole_record = chosen[0]
        objection.upheld_sections = sorted(chosen[1])
        objection.upheld_from_partners = sorted(chosen[2])
        objection.upheld_to_partners = sorted(chosen[3])
        objection.refusal_reason = reason
        objection.decision_note = _text(note, "The decision note", required=False)
        objection.break_glass_may_override = break_glass_may_override
        objection.status = outcome
        objection.decided_at = now or timezone.now()
        objection.decided_by_id = by.pk
        return _save(
            objection,
            by,
            [
                "upheld_whole_record",
                "upheld_sections",
                "upheld_from_partners",
                "upheld_to_partners",
                "refusal_reason",
                "decision_note",
                "break_glass_may_override",
                "status",
                "decided_at",
                "decided_by",
            ],
        )


def objection_inform(*, objection_id: int, by: AbstractBaseUser, now: datetime | None = None) -> Objection:
    """Record that the patient was told the outcome (decided, or no matching record), once."""
    with transaction.atomic():
        objection = _locked(objection_id)
        _require(objection, "Recording that the patient was told", LETTER_STATUSES)
        if objection.informed_at is not None:
            raise ObjectionStepRefused(
                f"The patient was told on {timezone.localtime(objection.informed_at):%d %B %Y}."
            )
        objection.informed_at = now or timezone.now()
        objection.informed_by_id = by.pk
        return _save(objection, by, ["informed_at", "informed_by"])


def objection_withdraw(
    *, objection_id: int, by: AbstractBaseUser, note: str, now: datetime | None = None
) -> Objection:
    """Record that the patient withdrew the objection, at any stage: from this moment it is no longer enforced.

    The decision and its scope stay on the case as the history of what held until now.
    """
    with transaction.atomic():
        objection = _locked(objection_id)
        _require(objection, "Withdrawing", tuple(set(Status) - {Status.WITHDRAWN}))
        objection.withdrawn_note = _text(note, "A note of how the patient withdrew")
        objection.withdrawn_at = now or timezone.now()
        objection.status = Status.WITHDRAWN
        return _save(objection, by, ["withdrawn_note", "withdrawn_at", "status"])


def objection_extend(
    *, objection_id: int, by: AbstractBaseUser, due_at: datetime, reason: str, now: datetime | None = None
) -> Objection:
    """Move an open case's due date later, for a reason, within `LONGEST_EXTENSION_MONTHS` of receipt."""
    moment = now or timezone.now()
    with transaction.atomic():
        objection = _locked(objection_id)
        _require(objection, "Extending", Objection.OPEN)
        text = _text(reason, "The reason for the extension")
        if due_at <= objection.due_at:
            raise ValueError("An extension moves the due date later than it is now.")
        if due_at <= moment:
            raise ValueError("The new due date has passed already.")
        latest = objection.received_at + relativedelta(months=LONGEST_EXTENSION_MONTHS)
        if due_at > latest:
            raise ValueError(
                f"A case is due at the latest {LONGEST_EXTENSION_MONTHS} months after receipt, "
                f"{timezone.localtime(latest):%d %B %Y}."
            )
        objection.due_at = due_at
        objection.extension_reason = text
        return _save(objection, by, ["due_at", "extension_reason"])


# Reads.


def _overdue(now: datetime) -> Q:
    return Q(status__in=Objection.OPEN, due_at__lt=now)


def objections_overdue(now: datetime | None = None) -> QuerySet[Objection]:
    """Open cases whose due date has passed, by the clock at the moment of asking; the most overdue first."""
    return Objection.objects.filter(_overdue(now or timezone.now())).order_by("due_at", "pk")


def objection_list(
    *, status: str = "", overdue_only: bool = False, now: datetime | None = None
) -> QuerySet[Objection]:
    """The cases, open ones first and each group by due date, each with `is_overdue`; filtered by status, or to
    the overdue ones."""
    moment = now or timezone.now()
    cases = Objection.objects.annotate(
        open_first=Case(
            When(status__in=Objection.OPEN, then=Value(0)), default=Value(1), output_field=IntegerField()
        ),
        is_overdue=Case(When(_overdue(moment), then=Value(True)), default=Value(False)),
    )
    if status:
        cases = cases.filter(status=Status(status))
    if overdue_only:
        cases = cases.filter(_overdue(moment))
    return cases.order_by("open_first", "due_at", "pk")
