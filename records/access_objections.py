"""The door for the IG team's objection cases: every action that touches a patient is decided and audited here.

What always holds:
- only the IG team (`consent.policy.may_manage_patients_rights`) reaches a case: its list, its page, its steps, its
  letter. To anyone else a case and its list do not exist (`CaseNotFound`), and nothing is shown or changed;
- working a case opens no record. Matching a case to a patient is an access to patient data for the purpose
  `patients-rights`: it is decided and written as a `match-patient` `AccessEvent` (allowed, denied or not found,
  with the patient's id when one was found and the NHS number looked for) in the same transaction, before anything
  is returned; a refusal is committed before it is raised. The IG team sees only what the match needs of the
  patient held: name, date of birth and postcode (not even that for a restricted patient), never the record;
- a patient's own GP practice records an objection the patient made to it from the patient's record
  (`consent.policy.may_enter_objection_for`): opening the form and recording the objection are each audited, and
  the case is matched to the patient at once;
- the steps themselves (and whether the case is ready for them) are `consent.objections`'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from auditlog.models import LogEntry
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AccessEvent
from audit.services import AccessFacts, access_event_record
from consent import objections
from consent.letters import objection_letter_pdf
from consent.models import Objection
from consent.policy import may_enter_objection_for, may_manage_patients_rights, staff_profile_of
from records import nhs_number
from records.access import PatientNotFound, User, actor_of, context_of
from records.models import Organisation, Patient, patient_survivor
from records.sections import Section

Action = AccessEvent.Action
Outcome = AccessEvent.Outcome
PATIENTS_RIGHTS = AccessEvent.Purpose.PATIENTS_RIGHTS
# Kept out of the case's change history: a digest for recognising a resubmission, meaningless to a reader.
_HISTORY_HIDDEN = frozenset({"fingerprint"})


class CaseNotFound(Exception):
    """No such case, or none this user may work: deliberately the same thing to the caller."""


class MatchNotFound(Exception):
    """No patient held has the NHS number looked for. The look-up is audited."""


@dataclass(frozen=True)
class MatchCandidate:
    """What the IG team sees of a patient held, to compare with what the requester gave: nothing more."""

    nhs_number: str
    name: str
    birth_date: date | None
    postcode: str
    postcode_withheld: bool


@dataclass(frozen=True)
class HistoryEntry:
    when: datetime
    actor: str
    action: str
    changes: list[tuple[str, str, str]]


@dataclass(frozen=True)
class ObjectionCase:
    """One case as the IG team's page shows it."""

    objection: Objection
    is_overdue: bool
    # The NHS number of the patient the case is matched to, for display; empty while unmatched.
    matched_nhs_number: str
    partner_names: dict[str, str]
    history: list[HistoryEntry]

    @property
    def letter_ready(self) -> bool:
        return self.objection.status in objections.LETTER_STATUSES


@dataclass(frozen=True)
class PatientForEntry:
    """What the GP practice's form shows of the patient the objection is for: who, not their record."""

    public_id: uuid.UUID
    name: str
    nhs_number: str
    birth_date: date | None


def works_objections(user: User) -> bool:
    """Whether the user is one of the IG team, for the portal's link to the cases; it opens no case."""
    return may_manage_patients_rights(user)


def _require_team(user: User) -> None:
    if not may_manage_patients_rights(user):
        raise CaseNotFound


def _case(reference: str, *, lock: bool = False, people: bool = False) -> Objection:
    cases = Objection.objects.select_for_update() if lock else Objection.objects.all()
    if people:
        # Who entered the case and who took each step, for its page, in the one query.
        cases = cases.select_related(
            "entered_by", "entered_for", "identity_checked_by", "decided_by", "informed_by"
        )
    found: Objection | None = cases.filter(reference=reference).first()
    if found is None:
        raise CaseNotFound
    return found


def _held(number: str) -> Patient | None:
    """The patient an NHS number names, following merges to the record that now holds them."""
    return patient_survivor(Patient.objects.filter(nhs_number=number).first())


def _match_event(
    user: User,
    request: HttpRequest | None,
    *,
    outcome: str,
    number: str,
    patient: Patient | None,
    basis: str = "",
    reason: str = "",
) -> AccessEvent:
    return access_event_record(
        actor_of(user),
        AccessFacts(
            action=Action.MATCH_PATIENT,
            outcome=outcome,
            purpose=PATIENTS_RIGHTS,
            patient_id=patient.pk if patient is not None else None,
            query=number,
            basis=basis[:200],
            reason=reason,
            sections_shown=[Section.DEMOGRAPHICS] if outcome == Outcome.ALLOWED else [],
        ),
        context_of(request),
    )


def _refused_match(user: User, request: HttpRequest | None, number: str) -> None:
    """Audit and commit a match the user may not make, naming the patient the number would have found."""
    with transaction.atomic():
        _match_event(
            user,
            request,
            outcome=Outcome.DENIED,
            number=number,
            patient=_held(number),
            reason="only the IG team matches a case to a patient",
        )


def _candidate(patient: Patient) -> MatchCandidate:
    return MatchCandidate(
        nhs_number=patient.nhs_number_display,
        name=patient.full_name,
        birth_date=patient.birth_date,
        # A restricted (S-flagged) patient's whereabouts are shown to no one who does not need them.
        postcode="" if patient.is_restricted else patient.postcode,
        postcode_withheld=patient.is_restricted,
    )


_READY_TO_MATCH = (Objection.Status.RECEIVED, Objection.Status.NOT_FOUND)


def _ready_to_match(objection: Objection) -> None:
    # Refused before the look-up, so a case that needs no match opens no patient.
    if objection.status not in _READY_TO_MATCH:
        raise objections.ObjectionStepRefused(
            f"Verifying identity is not possible: case {objection.reference} is "
            f"{objection.get_status_display().lower()}."
        )


def objection_match_for_user(
    *, user: User, reference: str, nhs_number_text: str, request: HttpRequest | None
) -> MatchCandidate:
    """Look up the patient held under an NHS number, to compare with what case `reference` gave: audited.

    Raises `CaseNotFound` for anyone but the IG team (the refused look-up audited and committed first) and for a
    case that does not exist; `ObjectionStepRefused` for a case that is not waiting for a match (nothing looked up);
    `MatchNotFound` when no patient holds the number (audited as not found). The caller validates the number's
    form first.
    """
    number = nhs_number.normalise(nhs_number_text)
    if not may_manage_patients_rights(user):
        _refused_match(user, request, number)
        raise CaseNotFound
    with transaction.atomic():
        objection = _case(reference)
        _ready_to_match(objection)
        patient = _held(number)
        _match_event(
            user,
            request,
            outcome=Outcome.ALLOWED if patient is not None else Outcome.NOT_FOUND,
            number=number,
            patient=patient,
            basis=f"look-up for objection {objection.reference}",
        )
    if patient is None:
        raise MatchNotFound
    return _candidate(patient)


def _verify(
    user: User, request: HttpRequest | None, objection: Objection, number: str, note: str
) -> Objection | None:
    """Match `objection` to the patient `number` names, auditing it; None (audited as not found) if none is held."""
    patient = _held(number)
    _match_event(
        user,
        request,
        outcome=Outcome.ALLOWED if patient is not None else Outcome.NOT_FOUND,
        number=number,
        patient=patient,
        basis=f"identity verified for objection {objection.reference}" if patient is not None else "",
    )
    if patient is None:
        return None
    return objections.objection_identity_verify(
        objection_id=objection.pk, patient_id=patient.pk, by=_person(user), note=note
    )


def _person(user: User) -> Any:
    # The steps record a signed-in person; the door has already refused anyone else.
    if not getattr(user, "is_authenticated", False):
        raise CaseNotFound
    return user


def objection_identity_verify_for_user(
    *, user: User, reference: str, nhs_number_text: str, note: str, request: HttpRequest | None
) -> Objection:
    """Match case `reference` to the patient held under an NHS number: the requester's identity is verified.

    Always holds as for `objection_match_for_user`; the match's event and the case's change are written in one
    transaction. Raises `MatchNotFound` (audited, nothing changed) when no patient holds the number.
    """
    number = nhs_number.normalise(nhs_number_text)
    if not may_manage_patients_rights(user):
        _refused_match(user, request, number)
        raise CaseNotFound
    with transaction.atomic():
        objection = _case(reference, lock=True)
        _ready_to_match(objection)
        verified = _verify(user, request, objection, number, note)
    if verified is None:
        raise MatchNotFound
    return verified


def objection_identity_not_found_for_user(*, user: User, reference: str, note: str) -> Objection:
    """Record that no patient held matches case `reference`; the note says what was tried."""
    _require_team(user)
    return objections.objection_identity_not_found(
        objection_id=_case(reference).pk, by=_person(user), note=note
    )


def objection_clinical_input_for_user(*, user: User, reference: str, clinician: str, text: str) -> Objection:
    """Record the clinician consulted on case `reference` and their advice."""
    _require_team(user)
    return objections.objection_clinical_input_record(
        objection_id=_case(reference).pk, by=_person(user), clinician=clinician, text=text
    )


def objection_decide_for_user(
    *,
    user: User,
    reference: str,
    outcome: str,
    whole_record: bool,
    sections: Iterable[str],
    from_partners: Iterable[str],
    to_partners: Iterable[str],
    refusal_reason: str,
    note: str,
    break_glass_may_override: bool,
) -> Objection:
    """Decide case `reference` (`consent.objections.objection_decide`)."""
    _require_team(user)
    return objections.objection_decide(
        objection_id=_case(reference).pk,
        by=_person(user),
        outcome=outcome,
        whole_record=whole_record,
        sections=sections,
        from_partners=from_partners,
        to_partners=to_partners,
        refusal_reason=refusal_reason,
        note=note,
        break_glass_may_override=break_glass_may_override,
    )


def objection_inform_for_user(*, user: User, reference: str) -> Objection:
    """Record that the patient was told the outcome of case `reference`."""
    _require_team(user)
    return objections.objection_inform(objection_id=_case(reference).pk, by=_person(user))


def objection_extend_for_user(*, user: User, reference: str, due_at: datetime, reason: str) -> Objection:
    """Move case `reference`'s due date later, for a reason."""
    _require_team(user)
    return objections.objection_extend(
        objection_id=_case(reference).pk, by=_person(user), due_at=due_at, reason=reason
    )


def objection_withdraw_for_user(*, user: User, reference: str, note: str) -> Objection:
    """Record that the patient withdrew the objection of case `reference`; it is no longer enforced."""
    _require_team(user)
    return objections.objection_withdraw(objection_id=_case(reference).pk, by=_person(user), note=note)


def objection_letter_for_user(*, user: User, reference: str) -> tuple[str, bytes]:
    """The outcome letter of case `reference`, as a file name and PDF bytes; `CaseNotFound` while there is no
    outcome to tell."""
    _require_team(user)
    objection = _case(reference)
    if objection.status not in objections.LETTER_STATUSES:
        raise CaseNotFound
    return f"objection-{objection.reference}.pdf", objection_letter_pdf(objection)


# Reading the cases: no patient is opened, so nothing is written to the access trail.


def objection_cases_for_user(*, user: User, status: str = "", overdue_only: bool = False) -> list[Objection]:
    """The cases for the IG team, open first and by due date, each with `is_overdue`; they name no patient."""
    _require_team(user)
    return list(objections.objection_list(status=status, overdue_only=overdue_only))


def objection_for_user(*, user: User, reference: str) -> Objection:
    """Case `reference` alone, for building its forms; it names no patient held."""
    _require_team(user)
    return _case(reference)


def _history(objection: Objection) -> list[HistoryEntry]:
    entries = (
        LogEntry.objects.get_for_object(objection)
        .select_related("actor", "content_type")
        .order_by("timestamp", "pk")
    )
    return [
        HistoryEntry(
            when=entry.timestamp,
            actor=entry.actor.get_username() if entry.actor else "system",
            action=entry.get_action_display(),
            changes=[
                (str(label), str(values[0]), str(values[1]))
                for label, values in entry.changes_display_dict.items()
                if str(label) not in _HISTORY_HIDDEN
            ],
        )
        for entry in entries
    ]


def objection_case_for_user(*, user: User, reference: str) -> ObjectionCase:
    """One case, with everything the IG team's page shows: what was asked and given, each step, the deadline and
    the change history with its actors. Of the patient matched it shows the NHS number only."""
    _require_team(user)
    objection = _case(reference, people=True)
    matched = (
        Patient.objects.filter(pk=objection.patient_id).values_list("nhs_number", flat=True).first()
        if objection.patient_id is not None
        else None
    )
    codes = {
        *objection.scope_from_partners,
        *objection.scope_to_partners,
        *objection.upheld_from_partners,
        *objection.upheld_to_partners,
    }
    return ObjectionCase(
        objection=objection,
        is_overdue=objection.is_open and objection.due_at < timezone.now(),
        matched_nhs_number=nhs_number.display(matched) if matched else "",
        partner_names=dict(Organisation.objects.filter(ods_code__in=codes).values_list("ods_code", "name")),
        history=_history(objection),
    )


# Staff-entered objections: by the IG team, and by the patient's own GP practice from the record.


def _entered_for(user: User) -> int | None:
    profile = staff_profile_of(user)
    return profile.organisation_id if profile is not None else None


def objection_enter_for_user(
    *, user: User, request: HttpRequest | None, fields: dict[str, Any], match_now: bool
) -> tuple[Objection, bool]:
    """Record an objection a patient made by phone, letter or in person, entered by the IG team.

    `fields` are `consent.objections.objection_receive`'s. With `match_now` and an NHS number, the case is matched
    to the patient held under it at once (audited as `objection_identity_verify_for_user`). Returns the case and
    whether it was matched. The same entry sent twice is one case (`objection_receive`).
    """
    _require_team(user)
    with transaction.atomic():
        objection, created = objections.objection_receive(
            **fields, entered_by_id=user.pk, entered_for_id=_entered_for(user)
        )
        if not (created and match_now and fields.get("nhs_number")):
            return objection, objection.patient_id is not None
        verified = _verify(user, request, objection, nhs_number.normalise(fields["nhs_number"]), "")
    return (verified or objection), verified is not None


def _patient_by_public_id(public_id: uuid.UUID | str) -> Patient | None:
    try:
        key = uuid.UUID(str(public_id))
    except ValueError:
        return None
    patient = Patient.objects.select_related("registered_practice").filter(public_id=key).first()
    if patient is not None and patient.merged_into_id is not None:
        return _held(patient.nhs_number)
    return patient


def _practice_decision(
    user: User, public_id: uuid.UUID | str, request: HttpRequest | None, action: str
) -> Patient | None:
    """Ask whether `user` may record an objection for the patient, and audit the answer; the patient or None."""
    patient = _patient_by_public_id(public_id)
    if patient is None:
        access_event_record(
            actor_of(user),
            AccessFacts(
                action=action, outcome=Outcome.NOT_FOUND, purpose=PATIENTS_RIGHTS, query=str(public_id)[:200]
            ),
            context_of(request),
        )
        return None
    decision = may_enter_objection_for(user, patient)
    access_event_record(
        actor_of(user),
        AccessFacts(
            action=action,
            outcome=Outcome.ALLOWED if decision.allowed else Outcome.DENIED,
            purpose=PATIENTS_RIGHTS,
            patient_id=patient.pk,
            basis=decision.basis,
            reason="record an objection the patient made to their GP practice"
            if decision.allowed
            else decision.why_not,
            sections_shown=[Section.DEMOGRAPHICS] if decision.allowed else [],
        ),
        context_of(request),
    )
    return patient if decision.allowed else None


def objection_patient_for_user(
    *, user: User, public_id: uuid.UUID | str, request: HttpRequest | None
) -> PatientForEntry:
    """Open the form for recording an objection for one patient, for their own GP practice: audited as a view of
    the patient's demographics for patients' rights. Raises `PatientNotFound` (audited first) for anyone else."""
    with transaction.atomic():
        patient = _practice_decision(user, public_id, request, Action.VIEW_RECORD)
    if patient is None:
        raise PatientNotFound
    return PatientForEntry(
        public_id=patient.public_id,
        name=patient.full_name,
        nhs_number=patient.nhs_number_display,
        birth_date=patient.birth_date,
    )


def objection_enter_for_patient_for_user(
    *, user: User, public_id: uuid.UUID | str, request: HttpRequest | None, fields: dict[str, Any]
) -> Objection:
    """Record an objection a patient made to their own GP practice, matched to them at once.

    `fields` are `objection_receive`'s, less who the patient is: that is taken from the record. Always holds: the
    decision (`consent.policy.may_enter_objection_for`) is audited as a `match-patient` event in the transaction
    that stores the case; a refusal is committed and raises `PatientNotFound`. `ValueError` (nothing written) for
    a record without a date of birth, which a case needs.
    """
    with transaction.atomic():
        patient = _practice_decision(user, public_id, request, Action.MATCH_PATIENT)
        if patient is not None:
            if patient.birth_date is None:
                raise ValueError(
                    "The record has no date of birth, which the case needs: ask the IG team to enter it."
                )
            objection, created = objections.objection_receive(
                **fields,
                given_name=patient.given_name,
                family_name=patient.family_name,
                birth_date=patient.birth_date,
                nhs_number=patient.nhs_number,
                # A restricted (S-flagged) patient's whereabouts stay on the record, out of the case.
                address="" if patient.is_restricted else patient.address[:300],
                postcode="" if patient.is_restricted else patient.postcode,
                entered_by_id=user.pk,
                entered_for_id=_entered_for(user),
            )
            if created:
                organisation = staff_profile_of(user)
                where = organisation.organisation.name if organisation is not None else "the GP practice"
                objection = objections.objection_identity_verify(
                    objection_id=objection.pk,
                    patient_id=patient.pk,
                    by=_person(user),
                    note=f"Made to the patient's own GP practice, {where}, and entered from the record.",
                )
            return objection
    raise PatientNotFound
