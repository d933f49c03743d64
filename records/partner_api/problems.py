"""Errors on the partner API as RFC 9457 problems: `application/problem+json` with type, title, status and detail,
plus the `code` partners act on and the `request_id` to quote. The exception handler of the partner API views only.

What always holds: every error the partner API answers is a problem, an unexpected one included (a 500 whose body
says nothing of what failed); a 429 or a 503 carries `Retry-After`; a 401 carries the `WWW-Authenticate` challenge.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from records.feeds.push.receive import PushRefused

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
_INTERNAL_DETAIL = "Something went wrong on our side; quote the request id to the shared care record team."


def problem(
    status: int,
    detail: str,
    *,
    code: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    retry_after: float | None = None,
    extensions: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": getattr(request, "request_id", ""),
        **(extensions or {}),
    }
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    request = context.get("request")
    if isinstance(exc, PushRefused):
        return problem(
            exc.status_code, exc.detail, code=exc.code, request=request, retry_after=exc.retry_after
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        # Logged with its traceback for the team; the partner learns nothing of what failed.
        logger.error("partner API request failed", exc_info=exc)
        return problem(500, _INTERNAL_DETAIL, code="internal-error", request=request)
    headers = {}
    # DRF sets the challenge on the exception when the view's first authenticator names one.
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = str(auth_header)
    # DRF sets `wait` on a Throttled exception, in seconds (None when the throttle gave none).
    retry_after = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else "invalid"
    return problem(
        exc.status_code, str(exc.detail), code=code, request=request, headers=headers, retry_after=retry_after
    )
