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
from datetime import datetime
from typing import Generic, TypeVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.alerts import (
    Reviewer,
    alert_get,
    alert_queue,
    alert_raise,
    alert_raise_once,
    alert_review,
    alert_user_events,
)
from audit.models import AccessEvent, Alert
from audit.services import AccessFacts, Actor, RequestContext, access_event_record, request_context
from consent.grants import break_glass_create, break_glass_current, grant_end, self_claim_create
from consent.models import StaffProfile
from consent.policy import (
    SELECTED_PROFILE_SESSION_KEY,
    Action,
    Decision,
    break_glass_decide,
    decide,
    feed_support_decide,
    may_review_alerts,
    self_claim_decide,
    staff_profile_of,
    staff_profiles_of,
    supported_organisations,
)
from records import nhs_number
from records.disclosure import Shown
from records.models import Organisation, Patient, patient_survivor

User = AbstractBaseUser | AnonymousUser
T = TypeVar("T")


class PatientNotFound(Exception):
    """No such patient, or none this user may see: deliberately the same thing to the caller."""


class RelationshipNeeded(PatientNotFound):
    """The search found the patient, the user has no relationship with them, and their role may make one.

    A `PatientNotFound` to every caller that does not ask for more. It carries only what the user may be offered:
    the record's opaque id and, for each kind of access their role may give itself, its longest time in hours (0:
    not offered); nothing about the patient.
    """

    def __init__(
        self, public_id: uuid.UUID, *, self_claim_max_hours: int, break_glass_max_hours: int
    ) -> None:
        super().__init__()
        self.public_id = public_id
        self.self_claim_max_hours = self_claim_max_hours
        self.break_glass_max_hours = break_glass_max_hours


class RecordWithheld(PatientNotFound):
    """The user holds a relationship or grant with the patient, but the patient's upheld objection (or national
    data opt-out, where the deployment hides direct care by it) withholds the whole record from them.

    A `PatientNotFound` to every caller that does not ask for more. A caller that does tells the user plainly that
    the patient has asked for their record not to be shared: this user would otherwise see it, and a clinician who
    believes there is no record is a clinical-safety hazard. It carries the record's opaque id and the longest
    break-glass the user's role may make, in hours (0: none), since a break-glass for safeguarding sets aside an
    objection whose decision allows it; nothing else about the patient, and nothing about the objection.
    """

    def __init__(self, public_id: uuid.UUID, *, break_glass_max_hours: int) -> None:
        super().__init__()
        self.public_id = public_id
        self.break_glass_max_hours = break_glass_max_hours


def _withheld(user: User, patient: Patient) -> RecordWithheld:
    glass = break_glass_decide(user, patient)
    return RecordWithheld(patient.public_id, break_glass_max_hours=glass.max_hours if glass.allowed else 0)


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

    Raises `PatientNotFound` for a number that matches nobody and for a patient the user may not see; for a
    patient refused only for want of a relationship, to a user whose role may declare one or break the glass, the
    `PatientNotFound` is a `RelationshipNeeded`; for a patient whose choice withholds the whole record from a user
    who would otherwise see it, a `RecordWithheld`. The caller validates the number's form first; the door audits
    only well-formed searches.
    """
    number = nhs_number.normalise(nhs_number_text)
    with transaction.atomic():
        patient = patient_survivor(
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
    if patient is None or decision is None:
        raise PatientNotFound
    if decision.withholds_whole_record:
        raise _withheld(user, patient)
    if not decision.allowed and (decision.may_self_claim or decision.may_break_glass):
        claim = self_claim_decide(user, patient)
        glass = break_glass_decide(user, patient)
        raise RelationshipNeeded(
            patient.public_id,
            self_claim_max_hours=claim.max_hours if claim.allowed else 0,
            break_glass_max_hours=glass.max_hours if glass.allowed else 0,
        )
    if not decision.allowed:
        raise PatientNotFound
    return patient


def get_patient_for_user(
    *,
    user: User,
    public_id: uuid.UUID | str,
    request: HttpRequest | None,
    build: Callable[[Patient, Decision], tuple[T, Shown]],
    action: str = Action.VIEW_RECORD,
    export: str = "",
    view: str = "",
) -> PatientAccess[T]:
    """Open one patient for this user: decide, build what the page will show, audit, then return.

    `export` names how what is shown leaves the screen ("print"): the access is decided as `action`, since it
    shows the same thing, and audited as an `export` event whose query and reason name the export. `view` names
    another page of the same record on screen ("timeline"): decided and audited as `action`, its query and reason
    naming the view.

    `build` receives the patient and the decision and returns the page content plus a description of what it
    shows; it runs only when access is allowed, and its description lands in the audit row (its `item`, when it
    opens one item of the record, as the row's query and reason). Raises
    `PatientNotFound` when the patient does not exist or access is denied (a `RecordWithheld` when the patient's
    choice alone withholds the record); a denial is audited first. When the access sets an objection aside (a
    break-glass for safeguarding, where the objection's decision allows it), a second, `objection-override`
    event follows the view's in the same transaction, and the grant's first such access raises an alert naming
    the grant's reference; if either cannot be written, nothing is shown.
    """
    try:
        key = uuid.UUID(str(public_id))
    except ValueError:
        key = None
    refusal: PatientNotFound = PatientNotFound()
    recorded = AccessEvent.Action.EXPORT if export else action
    named = export or view
    with transaction.atomic():
        found = (
            Patient.objects.select_related("registered_practice").filter(public_id=key).first()
            if key
            else None
        )
        patient = patient_survivor(found)
        if patient is None:
            access_event_record(
                actor_of(user),
                AccessFacts(
                    action=recorded,
                    outcome=AccessEvent.Outcome.NOT_FOUND,
                    query=str(public_id)[:200],
                    reason=named,
                ),
                context_of(request),
            )
        else:
            decision = decide(user, patient, action)
            if not decision.allowed:
                access_event_record(
                    actor_of(user),
                    AccessFacts(
                        action=recorded,
                        outcome=AccessEvent.Outcome.DENIED,
                        patient_id=patient.pk,
                        query=named,
                        reason=f"{named}: {decision.why_not}" if named else decision.why_not,
                    ),
                    context_of(request),
                )
                if decision.withholds_whole_record:
                    refusal = _withheld(user, patient)
            else:
                content, shown = build(patient, decision)
                event = access_event_record(
                    actor_of(user),
                    AccessFacts(
                        action=recorded,
                        outcome=AccessEvent.Outcome.ALLOWED,
                        patient_id=patient.pk,
                        query=(shown.item or named)[:200],
                        reason=shown.item or named,
                        basis=decision.basis,
                        sections_shown=shown.sections,
                        partners_shown=shown.partners,
                        withheld=shown.withheld,
                    ),
                    context_of(request),
                )
                if decision.objection_overridden:
                    _objection_override_record(user, request, patient, decision, shown)
                return PatientAccess(patient=patient, decision=decision, content=content, event=event)
    # Raised outside the atomic block, so the denial's audit row is committed, not rolled back with it.
    raise refusal


def _objection_override_record(
    user: User, request: HttpRequest | None, patient: Patient, decision: Decision, shown: Shown
) -> AccessEvent:
    """The louder record of an access that sets an objection aside: its own event, and an alert for the grant."""
    actor = actor_of(user)
    reason = (
        f"{decision.provenance}; sets aside the patient's upheld objection "
        f"{', '.join(decision.overridden_objections)}"
    )
    event = access_event_record(
        actor,
        AccessFacts(
            action=AccessEvent.Action.OBJECTION_OVERRIDE,
            outcome=AccessEvent.Outcome.ALLOWED,
            patient_id=patient.pk,
            basis=decision.basis,
            reason=reason,
            sections_shown=shown.sections,
            partners_shown=shown.partners,
            withheld=shown.withheld,
        ),
        context_of(request),
    )
    alert_raise_once(
        kind=Alert.Kind.OBJECTION_OVERRIDE,
        reference=decision.grant_reference,
        actor=actor,
        patient_id=patient.pk,
        reason=reason,
        event=event,
    )
    return event


def signed_in_profile(user: User) -> StaffProfile | None:
    """The signed-in user's organisation and role, for a page's greeting; it opens no patient data."""
    return staff_profile_of(user)


# Feed support: the back office reading what partners sent (quarantined payloads, error texts) to fix a feed.


def _held_patient_id(number: str) -> int | None:
    """The patient an NHS number names, when we hold them, so their own access report shows this access."""
    if not number:
        return None
    patient = patient_survivor(Patient.objects.filter(nhs_number=nhs_number.normalise(number)).first())
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


# Personal grants: a user who has no relationship with a patient gives themselves access, for a reason and a time.


@dataclass(frozen=True)
class GrantMade:
    """A self-claim or break-glass just made: its reference, when it ends, and where the record now opens."""

    reference: str
    valid_until: datetime
    public_id: uuid.UUID


def _patient_by_public_id(public_id: uuid.UUID | str) -> Patient | None:
    try:
        key = uuid.UUID(str(public_id))
    except ValueError:
        return None
    return patient_survivor(
        Patient.objects.select_related("registered_practice").filter(public_id=key).first()
    )


def _grant_for_user(
    *,
    user: User,
    public_id: uuid.UUID | str,
    request: HttpRequest | None,
    break_glass: bool,
    reason_code: str,
    reason_text: str,
    hours: int,
) -> GrantMade:
    action = AccessEvent.Action.BREAK_GLASS if break_glass else AccessEvent.Action.DECLARE_RELATIONSHIP
    with transaction.atomic():
        patient = _patient_by_public_id(public_id)
        if patient is None:
            access_event_record(
                actor_of(user),
                AccessFacts(action=action, outcome=AccessEvent.Outcome.NOT_FOUND, query=str(public_id)[:200]),
                context_of(request),
            )
        else:
            standing = break_glass_decide(user, patient) if break_glass else self_claim_decide(user, patient)
            if not standing.allowed or standing.profile is None:
                access_event_record(
                    actor_of(user),
                    AccessFacts(
                        action=action,
                        outcome=AccessEvent.Outcome.DENIED,
                        patient_id=patient.pk,
                        reason=standing.why_not,
                    ),
                    context_of(request),
                )
            else:
                create = break_glass_create if break_glass else self_claim_create
                grant = create(
                    profile=standing.profile,
                    patient=patient,
                    reason_code=reason_code,
                    reason_text=reason_text,
                    hours=hours,
                    max_hours=standing.max_hours,
                )
                actor = actor_of(user)
                reason = f"{grant.get_reason_code_display()}: {grant.reason_text}"
                event = access_event_record(
                    actor,
                    AccessFacts(
                        action=action,
                        outcome=AccessEvent.Outcome.ALLOWED,
                        patient_id=patient.pk,
                        basis=f"{grant.reference} until {grant.valid_until.isoformat(timespec='seconds')}",
                        reason=reason,
                    ),
                    context_of(request),
                )
                alert_raise(
                    kind=Alert.Kind.BREAK_GLASS if break_glass else Alert.Kind.SELF_CLAIM,
                    reference=grant.reference,
                    actor=actor,
                    patient_id=patient.pk,
                    reason=reason,
                    event=event,
                )
                return GrantMade(
                    reference=grant.reference, valid_until=grant.valid_until, public_id=patient.public_id
                )
    # Outside the atomic block, so the refusal's audit row is committed, not rolled back with it.
    raise PatientNotFound


def relationship_declare_for_user(
    *,
    user: User,
    public_id: uuid.UUID | str,
    reason_code: str,
    reason_text: str,
    hours: int,
    request: HttpRequest | None,
) -> GrantMade:
    """Declare a self-claimed relationship with one patient for this user, for `hours` at most their role's maximum.

    Always holds: `consent.policy.self_claim_decide` is asked first; the grant, its `declare-relationship`
    access event and its privacy-officer alert are written in one transaction, or none is. A refusal, or a patient
    that does not exist, is audited and committed, then raises `PatientNotFound`. The caller has checked the form
    (`ValueError` for a reason that is not on the list or blank text, with nothing written).
    """
    return _grant_for_user(
        user=user,
        public_id=public_id,
        request=request,
        break_glass=False,
        reason_code=reason_code,
        reason_text=reason_text,
        hours=hours,
    )


def break_glass_for_user(
    *, user: User, public_id: uuid.UUID | str, reason_code: str, reason_text: str, request: HttpRequest | None
) -> GrantMade:
    """Break the glass on one patient for this user, for BREAK_GLASS_HOURS or their role's maximum if shorter.

    Always holds as for `relationship_declare_for_user`, with `consent.policy.break_glass_decide` and a
    `break-glass` event. The caller has re-checked the user's password before calling.
    """
    return _grant_for_user(
        user=user,
        public_id=public_id,
        request=request,
        break_glass=True,
        reason_code=reason_code,
        reason_text=reason_text,
        hours=settings.BREAK_GLASS_HOURS,
    )


def grant_end_for_user(*, user: User, reference: str, request: HttpRequest | None) -> None:
    """End this user's own current grant `reference` now; from this moment `decide` no longer counts it.

    Always holds: an `end-grant` event naming the patient is written with the ending, in one transaction; a
    reference the user holds no current grant under is audited as not found, committed, and raises
    `PatientNotFound`.
    """
    with transaction.atomic():
        grant = grant_end(user_id=int(user.pk), reference=reference) if user.pk is not None else None
        access_event_record(
            actor_of(user),
            AccessFacts(
                action=AccessEvent.Action.END_GRANT,
                outcome=AccessEvent.Outcome.ALLOWED if grant is not None else AccessEvent.Outcome.NOT_FOUND,
                patient_id=grant.content_object_id if grant is not None else None,
                query="" if grant is not None else reference[:200],
                basis=reference[:200] if grant is not None else "",
            ),
            context_of(request),
        )
    if grant is None:
        raise PatientNotFound


@dataclass(frozen=True)
class CurrentGrant:
    reference: str
    valid_until: datetime


def break_glass_current_for_user(user: User) -> list[CurrentGrant]:
    """The user's break-glass grants in force now, by reference and end time, for the banner on every page.

    It names no patient, so reading it is not an access and is not audited.
    """
    user_id = user.pk if getattr(user, "is_authenticated", False) else None
    if user_id is None:
        return []
    return [
        CurrentGrant(reference=grant.reference, valid_until=grant.valid_until)
        for grant in break_glass_current(int(user_id))
    ]


def staff_profiles_for_user(user: User) -> list[StaffProfile]:
    """Every role profile the user holds, for the choice at login; it opens no patient data."""
    return staff_profiles_of(user)


def role_choice_needed(user: User) -> bool:
    """The user holds several role profiles and has chosen none yet, so nothing opens until they choose."""
    # One question for most users: those with a single profile never need to choose.
    return len(staff_profiles_of(user)) > 1 and staff_profile_of(user) is None


@dataclass(frozen=True)
class PortalFrame:
    """What the frame of every portal page shows about the signed-in user; nothing about any patient."""

    acting_profile: StaffProfile | None
    holds_several_profiles: bool
    reviews_alerts: bool
    break_glass_in_force: list[CurrentGrant]


def portal_frame_for_user(user: User) -> PortalFrame:
    """The role the user acts under, whether they may change it or review alerts, and their break-glass grants in
    force (by reference and end time), for the header and banner of every page. It opens no patient data."""
    several = len(staff_profiles_of(user)) > 1
    acting = staff_profile_of(user)
    return PortalFrame(
        acting_profile=acting,
        holds_several_profiles=several,
        # Only a user acting under some role can review; the rule itself is the policy's.
        reviews_alerts=acting is not None and may_review_alerts(user),
        break_glass_in_force=break_glass_current_for_user(user),
    )


def role_select_for_user(*, request: HttpRequest, profile_id: int) -> StaffProfile | None:
    """Act under one of the user's own role profiles from now on, for this session; None (and nothing changed) for
    an id that is not one of theirs."""
    profile = next((held for held in staff_profiles_of(request.user) if held.pk == profile_id), None)
    if profile is not None:
        request.session[SELECTED_PROFILE_SESSION_KEY] = profile.pk
    return profile


# Privacy officers' review of self-claims and break-glass.


@dataclass(frozen=True)
class AlertReview:
    """One alert as its reviewer reads it: with the patient it is about and what its user did with them."""

    alert: Alert
    patient: Patient | None
    events: list[AccessEvent]


def alert_queue_for_user(user: User) -> list[Alert]:
    """The alerts for a privacy officer to review, open first; it names no patient.

    Raises `PatientNotFound` for anyone `consent.policy.may_review_alerts` refuses, so the queue's existence is
    not told to them either.
    """
    if not may_review_alerts(user):
        raise PatientNotFound
    return list(alert_queue())


def alert_open_for_user(*, user: User, alert_id: int, request: HttpRequest | None) -> AlertReview:
    """Open one alert for review, with its patient's name and NHS number and its user's accesses to them.

    Always holds: a `read-audit` event with purpose audit and the patient's id is written before anything is
    returned, allowed or refused; a refusal or a missing alert is committed and raises `PatientNotFound`.
    """
    with transaction.atomic():
        allowed = may_review_alerts(user)
        alert = alert_get(alert_id) if allowed else None
        access_event_record(
            actor_of(user),
            AccessFacts(
                action=AccessEvent.Action.READ_AUDIT,
                purpose=AccessEvent.Purpose.AUDIT,
                outcome=(
                    AccessEvent.Outcome.ALLOWED
                    if alert is not None
                    else AccessEvent.Outcome.NOT_FOUND
                    if allowed
                    else AccessEvent.Outcome.DENIED
                ),
                patient_id=alert.patient_id if alert is not None else None,
                query=f"alert {alert_id}",
                basis=f"alert {alert.reference}" if alert is not None else "",
                reason="" if allowed else "user may not review alerts",
            ),
            context_of(request),
        )
        if alert is not None:
            patient = (
                Patient.objects.filter(pk=alert.patient_id).first() if alert.patient_id is not None else None
            )
            return AlertReview(alert=alert, patient=patient, events=list(alert_user_events(alert)))
    raise PatientNotFound


def alert_review_for_user(*, user: User, alert_id: int, outcome: str, note: str) -> Alert:
    """Record this privacy officer's outcome for one alert, once.

    Raises `PatientNotFound` for a user who may not review alerts or an alert that does not exist, and
    `AlertAlreadyReviewed` when it has an outcome already; neither changes anything.
    """
    user_id = user.pk
    if user_id is None or not may_review_alerts(user):
        raise PatientNotFound
    try:
        return alert_review(
            alert_id=alert_id,
            reviewer=Reviewer(user_id=int(user_id), username=user.get_username()),
            outcome=outcome,
            note=note,
        )
    except Alert.DoesNotExist:
        raise PatientNotFound from None
