"""How often a partner API client may call: per key, and per client address for failed keys. The counting is
records/feeds/push/limits.py (Redis); here it meets DRF, which answers a refusal 429 with Retry-After."""

from __future__ import annotations

from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from records.feeds.push.limits import address_refusal_wait, key_request_count
from records.models import PartnerCredential
from sharedcare.middleware import client_address


class PartnerKeyThrottle(BaseThrottle):
    """PARTNER_API_REQUESTS_PER_KEY requests per key in each window, counted apart for each part of the API (the
    view's `throttle_scope`), so polling batches' status never uses up a partner's pushes."""

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        credential = request.auth
        if not isinstance(credential, PartnerCredential):
            # Only an authenticated key reaches the throttles; the permission has refused anyone else.
            return True
        self._wait = key_request_count(credential.pk, getattr(view, "throttle_scope", "api"))
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


def address_throttle_check(request: Request) -> None:
    """Refuse, before any key is looked at, a client address that sent PARTNER_API_FAILURES_PER_ADDRESS missing or
    wrong keys in this window: guessing keys, or a partner's system stuck on a withdrawn one."""
    wait = address_refusal_wait(client_address(request))
    if wait is not None:
        detail = (
            f"Too many requests with a missing or wrong key from this address; try again in {wait} seconds."
        )
        raise Throttled(wait=wait, detail=detail)
