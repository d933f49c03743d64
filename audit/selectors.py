"""Reads of the access trail."""

from collections.abc import Iterator
from dataclasses import dataclass

from audit.models import AccessEvent
from audit.services import GENESIS_HASH, event_hash


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    problem: str


def access_chain_verify(batch_size: int = 2000) -> Iterator[ChainBreak]:
    """Walk the chain in insertion order and yield every row whose link or content does not check out."""
    previous = GENESIS_HASH
    for event in AccessEvent.objects.order_by("id").iterator(chunk_size=batch_size):
        if event.previous_hash != previous:
            yield ChainBreak(event.id, "link to the previous row does not match")
        if event_hash(event, event.previous_hash) != event.hash:
            yield ChainBreak(event.id, "content does not match its hash")
        previous = event.hash
