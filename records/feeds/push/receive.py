"""Receiving a pushed batch: every attempt is recorded, an accepted batch is stored whole before the partner hears
202, and a body is never read past PUSH_MAX_BYTES (plus one byte, to know it is too large)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import Count

from audit.services import RequestContext
from records.feeds.push.keys import KEY_PREFIX_LENGTH
from records.feeds.push.limits import partner_bytes_take, partner_bytes_wait
from records.ingest.items import clean
from records.models import Feed, IngestRun, PartnerCredential, PushAttempt, PushedBatch

_READ_CHUNK_BYTES = 64 * 1024
_LARGEST_COUNT = 2**31 - 1  # PositiveIntegerField
FEED_CLOSED = PushAttempt.Outcome.FEED_CLOSED.value

# Media type -> the file suffix the ingester's readers see, per feed format. The suffix matters: NDJSON is read line
# by line, so one broken line is quarantined and the rest ingested.
MEDIA_TYPES: Mapping[str, Mapping[str, str]] = {
    Feed.Format.FHIR: {
        "application/fhir+json": ".json",
        "application/json": ".json",
        "application/fhir+ndjson": ".ndjson",
        "application/x-ndjson": ".ndjson",
        "application/fhir+xml": ".xml",
        "application/xml": ".xml",
    },
    Feed.Format.CSV: {"text/csv": ".csv"},
    Feed.Format.HL7V2: {"x-application/hl7-v2+er7": ".hl7", "application/hl7-v2": ".hl7"},
}


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class PushFacts:
    """What is known of one push before its body is read; every attempt is recorded from these."""

    feed_code: str
    content_type: str
    declared_size: int | None
    context: RequestContext
    key_prefix: str = ""
    credential: PartnerCredential | None = None


class PushRefused(Exception):
    """A push turned away; already recorded as a PushAttempt when raised by this module."""

    def __init__(
        self, outcome: str, status_code: int, detail: str, *, code: str = "", retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.status_code = status_code
        self.detail = detail
        # What the partner is told; the recorded outcome unless the outcome is too coarse to act on.
        self.code = code or outcome
        # Seconds to wait before trying again, sent as Retry-After (a 429 or 503).
        self.retry_after = retry_after


def media_type(content_type: str) -> str:
    """`application/fhir+json; charset=utf-8` -> `application/fhir+json`."""
    return content_type.split(";", 1)[0].strip().lower()


def push_attempt_record(
    facts: PushFacts,
    *,
    outcome: str,
    status_code: int,
    size: int | None = None,
    batch: PushedBatch | None = None,
) -> PushAttempt:
    """Write the one PushAttempt row for an attempt; every field is cut and cleaned to fit, so this cannot fail on
    what the caller sent."""
    if size is None:
        size = facts.declared_size or 0
    return PushAttempt.objects.create(
        feed_code=clean(facts.feed_code[:64]),
        credential=facts.credential,
        key_prefix=clean(facts.key_prefix[:KEY_PREFIX_LENGTH]),
        outcome=outcome,
        status_code=status_code,
        content_type=clean(facts.content_type[:100]),
        size=max(0, min(size, _LARGEST_COUNT)),
        batch=batch,
        request_id=clean(facts.context.request_id[:64]),
        client_address=facts.context.client_address,
    )


def _refuse(
    facts: PushFacts,
    outcome: str,
    status_code: int,
    detail: str,
    *,
    size: int | None = None,
    code: str = "",
    retry_after: int | None = None,
) -> PushRefused:
    push_attempt_record(facts, outcome=outcome, status_code=status_code, size=size)
    return PushRefused(outcome, status_code, detail, code=code, retry_after=retry_after)


def _feed_refusal(facts: PushFacts, credential: PartnerCredential, feed: Feed | None) -> PushRefused | None:
    Outcome = PushAttempt.Outcome
    if feed is None:
        return _refuse(facts, Outcome.UNKNOWN_FEED, 404, "There is no feed with this code.")
    if feed.organisation_id != credential.organisation_id:
        return _refuse(facts, Outcome.FORBIDDEN, 403, "This key's partner may not push into this feed.")
    if feed.source != Feed.Source.PUSH:
        detail = (
            f"This feed does not take pushes: its data comes from {feed.get_source_display().lower()}. "
            "Ask the shared care record team to switch it to push."
        )
        return _refuse(facts, Outcome.FEED_CLOSED, 409, detail, code=FEED_CLOSED)
    if feed.state == Feed.State.PAUSED:
        detail = "This feed is paused and takes no batches until the shared care record team resumes it."
        return _refuse(facts, Outcome.FEED_CLOSED, 409, detail, code=FEED_CLOSED)
    accepted = MEDIA_TYPES.get(feed.format, {})
    if media_type(facts.content_type) not in accepted:
        sent = media_type(facts.content_type) or "no Content-Type"
        detail = (
            f"This feed takes {feed.get_format_display()}; send it as one of {', '.join(sorted(accepted))} "
            f"(this request sent {sent})."
        )
        return _refuse(facts, Outcome.UNSUPPORTED_MEDIA_TYPE, 415, detail)
    return None


def _too_large(facts: PushFacts, size: int) -> PushRefused:
    limit = settings.PUSH_MAX_BYTES
    detail = f"The body is larger than the {limit} bytes one push may carry; split the batch."
    return _refuse(facts, PushAttempt.Outcome.TOO_LARGE, 413, detail, size=size)


def _over_quota(facts: PushFacts, size: int, wait: int) -> PushRefused:
    detail = (
        f"This partner has pushed its {settings.PARTNER_API_DAILY_BYTES} bytes for the day; "
        f"this batch of {size} bytes would pass that. Try again in {wait} seconds."
    )
    return _refuse(facts, PushAttempt.Outcome.OVER_QUOTA, 429, detail, size=size, retry_after=wait)


def _read_bounded(body: _Readable | None, limit: int) -> bytes:
    """At most limit + 1 bytes: enough to know a body is too large without holding all of it."""
    if body is None:
        return b""
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = body.read(min(_READ_CHUNK_BYTES, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def pushed_batch_receive(facts: PushFacts, body: _Readable | None) -> PushedBatch:
    """Take one push from an authenticated partner (`facts.credential`) and store it as a pending batch.

    Checks, in order: the feed exists (404), is the partner's (403), takes pushes and is not paused (409), the
    content type fits its format (415), the body fits PUSH_MAX_BYTES (413, by Content-Length first, then by what is
    read), is not empty (400) and fits what is left of the partner's daily byte quota (429, by Content-Length first,
    then by what is read; a refused body counts nothing against the quota). Raises PushRefused after recording the
    attempt; on success the batch and its attempt are written in one transaction. The caller queues the processing
    once that has committed.
    """
    credential = facts.credential
    if credential is None:
        raise ValueError("pushed_batch_receive needs an authenticated credential")
    code = clean(facts.feed_code)
    feed = Feed.objects.filter(code=code).first() if len(code) <= 64 else None
    refusal = _feed_refusal(facts, credential, feed)
    if refusal is not None:
        raise refusal
    if feed is None:
        raise RuntimeError("invariant: feed is not None")
    limit: int = settings.PUSH_MAX_BYTES
    if facts.declared_size is not None and facts.declared_size > limit:
        raise _too_large(facts, facts.declared_size)
    organisation_id = credential.organisation_id
    if facts.declared_size and (wait := partner_bytes_wait(organisation_id, facts.declared_size)) is not None:
        raise _over_quota(facts, facts.declared_size, wait)
    payload = _read_bounded(body, limit)
    if len(payload) > limit:
        raise _too_large(facts, len(payload))
    if not payload:
        detail = "The body is empty. Send the batch as the request body, with a Content-Length header."
        raise _refuse(facts, PushAttempt.Outcome.INVALID, 400, detail, size=0)
    if (wait := partner_bytes_take(organisation_id, len(payload))) is not None:
        raise _over_quota(facts, len(payload), wait)
    with transaction.atomic():
        batch = PushedBatch.objects.create(
            feed=feed,
            credential=credential,
            content_type=media_type(facts.content_type),
            payload=payload,
            size=len(payload),
            checksum=hashlib.sha256(payload).hexdigest(),
        )
        push_attempt_record(
            facts, outcome=PushAttempt.Outcome.ACCEPTED, status_code=202, size=len(payload), batch=batch
        )
    return batch


def push_attempt_unqueued(batch: PushedBatch) -> None:
    """Say on the batch's attempt that the partner was answered 503: the batch is stored, but the queue did not
    take it (the sweep queues it later)."""
    PushAttempt.objects.filter(batch=batch).update(outcome=PushAttempt.Outcome.UNAVAILABLE, status_code=503)


# Reading a batch's status.


def pushed_batch_for_partner(*, organisation_id: int, public_id: uuid.UUID) -> PushedBatch | None:
    """A batch pushed by any key of this partner; another partner's batch and a missing one both give None."""
    return (
        PushedBatch.objects.select_related("feed", "ingest_run")
        .defer("payload")
        .filter(public_id=public_id, credential__organisation_id=organisation_id)
        .first()
    )


def quarantine_reason_counts(run: IngestRun) -> dict[str, int]:
    """How many records this run quarantined, by reason (a record already pending for the same reason is not
    quarantined twice, so these can add up to less than the run's `quarantined`)."""
    rows = run.quarantined_records.values("reason").annotate(total=Count("id")).order_by("reason")
    return {row["reason"]: row["total"] for row in rows}
