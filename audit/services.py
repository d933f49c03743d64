"""Writes to the access trail. Every row is chained to the one before it by a SHA-256 hash."""

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AccessEvent, AuditCheckpoint, AuditPurge
from sharedcare import advisory_locks
from sharedcare.middleware import client_address

GENESIS_HASH = "0" * 64

anchor_logger = logging.getLogger("sharedcare.audit.anchor")


@dataclass(frozen=True)
class Actor:
    """Who acted, as they were at the moment they acted."""

    user_id: int | None
    username: str
    job_role: str = ""
    organisation_ods: str = ""


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    client_address: str | None = None


@dataclass
class AccessFacts:
    action: str
    outcome: str
    patient_id: int | None = None
    query: str = ""
    purpose: str = AccessEvent.Purpose.DIRECT_CARE
    basis: str = ""
    reason: str = ""
    sections_shown: list[str] = field(default_factory=list)
    partners_shown: list[str] = field(default_factory=list)
    withheld: str = ""


def _canonical(event: AccessEvent) -> bytes:
    fields = {
        "occurred_at": event.occurred_at.isoformat(),
        "user_id": event.user_id,
        "username": event.username,
        "job_role": event.job_role,
        "organisation_ods": event.organisation_ods,
        "patient_id": event.patient_id,
        "query": event.query,
        "action": event.action,
        "purpose": event.purpose,
        "basis": event.basis,
        "reason": event.reason,
        "sections_shown": list(event.sections_shown),
        "partners_shown": list(event.partners_shown),
        "withheld": event.withheld,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "client_address": event.client_address,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def event_hash(event: AccessEvent, previous_hash: str) -> str:
    return hashlib.sha256(previous_hash.encode() + _canonical(event)).hexdigest()


def access_event_record(actor: Actor, facts: AccessFacts, context: RequestContext) -> AccessEvent:
    """Append one access event to the chain, inside the caller's transaction.

    Always holds: the row is written before the caller returns anything, and if it cannot be written the
    caller's transaction fails with it, so no access happens without its audit row. The first event after a purge
    that removed every event links to the purge's head, as the one after the newest removed event would have.

    No savepoint of its own (`savepoint=False`): a failed write already fails the caller's transaction, which is what
    must happen, so a savepoint would only cost two statements on every access. Outside any transaction it opens and
    commits its own. The chain's lock is the last thing taken: everything that does not depend on the chain's head is
    built before it, so the lock covers only reading the head, hashing and the insert (and is held until the
    caller's transaction commits).
    """
    with transaction.atomic(savepoint=False):
        event = AccessEvent(
            user_id=actor.user_id,
            username=actor.username,
            job_role=actor.job_role,
            organisation_ods=actor.organisation_ods,
            patient_id=facts.patient_id,
            query=facts.query,
            action=facts.action,
            purpose=facts.purpose,
            basis=facts.basis,
            reason=facts.reason,
            sections_shown=sorted(facts.sections_shown),
            partners_shown=sorted(facts.partners_shown),
            withheld=facts.withheld,
            outcome=facts.outcome,
            request_id=context.request_id,
            client_address=context.client_address,
        )
        advisory_locks.audit_chain_lock()  # one append at a time: each row's hash covers the one before
        event.previous_hash = _chain_head() or GENESIS_HASH
        # Taken under the lock, so the chain's order (by id) is also the order of its times.
        event.occurred_at = timezone.now()
        event.hash = event_hash(event, event.previous_hash)
        event.save(force_insert=True)
        return event


def request_context(request: HttpRequest | None) -> RequestContext:
    if request is None:
        return RequestContext()
    return RequestContext(
        request_id=getattr(request, "request_id", ""),
        client_address=client_address(request),
    )


def back_office_event_record(
    request: HttpRequest, *, action: str, purpose: str, reason: str, patient_id: int | None = None
) -> AccessEvent:
    """Audit a back-office page that shows the trail or a partner payload, for the signed-in staff user."""
    user = request.user
    return access_event_record(
        Actor(user_id=user.pk, username=user.get_username()),
        AccessFacts(
            action=action,
            outcome=AccessEvent.Outcome.ALLOWED,
            purpose=purpose,
            patient_id=patient_id,
            reason=reason[:500],
        ),
        request_context(request),
    )


def _chain_head() -> str | None:
    """The newest event's hash or, when a purge left none, the newest removed one's: what the next event links to.

    One statement, as every access pays for it: the purge record is read only when the events table is empty.
    """
    events, purges = AccessEvent._meta.db_table, AuditPurge._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE((SELECT hash FROM {events} ORDER BY id DESC LIMIT 1), "  # noqa: S608 - table names only
            f"(SELECT head_hash FROM {purges} ORDER BY last_event_id DESC LIMIT 1))"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _signature(key: str, parts: list[str]) -> str:
    if not key:
        return ""
    return hmac.new(key.encode(), "|".join(parts).encode(), hashlib.sha256).hexdigest()


def checkpoint_signature(checkpoint: AuditCheckpoint, key: str) -> str:
    """The HMAC-SHA256, with `key`, of what the checkpoint anchors; empty when no key is given."""
    return _signature(
        key,
        [
            checkpoint.created_at.isoformat(),
            str(checkpoint.last_event_id),
            str(checkpoint.event_count),
            checkpoint.head_hash,
        ],
    )


def purge_signature(purge: AuditPurge, key: str) -> str:
    """The HMAC-SHA256, with `key`, of what the purge record says was removed; empty when no key is given."""
    return _signature(
        key,
        [
            "purge",
            purge.created_at.isoformat(),
            purge.retained_from.isoformat(),
            str(purge.last_event_id),
            str(purge.event_count),
            purge.head_hash,
            str(purge.removed_count),
        ],
    )


# One statement, so it reads one snapshot: a purge that commits while a checkpoint is taken is either wholly in the
# count (its event_count plus what is left after it) or wholly out of it (the events it removed, still there).
_EVENT_COUNT_UP_TO = """
    WITH purge AS (
        SELECT last_event_id, event_count FROM audit_auditpurge
        WHERE last_event_id <= %(head)s ORDER BY last_event_id DESC LIMIT 1
    )
    SELECT COALESCE((SELECT event_count FROM purge), 0) + (
        SELECT count(*) FROM audit_accessevent
        WHERE id <= %(head)s AND id > COALESCE((SELECT last_event_id FROM purge), 0)
    )
"""


def audit_event_count_up_to(head: int) -> int:
    """How many events the chain has held up to event `head`, those purges removed included."""
    with connection.cursor() as cursor:
        cursor.execute(_EVENT_COUNT_UP_TO, {"head": head})
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def audit_checkpoint_write() -> AuditCheckpoint:
    """Anchor the chain's head: append a checkpoint and write the same values to the `sharedcare.audit.anchor` log.

    Always holds: taken under the chain's lock, so no event is appended between reading the head and counting; the
    count is of the events up to the head, which the chain's order makes every event there is, and goes on from the
    newest purge's count (a checkpoint taken when a purge left no event anchors the purge's head); the row and the log
    line carry the same values and signature. Safe to run twice: a second checkpoint of an unchanged chain is one
    more anchor, never a contradiction.
    """
    with transaction.atomic():
        advisory_locks.audit_chain_lock()
        head = AccessEvent.objects.order_by("-id").values_list("id", "hash").first()
        purged = (
            AuditPurge.objects.order_by("-last_event_id").values_list("last_event_id", "head_hash").first()
        )
        last_event_id, head_hash = head or purged or (0, GENESIS_HASH)
        checkpoint = AuditCheckpoint(
            created_at=timezone.now(),
            last_event_id=last_event_id,
            event_count=audit_event_count_up_to(last_event_id),
            head_hash=head_hash,
        )
        checkpoint.signature = checkpoint_signature(checkpoint, settings.AUDIT_ANCHOR_KEY)
        checkpoint.save(force_insert=True)
    anchor_logger.info(
        "audit checkpoint %s at %s: head event %s, %s events, head hash %s, signature %s",
        checkpoint.pk,
        checkpoint.created_at.isoformat(),
        checkpoint.last_event_id,
        checkpoint.event_count,
        checkpoint.head_hash,
        checkpoint.signature or "none",
    )
    return checkpoint
