"""The partner API's limits, counted in the cache's Redis: requests per key, failed key attempts per client address,
and bytes pushed per partner in a day.

What always holds:
- a counter is one Redis key that starts at the first request it counts and expires a window later; adding to it and
  reading how long it has left is one atomic round trip, so a burst from many processes at once is counted exactly;
- a refusal says when to come back: the seconds the counter has left;
- Redis unreachable counts nothing and refuses nothing: these limits guard the service's capacity, not who may see
  what (keys, permissions and the door still decide that), and a push must still be stored while the broker, which
  is the same Redis, is down (the view then answers 503 and the sweep queues the batch later).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

PREFIX = "partner-api:"
DAY_SECONDS = 24 * 60 * 60
# A Redis that does not answer within this is taken for down: a push must not hang on its limits.
_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Tally:
    """A counter after a request: its total in the current window and the seconds the window has left."""

    total: int
    seconds_left: int


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=_TIMEOUT_SECONDS, socket_connect_timeout=_TIMEOUT_SECONDS)


def _redis() -> redis.Redis:
    return _client(str(settings.CACHES["default"]["LOCATION"]))


def _add(key: str, amount: int, window: int) -> Tally | None:
    """Add to the counter, starting its window if it has none; None when Redis cannot be reached."""
    try:
        pipe = _redis().pipeline(transaction=True)
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incrby(key, amount)
        pipe.ttl(key)
        _, total, ttl = pipe.execute()
    except redis.RedisError:
        logger.warning("partner API limits not counted: Redis did not answer", exc_info=True)
        return None
    return Tally(total=int(total), seconds_left=int(ttl) if int(ttl) > 0 else window)


def _read(key: str, window: int) -> Tally | None:
    try:
        pipe = _redis().pipeline(transaction=True)
        pipe.get(key)
        pipe.ttl(key)
        total, ttl = pipe.execute()
    except redis.RedisError:
        logger.warning("partner API limits not read: Redis did not answer", exc_info=True)
        return None
    return Tally(total=int(total or 0), seconds_left=int(ttl) if int(ttl) > 0 else window)


def _give_back(key: str, amount: int) -> None:
    try:
        _redis().decrby(key, amount)
    except redis.RedisError:
        logger.warning("partner API byte count not given back: Redis did not answer", exc_info=True)


def key_request_count(credential_id: int, scope: str) -> int | None:
    """Count one request by this key to this part of the API; the seconds to wait when that passes the limit,
    None while within it (or when nothing can be counted)."""
    window = settings.PARTNER_API_RATE_WINDOW_SECONDS
    tally = _add(f"{PREFIX}key:{credential_id}:{scope}", 1, window)
    if tally is None or tally.total <= settings.PARTNER_API_REQUESTS_PER_KEY:
        return None
    return tally.seconds_left


def _address_key(address: str) -> str:
    return f"{PREFIX}address:{address}"


def address_refusal_wait(address: str | None) -> int | None:
    """The seconds this client address must wait because of its failed key attempts; None if it may try."""
    if not address:
        return None
    tally = _read(_address_key(address), settings.PARTNER_API_RATE_WINDOW_SECONDS)
    if tally is None or tally.total < settings.PARTNER_API_FAILURES_PER_ADDRESS:
        return None
    return tally.seconds_left


def address_failure_count(address: str | None) -> None:
    """Count one missing, unknown or withdrawn key presented from this client address."""
    if address:
        _add(_address_key(address), 1, settings.PARTNER_API_RATE_WINDOW_SECONDS)


def _bytes_key(organisation_id: int) -> str:
    return f"{PREFIX}bytes:{organisation_id}"


def partner_bytes_wait(organisation_id: int, size: int) -> int | None:
    """The seconds until the partner's daily quota has room for `size` more bytes; None if it has room now.
    Only reads: for refusing a body by its Content-Length before reading it."""
    tally = _read(_bytes_key(organisation_id), DAY_SECONDS)
    if tally is None or tally.total + size <= settings.PARTNER_API_DAILY_BYTES:
        return None
    return tally.seconds_left


def partner_bytes_take(organisation_id: int, size: int) -> int | None:
    """Count `size` bytes against the partner's daily quota; when they do not fit, take nothing and return the
    seconds until the quota starts again, else None."""
    key = _bytes_key(organisation_id)
    tally = _add(key, size, DAY_SECONDS)
    if tally is None or tally.total <= settings.PARTNER_API_DAILY_BYTES:
        return None
    _give_back(key, size)
    return tally.seconds_left


def partner_api_counters_clear() -> None:
    """Remove every partner API counter (all keys, addresses and partners start afresh)."""
    client = _redis()
    keys = list(client.scan_iter(match=f"{PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)
