"""Gives every request an id that the access audit and the response share, and keeps pages out of caches."""

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


def client_address(request: HttpRequest) -> str | None:
    """The client's address as the access trail and the sign-in lockout both record it: the connection's peer.

    A forwarded-for header is not read: any client can send one, and a lockout keyed on it is evaded by changing it.
    """
    return request.META.get("REMOTE_ADDR") or None


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = uuid.uuid4().hex  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response


class NoStoreMiddleware:
    """Tells browsers and proxies to keep no copy of any page the application answers.

    Every page may show patient data, or will once a feature grows, so the rule is applied to all of them rather
    than view by view, where a new view could forget it. Static files are answered before this middleware (by
    WhiteNoise) and stay cacheable.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        add_never_cache_headers(response)
        return response
