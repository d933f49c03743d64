"""The door for subject access requests and national data opt-outs: every action that touches a patient is decided
and audited here.

Who may: the information-governance team, as `consent.policy.may_manage_patients_rights` says; nobody else, and a
superuser only if granted it. To everyone else every function here answers `PatientNotFound`, as for a case that
does not exist, and changes nothing.

What always holds:
- the three actions that touch a patient are each decided and written as an `AccessEvent` with purpose
  patients-rights in the same transaction as what they do, allowed, refused or not found, before anything is
  returned; a refusal's row is committed before `PatientNotFound` is raised:
  matching a request to a patient (`match-patient`), generating or downloading the patient's access report, which
  is reading the audit about them (`export`), and recording or removing a national data opt-out (`match-patient`);
  listing the patients with an opt-out writes one `search` event per patient shown;
- the register, a request's page and its steps that read no patient (entering, extending, withdrawing) are decided
  the same way but name no patient, so they write no access event; django-auditlog records each change with its
  actor;
- a step the case cannot take raises `CaseStepRefused` before any patient is read, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from django.core.paginator import Page, Paginator
from django.db import transaction
from django.http import HttpRequest

from audit.models import AccessEvent
from audit.services import AccessFacts, access_event_record
from consent.access_report import patient_access_report
from consent.models import NationalOptOut, SubjectAccessRequest
from consent.opt_outs import (
    national_opt_out_get,
    national_opt_out_record,
    national_opt_out_remove,
    national_opt_outs,
    patient_matching,
)
from consent.policy import may_manage_patients_rights
from consent.subject_access import (
    OPEN,
    CaseStepRefused,
    HistoryLine,
    subject_access_enter,
    subject_access_extend,
    subject_access_fulfil,
    subject_access_get,
    subject_access_history,
    subject_access_identity_verify,
    subject_access_is_overdue,
    subject_access_latest_due,
    subject_access_register,
    subject_access_step_check,
    subject_access_withdraw,
)
from records import nhs_number
from records.access import PatientNotFound, User, actor_of, context_of
from records.models import Patient

T = TypeVar("T")
Action = AccessEvent.Action
Outcome = AccessEvent.Outcome
PATIENTS_RIGHTS = AccessEvent.Purpose.PATIENTS_RIGHTS
OPT_OUTS_PER_PAGE = 25
REQUESTS_PER_PAGE = 50
NOT_THE_TEAM = "user is not in the information-governance team"


class IdentityNotMatched(Exception):
    """No patient held here has the NHS number and birth date given; the attempt is audited, nothing else changed."""


def patients_rights_team_only(user: User) -> None:
    """Nothing, for a member of the IG team; `PatientNotFound` for anyone else. For a page that shows no case yet."""
    if not may_manage_patients_rights(user):
        raise PatientNotFound


def _event(
    user: User,
    request: HttpRequest | None,
    *,
    action: str,
    outcome: str,
    patient: Patient | None = None,
    query: str = "",
    basis: str = "",
    reason: str = "",
) -> AccessEvent:
    return access_event_record(
        actor_of(user),
        AccessFacts(
            action=action,
            outcome=outcome,
            purpose=PATIENTS_RIGHTS,
            patient_id=patient.pk if patient is not None else None,
            query=query[:200],
            basis=basis[:200],
            reason=reason[:500],
        ),
        context_of(request),
    )


# The register and one request's page: case data, no patient read.


@dataclass(frozen=True)
class Paged(Generic[T]):
    """One page of a list: its rows, and the page for the links to the others."""

    rows: list[T]
    page: Page[Any]


@dataclass(frozen=True)
class RegisterRow:
    request: SubjectAccessRequest
    is_open: bool
    is_overdue: bool


def subject_access_register_for_user(user: User, page_number: str | int | None = 1) -> Paged[RegisterRow]:
    """One page of the register, open requests first (soonest due first), each marked if overdue now.

    It names the person who asked, as they gave their name, and no patient held here.
    """
    patients_rights_team_only(user)
    page = Paginator(subject_access_register(), REQUESTS_PER_PAGE).get_page(page_number)
    rows = [
        RegisterRow(request=case, is_open=case.status in OPEN, is_overdue=subject_access_is_overdue(case))
        for case in page.object_list
    ]
    return Paged(rows=rows, page=page)


def subject_access_enter_for_user(
    *,
    user: User,
    channel: str,
    requester_name: str,
    contact_by: str,
    contact_detail: str,
    nhs_number_text: str = "",
    birth_date: date | None = None,
    received_at: datetime | None = None,
) -> SubjectAccessRequest:
    """Record a request a member of the team took; `CaseStepRefused` (nothing stored) for input not acceptable."""
    patients_rights_team_only(user)
    return subject_access_enter(
        channel=channel,
        requester_name=requester_name,
        contact_by=contact_by,
        contact_detail=contact_detail,
        nhs_number_text=nhs_number_text,
        birth_date=birth_date,
        entered_by_id=user.pk,
        received_at=received_at,
    )


@dataclass(frozen=True)
class SubjectAccessCase:
    """One request as the team works it: its steps open now, its deadline, and its change history."""

    request: SubjectAccessRequest
    is_open: bool
    is_overdue: bool
    awaits_identity: bool
    awaits_fulfilment: bool
    is_fulfilled: bool
    latest_due: datetime
    # As the person asking gave it (or as verified), shown 3 3 4.
    nhs_number_shown: str
    history: list[HistoryLine]


def subject_access_open_for_user(*, user: User, reference: str) -> SubjectAccessCase:
    """One request's page. It reads no patient: whether the request is matched, not to whom."""
    patients_rights_team_only(user)
    case = subject_access_get(reference)
    if case is None:
        raise PatientNotFound
    return SubjectAccessCase(
        request=case,
        is_open=case.status in OPEN,
        is_overdue=subject_access_is_overdue(case),
        awaits_identity=case.status == SubjectAccessRequest.Status.RECEIVED,
        awaits_fulfilment=case.status == SubjectAccessRequest.Status.IDENTITY_VERIFIED,
        is_fulfilled=case.status == SubjectAccessRequest.Status.FULFILLED,
        latest_due=subject_access_latest_due(case),
        nhs_number_shown=nhs_number.display(case.nhs_number) if case.nhs_number else "",
        history=subject_access_history(case),
    )


def _existing(reference: str) -> None:
    if subject_access_get(reference) is None:
        raise PatientNotFound


def subject_access_extend_for_user(
    *, user: User, reference: str, due_on: date, reason: str
) -> SubjectAccessRequest:
    """Make an open request due on a later day, with a reason (`consent.subject_access.subject_access_extend`)."""
    patients_rights_team_only(user)
    _existing(reference)
    return subject_access_extend(reference=reference, due_on=due_on, reason=reason)


def subject_access_withdraw_for_user(*, user: User, reference: str, note: str) -> SubjectAccessRequest:
    """Withdraw an open request, as the person who made it asked."""
    patients_rights_team_only(user)
    _existing(reference)
    return subject_access_withdraw(reference=reference, note=note)


# The steps that touch a patient: matching, and the access report.


def subject_access_verify_for_user(
    *, user: User, reference: str, nhs_number_text: str, birth_date: date, request: HttpRequest | None
) -> SubjectAccessRequest:
    """Verify a received request's identity: match it to the patient held under this NHS number with this birth
    date.

    Always holds: a `match-patient` event is committed for every attempt, allowed with the patient matched, not found
    (naming no patient) when nobody held matches both, or denied for anyone outside the team; then
    `IdentityNotMatched` or `PatientNotFound` is raised. A request that is not just received raises
    `CaseStepRefused` before any patient is looked for.
    """
    allowed = may_manage_patients_rights(user)
    found = allowed and subject_access_get(reference) is not None
    matched: SubjectAccessRequest | None = None
    with transaction.atomic():
        if not allowed:
            _event(
                user,
                request,
                action=Action.MATCH_PATIENT,
                outcome=Outcome.DENIED,
                query=reference,
                reason=NOT_THE_TEAM,
            )
        elif not found:
            _event(
                user,
                request,
                action=Action.MATCH_PATIENT,
                outcome=Outcome.NOT_FOUND,
                query=reference,
                reason="no such subject access request",
            )
        else:
            subject_access_step_check(
                reference,
                allowed_from=[SubjectAccessRequest.Status.RECEIVED],
                step="only a received request has its identity verified.",
            )
            patient = patient_matching(nhs_number_text, birth_date)
            _event(
                user,
                request,
                action=Action.MATCH_PATIENT,
                outcome=Outcome.ALLOWED if patient is not None else Outcome.NOT_FOUND,
                patient=patient,
                query=reference,
                basis=f"subject access request {reference}",
                reason="" if patient is not None else "no patient held has this NHS number and birth date",
            )
            if patient is not None:
                matched = subject_access_identity_verify(
                    reference=reference,
                    patient=patient,
                    nhs_number_text=nhs_number_text,
                    birth_date=birth_date,
                    by_user_id=user.pk,
                )
    # Raised outside the atomic block, so the attempt's audit row is committed, not rolled back with it.
    if not found:
        raise PatientNotFound
    if matched is None:
        raise IdentityNotMatched
    return matched


@dataclass(frozen=True)
class AccessReport:
    reference: str
    csv: str


def subject_access_fulfil_for_user(
    *, user: User, reference: str, request: HttpRequest | None
) -> AccessReport:
    """Fulfil a request whose identity is verified: generate the patient's access report, keep it on the request as
    sent, and return it.

    Always holds: generating it is reading the audit about the patient, so an `export` event naming the patient is
    written first, in the same transaction, and the report includes it; a refusal or a missing request is audited
    and committed, then raises `PatientNotFound`; a request in another step raises `CaseStepRefused`, with nothing
    written.
    """
    allowed = may_manage_patients_rights(user)
    report: AccessReport | None = None
    with transaction.atomic():
        if not allowed:
            _event(
                user,
                request,
                action=Action.EXPORT,
                outcome=Outcome.DENIED,
                query=reference,
                reason=NOT_THE_TEAM,
            )
        elif subject_access_get(reference) is None:
            _event(
                user,
                request,
                action=Action.EXPORT,
                outcome=Outcome.NOT_FOUND,
                query=reference,
                reason="no such subject access request",
            )
        else:
            case = subject_access_step_check(
                reference,
                allowed_from=[SubjectAccessRequest.Status.IDENTITY_VERIFIED],
                step="only a request whose identity is verified is fulfilled.",
            )
            patient = case.patient
            # A verified request is matched (subject_access_identity_verify).
            if patient is None:
                raise RuntimeError("invariant: patient is not None")
            _event(
                user,
                request,
                action=Action.EXPORT,
                outcome=Outcome.ALLOWED,
                patient=patient,
                query=reference,
                basis=f"subject access request {reference}",
                reason="access report generated to fulfil the request",
            )
            text = patient_access_report(patient)
            subject_access_fulfil(reference=reference, report=text, by_user_id=user.pk)
            report = AccessReport(reference=reference, csv=text)
    if report is None:
        raise PatientNotFound
    return report


def subject_access_report_for_user(
    *, user: User, reference: str, request: HttpRequest | None
) -> AccessReport:
    """The access report a fulfilled request was sent, exactly as sent, downloaded again.

    Always holds: an `export` event naming the patient is committed first, or, for anyone outside the team or a
    request with no report, a denied or not-found event, then `PatientNotFound`.
    """
    allowed = may_manage_patients_rights(user)
    with transaction.atomic():
        case = subject_access_get(reference) if allowed else None
        sent = case is not None and case.status == SubjectAccessRequest.Status.FULFILLED
        _event(
            user,
            request,
            action=Action.EXPORT,
            outcome=Outcome.ALLOWED if sent else Outcome.NOT_FOUND if allowed else Outcome.DENIED,
            patient=case.patient if sent and case is not None else None,
            query=reference,
            basis=f"subject access request {reference}" if sent else "",
            reason="access report as sent, downloaded again" if sent else "" if allowed else NOT_THE_TEAM,
        )
    if not sent or case is None:
        raise PatientNotFound
    return AccessReport(reference=reference, csv=case.report)


# The national data opt-out.


@dataclass(frozen=True)
class OptOutRow:
    opt_out: NationalOptOut
    nhs_number_shown: str
    source: str


def national_opt_outs_for_user(
    *, user: User, request: HttpRequest | None, page_number: str | int | None = 1
) -> Paged[OptOutRow]:
    """One page of the patients with a national data opt-out, by NHS number, most recently recorded first.

    Always holds: one `search` event per patient shown, naming them, is written before the page is returned; anyone
    outside the team gets a denied event and `PatientNotFound`.
    """
    if not may_manage_patients_rights(user):
        _event(
            user,
            request,
            action=Action.SEARCH,
            outcome=Outcome.DENIED,
            query="national data opt-outs",
            reason=NOT_THE_TEAM,
        )
        raise PatientNotFound
    with transaction.atomic():
        page = Paginator(national_opt_outs(), OPT_OUTS_PER_PAGE).get_page(page_number)
        rows = []
        for opt_out in page.object_list:
            _event(
                user,
                request,
                action=Action.SEARCH,
                outcome=Outcome.ALLOWED,
                patient=opt_out.patient,
                query="national data opt-outs",
                basis="national data opt-out list",
            )
            source = opt_out.get_source_display()
            if opt_out.source_feed is not None:
                feed = opt_out.source_feed
                source = f"{source}: {feed.name} ({feed.organisation.ods_code})"
            rows.append(
                OptOutRow(opt_out=opt_out, nhs_number_shown=opt_out.patient.nhs_number_display, source=source)
            )
    return Paged(rows=rows, page=page)


def national_opt_out_record_for_user(
    *, user: User, nhs_number_text: str, birth_date: date, note: str, request: HttpRequest | None
) -> tuple[NationalOptOut, bool]:
    """Record a national data opt-out the patient told the team of, for the patient held under this NHS number with
    this birth date; return it and whether it is new.

    Always holds: a `match-patient` event is committed for every attempt, allowed with the patient, not found when
    nobody held matches both (then `IdentityNotMatched`), or denied for anyone outside the team (then
    `PatientNotFound`).
    """
    allowed = may_manage_patients_rights(user)
    recorded: tuple[NationalOptOut, bool] | None = None
    with transaction.atomic():
        patient = patient_matching(nhs_number_text, birth_date) if allowed else None
        _event(
            user,
            request,
            action=Action.MATCH_PATIENT,
            outcome=Outcome.ALLOWED
            if patient is not None
            else Outcome.NOT_FOUND
            if allowed
            else Outcome.DENIED,
            patient=patient,
            basis="national data opt-out" if patient is not None else "",
            reason=(
                "national data opt-out recorded"
                if patient is not None
                else "no patient held has this NHS number and birth date"
                if allowed
                else NOT_THE_TEAM
            ),
        )
        if patient is not None:
            recorded = national_opt_out_record(
                patient, NationalOptOut.Source.STAFF, recorded_by_id=user.pk, note=note
            )
    if not allowed:
        raise PatientNotFound
    if recorded is None:
        raise IdentityNotMatched
    return recorded


def national_opt_out_remove_for_user(
    *, user: User, opt_out_id: int, reason: str, request: HttpRequest | None
) -> None:
    """Remove a patient's national data opt-out, with the reason (the patient changed their choice, or it was
    recorded in error).

    Always holds: a `match-patient` event naming the patient and the reason is written in the same transaction as
    the removal; anyone outside the team, or an opt-out that is not there, gets a denied or not-found event,
    committed, then `PatientNotFound`.
    """
    allowed = may_manage_patients_rights(user)
    if allowed and not reason.strip():
        raise CaseStepRefused("Say why the opt-out is removed.")
    with transaction.atomic():
        opt_out = national_opt_out_get(opt_out_id) if allowed else None
        _event(
            user,
            request,
            action=Action.MATCH_PATIENT,
            outcome=Outcome.ALLOWED
            if opt_out is not None
            else Outcome.NOT_FOUND
            if allowed
            else Outcome.DENIED,
            patient=opt_out.patient if opt_out is not None else None,
            query="" if opt_out is not None else f"national data opt-out {opt_out_id}",
            basis="national data opt-out" if opt_out is not None else "",
            reason=f"national data opt-out removed: {reason.strip()}"
            if opt_out is not None
            else ""
            if allowed
            else NOT_THE_TEAM,
        )
        if opt_out is not None:
            national_opt_out_remove(opt_out.patient)
    if opt_out is None:
        raise PatientNotFound
