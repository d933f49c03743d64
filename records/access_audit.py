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
- reading the change history of who may see what (users, groups, role profiles, roles, care teams, feed support,
  sensitive codes, relationships and grants, objections, restricted flags) is a `read-audit` event too; it names
  a patient only by their opaque public id, never by name or NHS number.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from auditlog.models import LogEntry
from django.apps import apps
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


@dataclass(frozen=True)
class ChangeKind:
    """One kind of thing the change history can be narrowed to: its label and the models it covers."""

    label: str
    models: tuple[tuple[str, str], ...]


# The models whose changes decide who may see what, by kind. A patient's own data is in none of them: an objection's
# and a grant's free text and who the requester says the patient is are masked where auditlog records them
# (consent/apps.py), and a patient's change is only ever their restricted flag (records/ingest/patients.py).
CHANGE_KINDS: dict[str, ChangeKind] = {
    "users": ChangeKind(
        "Users, groups and role profiles",
        (("auth", "user"), ("auth", "group"), ("consent", "staffprofile")),
    ),
    "roles": ChangeKind("Roles", (("consent", "role"),)),
    "care-teams": ChangeKind(
        "Care teams and their members", (("consent", "careteam"), ("consent", "careteammembership"))
    ),
    "feed-support": ChangeKind("Feed support", (("consent", "feedsupportassignment"),)),
    "sensitive-codes": ChangeKind("Sensitive code lists", (("consent", "sensitivecode"),)),
    "relationships": ChangeKind(
        "Relationships and access grants",
        (
            ("consent", "legitimaterelationship"),
            ("consent", "selfclaimedrelationship"),
            ("consent", "breakglassgrant"),
        ),
    ),
    "objections": ChangeKind("Objections", (("consent", "objection"),)),
    "restricted": ChangeKind("Restricted flag", (("records", "patient"),)),
}
GOVERNANCE_MODELS = tuple(model for kind in CHANGE_KINDS.values() for model in kind.models)
CHANGES_PER_PAGE = 50
# The field through which each patient-linked model names its patient.
_PATIENT_FIELDS = {
    ("consent", "legitimaterelationship"): "content_object",
    ("consent", "selfclaimedrelationship"): "content_object",
    ("consent", "breakglassgrant"): "content_object",
    ("consent", "objection"): "patient",
}


@dataclass(frozen=True)
class ChangeLine:
    """One change as the privacy officer reads it: who made it (a user, or the feed and run that derived it), the
    fields changed, and the patient it is about by opaque public id only (None when it is about no patient held)."""

    entry: LogEntry
    by: str
    changes: list[tuple[str, str, str]]
    patient_public_id: uuid.UUID | None


def _key(entry: LogEntry) -> tuple[str, str]:
    return (entry.content_type.app_label, entry.content_type.model)


def _change_by(entry: LogEntry, app_model: tuple[str, str]) -> str:
    if entry.actor is not None:
        return str(entry.actor.get_username())
    data = entry.additional_data if isinstance(entry.additional_data, dict) else {}
    if data.get("feed"):
        verb = "derived by" if app_model in CHANGE_KINDS["relationships"].models else "by"
        return f"{verb} feed {data['feed']}, run {data.get('run_id') or 'not recorded'}"
    return "sharedcare"


def _patients_of(entries: list[LogEntry]) -> dict[int, uuid.UUID]:
    """Entry id -> the public id of the patient it is about, one query per patient-linked model present."""
    wanted: dict[tuple[str, str], dict[int, list[int]]] = {}
    for entry in entries:
        key = (entry.content_type.app_label, entry.content_type.model)
        if (key in _PATIENT_FIELDS or key == ("records", "patient")) and entry.object_id is not None:
            wanted.setdefault(key, {}).setdefault(int(entry.object_id), []).append(entry.pk)
    found: dict[int, uuid.UUID] = {}
    for key, by_object in wanted.items():
        model = apps.get_model(*key)
        path = "public_id" if key == ("records", "patient") else f"{_PATIENT_FIELDS[key]}__public_id"
        for object_id, public_id in model._default_manager.filter(pk__in=by_object).values_list("pk", path):
            for entry_id in by_object[object_id]:
                if public_id is not None:
                    found[entry_id] = public_id
    return found


# Free text kept whole in a case's own history for the team working it, shown here only as changed.
_SHOWN_AS_CHANGED = {("consent", "objection"): {"clinical input", "clinical_input"}}


def _change_value(key: tuple[str, str], field: str, value: object) -> str:
    if field in _SHOWN_AS_CHANGED.get(key, set()) and str(value) not in ("", "None"):
        return "(changed, not shown here)"
    return str(value)


def _change_lines(entries: list[LogEntry]) -> list[ChangeLine]:
    patients = _patients_of(entries)
    return [
        ChangeLine(
            entry=entry,
            by=_change_by(entry, _key(entry)),
            changes=[
                (
                    str(field),
                    _change_value(_key(entry), str(field), values[0]),
                    _change_value(_key(entry), str(field), values[1]),
                )
                for field, values in entry.changes_display_dict.items()
                if field != "fingerprint"
            ],
            patient_public_id=patients.get(entry.pk),
        )
        for entry in entries
    ]


def governance_changes_for_user(
    *,
    user: User,
    request: HttpRequest | None,
    actor: str = "",
    kind: str = "",
    limit: int = CHANGES_PER_PAGE,
) -> list[ChangeLine]:
    """The newest changes to who may see what (users, groups, role profiles, roles, care teams, feed support, the
    sensitive code lists, relationships and access grants, objections, patients' restricted flags), with who made
    each, for a privacy officer; only those made by `actor` (a username) and of `kind` (a key of `CHANGE_KINDS`)
    when given.

    Always holds: reading the change history is itself a `read-audit` event (purpose audit), written before it is
    read; anyone but a privacy officer gets a denied event committed, then `PatientNotFound`. A patient is named
    only by their opaque public id. Raises `ValueError` for a kind that is not in `CHANGE_KINDS`, before anything.
    """
    if kind and kind not in CHANGE_KINDS:
        raise ValueError(f"{kind!r} is not a kind of change.")
    allowed = may_read_audit(user)
    lines: list[ChangeLine] | None = None
    narrowed = "".join([f" of {kind}" if kind else "", f" by {actor}" if actor else ""])
    with transaction.atomic():
        _record(
            user,
            request,
            AccessFacts(
                action=Action.READ_AUDIT,
                purpose=AccessEvent.Purpose.AUDIT,
                outcome=Outcome.ALLOWED if allowed else Outcome.DENIED,
                query=f"change history{narrowed}"[:200],
                basis="change history" if allowed else "",
                reason="" if allowed else NOT_A_PRIVACY_OFFICER,
            ),
        )
        if allowed:
            kinds = Q()
            for app_label, model in CHANGE_KINDS[kind].models if kind else GOVERNANCE_MODELS:
                kinds |= Q(content_type__app_label=app_label, content_type__model=model)
            found = LogEntry.objects.filter(kinds).select_related("actor", "content_type")
            if actor:
                found = found.filter(actor__username=actor)
            lines = _change_lines(list(found.order_by("-timestamp", "-pk")[:limit]))
    if lines is None:
        raise PatientNotFound
    return lines
