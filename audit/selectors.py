"""Reads of the access trail."""

import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from audit.models import AccessEvent, AuditCheckpoint
from audit.services import GENESIS_HASH, checkpoint_signature, event_hash


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    problem: str

    def __str__(self) -> str:
        return f"access event {self.event_id}: {self.problem}"

    @property
    def headline(self) -> str:
        return f"chain broken at event {self.event_id}: {self.problem}"


@dataclass(frozen=True)
class CheckpointBreak:
    checkpoint_id: int
    problem: str

    def __str__(self) -> str:
        return f"checkpoint {self.checkpoint_id}: {self.problem}"

    @property
    def headline(self) -> str:
        return self.problem


def checkpoint_signatures_verify(key: str) -> Iterator[CheckpointBreak]:
    """Yield every checkpoint whose signature does not verify with `key` (none are checked without a key).

    Checkpoints written before the key was first set are unsigned; after the first signed one, every checkpoint must
    be signed, so one the database's owner wrote (who never sees the key) stands out.
    """
    if not key:
        return
    signed_seen = False
    for checkpoint in AuditCheckpoint.objects.order_by("id").iterator():
        if not checkpoint.signature and not signed_seen:
            continue
        signed_seen = True
        if not hmac.compare_digest(checkpoint.signature, checkpoint_signature(checkpoint, key)):
            yield CheckpointBreak(
                checkpoint.pk,
                f"checkpoint {checkpoint.pk}'s signature does not verify: it was changed or forged",
            )


def audit_trail_verify(key: str, batch_size: int = 2000) -> Iterator[ChainBreak | CheckpointBreak]:
    """Yield every break in the trail, forged checkpoints first, then in the order of the chain.

    Always holds: every event's link to the one before and its content are checked against its hash; every
    checkpoint is checked to still hold: the event it recorded as the head exists with the hash it recorded, and the
    events up to it number as it recorded, so removing events (the newest included) or inserting any before a
    checkpoint is found. One pass over the events.
    """
    yield from checkpoint_signatures_verify(key)
    pending = list(AuditCheckpoint.objects.order_by("last_event_id", "id"))
    previous = GENESIS_HASH
    count = 0
    for event in AccessEvent.objects.order_by("id").iterator(chunk_size=batch_size):
        while pending and pending[0].last_event_id < event.id:
            yield from _checkpoint_check(pending.pop(0), None, count)
        count += 1
        if event.previous_hash != previous:
            yield ChainBreak(event.id, "link to the previous row does not match")
        if event_hash(event, event.previous_hash) != event.hash:
            yield ChainBreak(event.id, "content does not match its hash")
        previous = event.hash
        while pending and pending[0].last_event_id == event.id:
            yield from _checkpoint_check(pending.pop(0), event, count)
    for checkpoint in pending:
        yield from _checkpoint_check(checkpoint, None, count)


def _checkpoint_check(
    checkpoint: AuditCheckpoint, head: AccessEvent | None, count: int
) -> Iterator[CheckpointBreak]:
    recorded = f"checkpoint {checkpoint.pk} recorded head {checkpoint.last_event_id} of {checkpoint.event_count} events"
    if checkpoint.last_event_id == 0:
        if checkpoint.event_count != 0 or checkpoint.head_hash != GENESIS_HASH:
            yield CheckpointBreak(
                checkpoint.pk, f"an empty chain's checkpoint has a head or a count: {recorded}"
            )
    elif head is None:
        yield CheckpointBreak(checkpoint.pk, f"event {checkpoint.last_event_id} removed: {recorded}")
    elif head.hash != checkpoint.head_hash:
        yield CheckpointBreak(checkpoint.pk, f"event {head.id} does not have the hash {recorded}")
    elif count != checkpoint.event_count:
        yield CheckpointBreak(checkpoint.pk, f"{count} events up to event {head.id}, but {recorded}")
