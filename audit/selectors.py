"""Reads of the access trail: checking that it is whole.

What always holds: the chain is checked from the genesis hash, or from the newest purge's head when events past their
retention were removed, so removing events leaves a break unless a purge record, signed with a key the database never
sees, says they were removed; every checkpoint and purge record is checked against the chain or, once its events are
gone, against the purge records around it.
"""

import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from audit.models import AccessEvent, AuditCheckpoint, AuditPurge
from audit.services import GENESIS_HASH, checkpoint_signature, event_hash, purge_signature


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


@dataclass(frozen=True)
class PurgeBreak:
    purge_id: int
    problem: str

    def __str__(self) -> str:
        return f"purge {self.purge_id}: {self.problem}"

    @property
    def headline(self) -> str:
        return self.problem


TrailBreak = ChainBreak | CheckpointBreak | PurgeBreak


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


def purge_signatures_verify(key: str) -> Iterator[PurgeBreak]:
    """Yield every purge record whose signature does not verify with `key` (none are checked without a key).

    Unlike a checkpoint, every purge must be signed: `audit_purge` refuses to run without the key, so an unsigned
    purge record is one the database's owner wrote to pass removed events off as past their retention.
    """
    if not key:
        return
    for purge in AuditPurge.objects.order_by("id").iterator():
        if not hmac.compare_digest(purge.signature, purge_signature(purge, key)):
            yield PurgeBreak(
                purge.pk, f"purge {purge.pk}'s signature does not verify: it was changed or forged"
            )


def audit_trail_verify(
    key: str, batch_size: int = 2000, *, up_to_event_id: int | None = None
) -> Iterator[TrailBreak]:
    """Yield every break in the trail: forged checkpoints and purges first, then in the order of the chain.

    Always holds: every event's link to the one before and its content are checked against its hash, the first
    event linking to the newest purge's head (or the genesis hash) and counting going on from its count; every
    checkpoint is checked to still hold: the event it recorded as the head exists with the hash it recorded, and the
    events up to it number as it recorded, so removing events (the newest included) or inserting any before a
    checkpoint is found. A checkpoint whose events a purge removed is checked against the purge records: the same
    head and count where they meet, counts that fit the event ids between them elsewhere. Each purge goes on from
    the one before it, and no event it removed is still held. One pass over the events; with `up_to_event_id`, the
    chain and checkpoints up to that event only.
    """
    yield from checkpoint_signatures_verify(key)
    yield from purge_signatures_verify(key)
    purges = list(AuditPurge.objects.order_by("last_event_id", "id"))
    yield from _purges_check(purges)
    newest = purges[-1] if purges else None
    start_id = newest.last_event_id if newest else 0
    previous = newest.head_hash if newest else GENESIS_HASH
    count = newest.event_count if newest else 0

    checkpoints = list(AuditCheckpoint.objects.order_by("last_event_id", "id"))
    for checkpoint in checkpoints:
        if checkpoint.last_event_id <= start_id and checkpoint.last_event_id != 0:
            yield from _checkpoint_against_purges(checkpoint, purges)
    pending = [c for c in checkpoints if c.last_event_id > start_id or c.last_event_id == 0]
    events = AccessEvent.objects.order_by("id")
    if up_to_event_id is not None:
        events = events.filter(id__lte=up_to_event_id)
        pending = [c for c in pending if c.last_event_id <= up_to_event_id]
    for event in events.iterator(chunk_size=batch_size):
        if newest is not None and event.id <= start_id:
            yield ChainBreak(
                event.id, f"still held, but purge {newest.pk} recorded every event up to {start_id} removed"
            )
            continue
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


def _counts_fit(lower: tuple[int, int], upper: tuple[int, int]) -> bool:
    """Whether (event id, events up to it) pairs can both be true: between two heads lie at least one event (the
    upper head) and at most one per id, since ids only grow."""
    (lower_id, lower_count), (upper_id, upper_count) = lower, upper
    between = upper_count - lower_count
    return 1 <= between <= upper_id - lower_id


def _purges_check(purges: list[AuditPurge]) -> Iterator[PurgeBreak]:
    before: AuditPurge | None = None
    for purge in purges:
        recorded = f"purge {purge.pk} recorded head {purge.last_event_id} of {purge.event_count} events"
        earlier_count = before.event_count if before else 0
        if before is not None and before.last_event_id == purge.last_event_id:
            yield PurgeBreak(purge.pk, f"{recorded}, as purge {before.pk} did: a purge removes events once")
        elif earlier_count + purge.removed_count != purge.event_count:
            yield PurgeBreak(
                purge.pk,
                f"{recorded} after removing {purge.removed_count}, but {earlier_count} events came before them",
            )
        elif not _counts_fit(
            (before.last_event_id if before else 0, earlier_count), (purge.last_event_id, purge.event_count)
        ):
            yield PurgeBreak(purge.pk, f"{recorded}, more than its event ids leave room for")
        before = purge


def _checkpoint_against_purges(
    checkpoint: AuditCheckpoint, purges: Iterable[AuditPurge]
) -> Iterator[CheckpointBreak]:
    """Check a checkpoint whose head a purge removed against the purges just before and at or after it."""
    below: tuple[int, int] = (0, 0)
    for purge in purges:
        if purge.last_event_id < checkpoint.last_event_id:
            below = (purge.last_event_id, purge.event_count)
            continue
        recorded = (
            f"checkpoint {checkpoint.pk} recorded head {checkpoint.last_event_id} of {checkpoint.event_count} "
            f"events, purge {purge.pk} head {purge.last_event_id} of {purge.event_count}"
        )
        head = (checkpoint.last_event_id, checkpoint.event_count)
        if purge.last_event_id == checkpoint.last_event_id:
            if (purge.head_hash, purge.event_count) != (checkpoint.head_hash, checkpoint.event_count):
                yield CheckpointBreak(checkpoint.pk, f"the purge's head does not agree: {recorded}")
        elif not (_counts_fit(below, head) and _counts_fit(head, (purge.last_event_id, purge.event_count))):
            yield CheckpointBreak(checkpoint.pk, f"the counts do not agree with the purge's: {recorded}")
        return
