"""The door for the privacy officer's reading of the audit trail: every read of the trail about a patient is decided and
audited here.

Who may: privacy officers, as `consent.policy.may_read_audit` says; nobody else, and a superuser only if acting
under such a role. To everyone else every function here answers `PatientNotFound`, as for a patient not held.

What always holds:
- finding a patient for the report takes an NHS number typed into a POST body, never a URL, and writes a `search`
  event with purpose audit, allowed with the patient, not found, or denied;
- reading a patient's access report writes a `read-audit` event, and downloading it as PDF or CSV an `export`
  event, each with purpose audit, in the same transaction and before the report is read, so the report includes
  its own reading; a refusal's row (naming the patient, when held, so they learn someone tried) is committed
  before `PatientNotFound` is raised;
- the patient is addressed by their opaque public id, checked again on every request;
- reading the change history of who may see what (users, groups, role profiles, roles, care teams) is a
  `read-audit` event too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from auditlog.models import LogEntry
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest

from audit.models import AccessEvent
from audit.services import AccessFacts, access_event_record
from consent.access_report import AccessLine, patient_access_lines
from consent.policy import may_read_audit
from records import nhs_number
from records.access import PatientNotFound, User, actor_of, context_of
from records.models import Patient, patient_survivor

Action = AccessEvent.Action
Outcome = AccessEvent.Outcome
NOT_A_PRIVACY_OFFICER = "user may not read the audit trail"
REPORT_BASIS = "patient access report"


@dataclass(frozen=True)
class PatientAccessReport:
    """One patient's access report as the privacy officer reads it: the patient and every access, newest first."""

    patient: Patient
    lines: list[AccessLine]


def may_read_audit_for_user(user: User) -> None:
    """Nothing, for a privacy officer; `PatientNotFound` for anyone else. For the form, which shows no patient."""
    if not may_read_audit(user):
        raise PatientNotFound


def _record(user: User, request: HttpRequest | None, facts: AccessFacts) -> None:
    access_event_record(actor_of(user), facts, context_of(request))


def _outcome(allowed: bool, patient: Patient | None) -> str:
    if not allowed:
        return Outcome.DENIED
    return Outcome.ALLOWED if patient is not None else Outcome.NOT_FOUND


def _report_reason(allowed: bool, patient: Patient | None, download: str) -> str:
    if not allowed:
        return NOT_A_PRIVACY_OFFICER
    if patient is None:
        return ""
    return f"access report downloaded as {download.upper()}" if download else "access report read"


def access_report_find_for_user(*, user: User, nhs_number_text: str, request: HttpRequest | None) -> Patient:
    """The patient held under this NHS number (the record it was merged into, if any), for their access report.

    Always holds: a `search` event with purpose audit is committed for every attempt, allowed with the patient,
    not found, or denied (naming the patient when held); then `PatientNotFound` for a refusal or a number held by
    nobody. The caller validates the number's form first.
    """
    number = nhs_number.normalise(nhs_number_text)
    allowed = may_read_audit(user)
    with transaction.atomic():
        patient = patient_survivor(Patient.objects.filter(nhs_number=number).first())
        _record(
            user,
            request,
            AccessFacts(
                action=Action.SEARCH,
                purpose=AccessEvent.Purpose.AUDIT,
                outcome=_outcome(allowed, patient),
                patient_id=patient.pk if patient is not None else None,
                query=number,
                basis=REPORT_BASIS if allowed and patient is not None else "",
                reason="" if allowed else NOT_A_PRIVACY_OFFICER,
            ),
        )
    if not allowed or patient is None:
        raise PatientNotFound
    return patient


def access_report_for_user(
    *, user: User, public_id: uuid.UUID | str, request: HttpRequest | None, download: str = ""
) -> PatientAccessReport:
    """One patient's access report: every access to their record and the records merged into it, newest first.

    `download` names the format ("pdf" or "csv") when the report is being downloaded: that is an `export` event;
    reading it on the page is a `read-audit` event. Always holds: the event is written before the trail is read,
    in the same transaction, so the report includes it; a refusal or a patient not held is committed, then
    `PatientNotFound`.
    """
    if download not in ("", "pdf", "csv"):
        raise ValueError(f"{download!r} is not a format the access report is downloaded in.")
    try:
        key: uuid.UUID | None = uuid.UUID(str(public_id))
    except ValueError:
        key = None
    allowed = may_read_audit(user)
    report: PatientAccessReport | None = None
    with transaction.atomic():
        patient = patient_survivor(Patient.objects.filter(public_id=key).first()) if key is not None else None
        _record(
            user,
            request,
            AccessFacts(
                action=Action.EXPORT if download else Action.READ_AUDIT,
                purpose=AccessEvent.Purpose.AUDIT,
                outcome=_outcome(allowed, patient),
                patient_id=patient.pk if patient is not None else None,
                query="" if patient is not None else str(public_id)[:200],
                basis=REPORT_BASIS if allowed and patient is not None else "",
                reason=_report_reason(allowed, patient, download),
            ),
        )
        if allowed and patient is not None:
            report = PatientAccessReport(
                patient=patient, lines=patient_access_lines(patient, newest_first=True)
            )
    # Raised outside the atomic block, so the refusal's audit row is committed, not rolled back with it.
    if report is None:
        raise PatientNotFound
    return report


# The change history of who may see what: django-auditlog's records of the governance models.

# The models whose changes decide who may see what, and no others: none of them holds a patient's data.
GOVERNANCE_MODELS = (
    ("auth", "user"),
    ("auth", "group"),
    ("consent", "staffprofile"),
    ("consent", "role"),
    ("consent", "careteam"),
    ("consent", "careteammembership"),
    ("consent", "feedsupportassignment"),
    ("consent", "sensitivecode"),
)
CHANGES_PER_PAGE = 50


def governance_changes_for_user(
    *, user: User, request: HttpRequest | None, actor: str = "", limit: int = CHANGES_PER_PAGE
) -> list[LogEntry]:
    """The newest changes to users, groups, role profiles, roles, care teams, feed support and the sensitive code
    lists, with who made each, for a privacy officer; only those made by `actor` (a username) when given.

    Always holds: reading the change history is itself a `read-audit` event (purpose audit), written before it is
    read; anyone but a privacy officer gets a denied event committed, then `PatientNotFound`.
    """
    allowed = may_read_audit(user)
    entries: list[LogEntry] | None = None
    with transaction.atomic():
        _record(
            user,
            request,
            AccessFacts(
                action=Action.READ_AUDIT,
                purpose=AccessEvent.Purpose.AUDIT,
                outcome=Outcome.ALLOWED if allowed else Outcome.DENIED,
                query=f"change history{f' by {actor}' if actor else ''}"[:200],
                basis="change history" if allowed else "",
                reason="" if allowed else NOT_A_PRIVACY_OFFICER,
            ),
        )
        if allowed:
            kinds = Q()
            for app_label, model in GOVERNANCE_MODELS:
                kinds |= Q(content_type__app_label=app_label, content_type__model=model)
            found = LogEntry.objects.filter(kinds).select_related("actor", "content_type")
            if actor:
                found = found.filter(actor__username=actor)
            entries = list(found.order_by("-timestamp", "-pk")[:limit])
    if entries is None:
        raise PatientNotFound
    return entries
