"""Alerts for privacy officers: raising one when a user gives themselves access or a break-glass sets a patient's
objection aside, and recording its review.

`audit` is a leaf: a patient is an id and a user is an id plus who they were, as in the access trail. Whether a
user may read or review alerts is decided above, by the door; these functions only write and read. What always
holds: an alert is raised in the same transaction as the access event it is about, its reason names no patient,
and it is reviewed once, with who reviewed it and when.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from audit.models import AccessEvent, Alert
from audit.services import Actor
from sharedcare import advisory_locks


class AlertAlreadyReviewed(Exception):
    """The alert has an outcome already; a review is recorded once and not changed."""


@dataclass(frozen=True)
class Reviewer:
    user_id: int
    username: str


def alert_raise(
    *, kind: str, reference: str, actor: Actor, patient_id: int | None, reason: str, event: AccessEvent
) -> Alert:
    """Raise an alert about the grant `reference`, made by `actor`, recorded by the access event `event`."""
    return Alert.objects.create(
        kind=Alert.Kind(kind),
        reference=reference,
        user_id=actor.user_id,
        username=actor.username,
        job_role=actor.job_role,
        organisation_ods=actor.organisation_ods,
        patient_id=patient_id,
        reason=reason,
        event=event,
        raised_at=event.occurred_at,
    )


def alert_raise_once(
    *, kind: str, reference: str, actor: Actor, patient_id: int | None, reason: str, event: AccessEvent
) -> Alert:
    """Raise an alert of this kind about `reference` unless one is raised already, which then stands.

    For what recurs under one grant (each view that sets an objection aside): the reviewer judges the grant once,
    and reads every access it allowed on the alert's page. Two accesses at once raise one alert: the check runs
    under the audit chain's lock, held to the end of the caller's transaction.
    """
    with transaction.atomic():
        advisory_locks.audit_chain_lock()
        raised = Alert.objects.filter(kind=Alert.Kind(kind), reference=reference).first()
        if raised is not None:
            return raised
        return alert_raise(
            kind=kind, reference=reference, actor=actor, patient_id=patient_id, reason=reason, event=event
        )


def alert_review(
    *, alert_id: int, reviewer: Reviewer, outcome: str, note: str, now: datetime | None = None
) -> Alert:
    """Record a privacy officer's outcome for one alert.

    Raises `Alert.DoesNotExist` for no such alert, `ValueError` for an outcome that is not one of
    `Alert.Outcome`, and `AlertAlreadyReviewed` if it has one already (and then changes nothing).
    """
    decided = Alert.Outcome(outcome)
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        if alert.reviewed_at is not None:
            raise AlertAlreadyReviewed
        alert.outcome = decided
        alert.review_note = note.strip()
        alert.reviewed_at = now or timezone.now()
        alert.reviewed_by_id = reviewer.user_id
        alert.reviewed_by_username = reviewer.username
        # save(), not update(): django-auditlog records the review with its actor.
        alert.save(
            update_fields=["outcome", "review_note", "reviewed_at", "reviewed_by_id", "reviewed_by_username"]
        )
        return alert


def alert_queue() -> QuerySet[Alert]:
    """Every alert, open ones first (newest first), then reviewed ones (most recently reviewed first)."""
    return Alert.objects.order_by(F("reviewed_at").desc(nulls_first=True), "-raised_at", "-id")


def alert_get(alert_id: int) -> Alert | None:
    return Alert.objects.filter(pk=alert_id).first()


def alert_user_events(alert: Alert) -> QuerySet[AccessEvent]:
    """What the alert's user did with the alert's patient, oldest first: the context a reviewer judges by. An alert
    sharedcare raised itself (an overdue case) has no user and no patient, so nothing."""
    if alert.user_id is None or alert.patient_id is None:
        return AccessEvent.objects.none()
    return AccessEvent.objects.filter(user_id=alert.user_id, patient_id=alert.patient_id).order_by(
        "occurred_at", "id"
    )
