"""Subject access requests from receipt to fulfilment, and the deadline alerts of patients' cases (the access
report a request is fulfilled with is `consent.access_report`; opt-outs are `consent.opt_outs`).

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

Nothing here decides who may do these things or writes the access trail: that is the door's
(`records.access_requests`), which asks `consent.policy.may_manage_patients_rights`.
"""

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

from audit.models import Alert
from consent.models import (
    Objection,
    SubjectAccessRequest,
)
from consent.objections import subject_access_receive
from records import nhs_number
from records.models import Patient

Status = SubjectAccessRequest.Status
OPEN = (Status.RECEIVED, Status.IDENTITY_VERIFIED)
# One month, and at most two further months for a complex request (UK GDPR article 12(3)).
LONGEST_EXTENSION = relativedelta(months=3)


class CaseStepRefused(ValueError):
    """The step is not possible from where the case stands, or its input is not acceptable; nothing was changed."""


# Receiving and working a request.


def refuse_unless(condition: bool, message: str) -> None:
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
    refuse_unless(channel in Objection.Channel.values, f"{channel!r} is not a way a request is received.")
    refuse_unless(contact_by in Objection.ContactBy.values, f"{contact_by!r} is not a way to contact them.")
    refuse_unless(bool(requester_name.strip()), "Give the name of the person asking.")
    refuse_unless(bool(contact_detail.strip()), "Give how to contact the person asking.")
    refuse_unless(len(requester_name.strip()) <= 200, "A name has 200 characters at most.")
    refuse_unless(len(contact_detail.strip()) <= 300, "A contact detail has 300 characters at most.")
    refuse_unless(
        not number or nhs_number.is_valid(number), f"{nhs_number_text!r} is not a valid NHS number."
    )
    refuse_unless(
        birth_date is None or birth_date <= timezone.localdate(now), "A birth date is not in the future."
    )
    refuse_unless(received_at is None or received_at <= now, "A request is not received in the future.")
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
    refuse_unless(request.status in set(allowed_from), f"{_where(request)}: {step}")
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
    refuse_unless(bool(reason.strip()), "Say why the request needs longer.")
    with transaction.atomic():
        request = subject_access_step_check(
            reference, allowed_from=OPEN, step="only an open request is extended."
        )
        current = timezone.localtime(request.due_at)
        refuse_unless(
            due_on > current.date(),
            f"An extension moves the due date later: {request.reference} is due {current:%-d %B %Y} already.",
        )
        latest = timezone.localtime(subject_access_latest_due(request))
        refuse_unless(
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
