"""The one door to patient data.

Every page and API that touches a patient comes through here. The door loads the patient, asks
`consent.policy.decide`, and appends an `AccessEvent` for the answer, allowed or denied, in the same transaction
and before anything is returned. If the audit row cannot be written, the access fails with it. A patient the user
may not see and a patient that does not exist give the caller the same answer: `PatientNotFound`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.http import HttpRequest

from audit.models import AccessEvent
from audit.services import AccessFacts, Actor, RequestContext, access_event_record, request_context
from consent.policy import Action, Decision, decide, staff_profile_of
from records import nhs_number
from records.models import Patient

User = AbstractBaseUser | AnonymousUser
T = TypeVar("T")


class PatientNotFound(Exception):
    """No such patient, or none this user may see: deliberately the same thing to the caller."""


# Merge chains are short in practice; the bound only guards against a cycle in bad source data.
_MAX_MERGE_HOPS = 10


def _survivor(patient: Patient | None) -> Patient | None:
    """Follow merges (HL7 A40, FHIR replaced-by) to the record that now holds the patient's data."""
    hops = 0
    while patient is not None and patient.merged_into_id is not None and hops < _MAX_MERGE_HOPS:
        patient = (
            Patient.objects.select_related("registered_practice").filter(pk=patient.merged_into_id).first()
        )
        hops += 1
    return patient


@dataclass(frozen=True)
class Shown:
    """What a page is about to show, for the audit row."""

    sections: list[str] = field(default_factory=list)
    partners: list[str] = field(default_factory=list)
    withheld: str = ""


@dataclass(frozen=True)
class PatientAccess(Generic[T]):
    patient: Patient
    decision: Decision
    content: T
    event: AccessEvent


def actor_of(user: User) -> Actor:
    profile = staff_profile_of(user)
    user_id = user.pk if getattr(user, "is_authenticated", False) else None
    return Actor(
        user_id=user_id,
        username=user.get_username() if user_id is not None else "",
        job_role=profile.job_role if profile else "",
        organisation_ods=profile.organisation.ods_code if profile else "",
    )


def context_of(request: HttpRequest | None) -> RequestContext:
    return request_context(request)


def patient_search_for_user(*, user: User, nhs_number_text: str, request: HttpRequest | None) -> Patient:
    """Find a patient by NHS number for this user, auditing the search whatever its outcome.

    Raises `PatientNotFound` for a number that matches nobody and for a patient the user may not see.
    The caller validates the number's form first; the door audits only well-formed searches.
    """
    number = nhs_number.normalise(nhs_number_text)
    with transaction.atomic():
        patient = _survivor(
            Patient.objects.select_related("registered_practice").filter(nhs_number=number).first()
        )
        decision = decide(user, patient, Action.SEARCH) if patient is not None else None
        if patient is None:
            outcome = AccessEvent.Outcome.NOT_FOUND
        elif decision is not None and decision.allowed:
            outcome = AccessEvent.Outcome.ALLOWED
        else:
            outcome = AccessEvent.Outcome.DENIED
        access_event_record(
            actor_of(user),
            AccessFacts(
                action=AccessEvent.Action.SEARCH,
                outcome=outcome,
                patient_id=patient.pk if patient is not None else None,
                query=number,
                basis=decision.basis if decision else "",
                reason=decision.why_not if decision else "",
            ),
            context_of(request),
        )
    if patient is None or decision is None or not decision.allowed:
        raise PatientNotFound
    return patient


def get_patient_for_user(
    *,
    user: User,
    public_id: uuid.UUID | str,
    request: HttpRequest | None,
    build: Callable[[Patient, Decision], tuple[T, Shown]],
    action: str = Action.VIEW_RECORD,
) -> PatientAccess[T]:
    """Open one patient for this user: decide, build what the page will show, audit, then return.

    `build` receives the patient and the decision and returns the page content plus a description of what it
    shows; it runs only when access is allowed, and its description lands in the audit row. Raises
    `PatientNotFound` when the patient does not exist or access is denied; a denial is audited first.
    """
    try:
        key = uuid.UUID(str(public_id))
    except ValueError:
        key = None
    with transaction.atomic():
        found = (
            Patient.objects.select_related("registered_practice").filter(public_id=key).first()
            if key
            else None
        )
        patient = _survivor(found)
        if patient is None:
            access_event_record(
                actor_of(user),
                AccessFacts(action=action, outcome=AccessEvent.Outcome.NOT_FOUND, query=str(public_id)[:200]),
                context_of(request),
            )
        else:
            decision = decide(user, patient, action)
            if not decision.allowed:
                access_event_record(
                    actor_of(user),
                    AccessFacts(
                        action=action,
                        outcome=AccessEvent.Outcome.DENIED,
                        patient_id=patient.pk,
                        reason=decision.why_not,
                    ),
                    context_of(request),
                )
            else:
                content, shown = build(patient, decision)
                event = access_event_record(
                    actor_of(user),
                    AccessFacts(
                        action=action,
                        outcome=AccessEvent.Outcome.ALLOWED,
                        patient_id=patient.pk,
                        basis=decision.basis,
                        sections_shown=shown.sections,
                        partners_shown=shown.partners,
                        withheld=shown.withheld,
                    ),
                    context_of(request),
                )
                return PatientAccess(patient=patient, decision=decision, content=content, event=event)
    # Raised outside the atomic block, so the denial's audit row is committed, not rolled back with it.
    raise PatientNotFound
