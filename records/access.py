"""The one door to patient data.

Every page, API and back-office view that touches a patient comes through here. The door loads the patient, asks
`consent.policy.decide`, and appends an `AccessEvent` for the answer, allowed or denied, in the same transaction
and before anything is returned. If the audit row cannot be written, the access fails with it. A patient the user
may not see and a patient that does not exist give the caller the same answer: `PatientNotFound`.

Two purposes come through it: direct care (`get_patient_for_user`, `patient_search_for_user`) and feed support,
the back office reading what a partner sent to fix its feed (`feed_support_open`, `feed_support_search`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.models import AccessEvent
from audit.services import AccessFacts, Actor, RequestContext, access_event_record, request_context
from consent.models import StaffProfile
from consent.policy import (
    Action,
    Decision,
    decide,
    feed_support_decide,
    staff_profile_of,
    supported_organisations,
)
from records import nhs_number
from records.disclosure import Shown
from records.models import Organisation, Patient

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


def signed_in_profile(user: User) -> StaffProfile | None:
    """The signed-in user's organisation and role, for a page's greeting; it opens no patient data."""
    return staff_profile_of(user)


# Feed support: the back office reading what partners sent (quarantined payloads, error texts) to fix a feed.


def _held_patient_id(number: str) -> int | None:
    """The patient an NHS number names, when we hold them, so their own access report shows this access."""
    if not number:
        return None
    patient = _survivor(Patient.objects.filter(nhs_number=nhs_number.normalise(number)).first())
    return patient.pk if patient is not None else None


def feed_support_open(
    *,
    user: User,
    request: HttpRequest | None,
    organisation: Organisation | None,
    action: str,
    what: str,
    nhs_number_text: str = "",
) -> Decision:
    """Open something one partner's feed sent, for feed support: decide, audit, then answer.

    `organisation` is the partner whose feed sent it; `what` names it for the audit row ("quarantined record 12");
    `nhs_number_text` is the NHS number it names, if any. Always holds: an `AccessEvent` with purpose feed-support,
    allowed or denied, is committed before the decision is returned, and if it cannot be written the access fails
    with it. The caller shows what was sent only when the decision allows it, and otherwise answers as it would
    for something that does not exist.
    """
    with transaction.atomic():
        decision = feed_support_decide(user, organisation, action)
        _feed_support_event(user, request, action, decision, what, _held_patient_id(nhs_number_text))
    return decision


def feed_support_search(
    *, user: User, request: HttpRequest | None, nhs_number_text: str
) -> QuerySet[Organisation]:
    """Search what partners sent for an NHS number, for feed support: the partners whose records may be listed.

    Always holds: the search is audited with its number, allowed or denied, before the answer is returned; a user
    who may support no partner gets no partners, so the search finds nothing. The caller validates the number's
    form first.
    """
    number = nhs_number.normalise(nhs_number_text)
    with transaction.atomic():
        partners = supported_organisations(user, Action.SEARCH)
        decision = (
            Decision(
                allowed=True, basis="feed-support:" + ",".join(partners.values_list("ods_code", flat=True))
            )
            if partners.exists()
            else Decision(allowed=False, why_not="user supports no partner's feeds")
        )
        _feed_support_event(
            user, request, Action.SEARCH, decision, "search by NHS number", _held_patient_id(number), number
        )
    return partners


def feed_support_partners(user: User) -> QuerySet[Organisation]:
    """The partners whose feed data (quarantined records) this back-office user may list; no patient is opened."""
    return supported_organisations(user)


def _feed_support_event(
    user: User,
    request: HttpRequest | None,
    action: str,
    decision: Decision,
    what: str,
    patient_id: int | None,
    query: str = "",
) -> AccessEvent:
    return access_event_record(
        actor_of(user),
        AccessFacts(
            action=action,
            outcome=AccessEvent.Outcome.ALLOWED if decision.allowed else AccessEvent.Outcome.DENIED,
            purpose=AccessEvent.Purpose.FEED_SUPPORT,
            patient_id=patient_id,
            query=query,
            basis=decision.basis[:200],
            reason=f"{what}: {decision.why_not}" if decision.why_not else what,
        ),
        context_of(request),
    )
