"""The partner API: partners' systems push batches into their own feeds and read back what became of them.

Every answer is JSON; every error is an RFC 7807 problem (`application/problem+json`). Only a partner key
authenticates here (records/partner_api/authentication.py); a signed-in session does not. No response carries
patient data. Each view names the authentication and the permission it allows; the base class allows nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any
from uuid import UUID

from django.db import transaction
from django.http import Http404
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from audit.services import request_context
from records.feeds.push.receive import (
    PushFacts,
    PushRefused,
    push_attempt_record,
    pushed_batch_for_partner,
    pushed_batch_receive,
)
from records.models import PartnerCredential, PushAttempt
from records.partner_api.authentication import PartnerKeyAuthentication, PartnerKeyRefused
from records.partner_api.permissions import IsPartnerSystem
from records.partner_api.serializers import PushedBatchSerializer
from records.tasks import pushed_batch_process_task
from sharedcare.permissions import DenyAll

PROBLEM_CONTENT_TYPE = "application/problem+json"


class JsonOnly(BaseContentNegotiation):
    """Always JSON: a partner sending `Accept: application/fhir+json` gets an answer, not a 406."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


def problem(
    status: int,
    detail: str,
    *,
    code: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": getattr(request, "request_id", ""),
    }
    return Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = context.get("request")
    if isinstance(exc, PushRefused):
        return problem(exc.status_code, exc.detail, code=exc.code, request=request)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers = {}
    # DRF sets the challenge on the exception when the view's first authenticator names one.
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = str(auth_header)
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else "invalid"
    return problem(exc.status_code, str(exc.detail), code=code, request=request, headers=headers)


class PartnerAPIView(APIView):
    """Base of every partner API view: JSON only, problems for errors. Allows nothing until a view says so."""

    authentication_classes: Sequence[type[BaseAuthentication]] = []
    permission_classes: Sequence[type[BasePermission]] = [DenyAll]
    renderer_classes = [JSONRenderer]
    parser_classes: Sequence[type[BaseParser]] = []  # bodies are read raw, bounded, by the push service
    content_negotiation_class = JsonOnly
    throttle_classes: Sequence[type[BaseThrottle]] = []

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return problem_exception_handler


def _partner_credential(request: Request) -> PartnerCredential:
    """The credential IsPartnerSystem let in; a view that reached here without one refuses the request."""
    if not isinstance(request.auth, PartnerCredential):
        raise exceptions.NotAuthenticated()
    return request.auth


def _declared_size(request: Request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _push_facts(
    request: Request, code: str, *, credential: PartnerCredential | None = None, key_prefix: str = ""
) -> PushFacts:
    return PushFacts(
        feed_code=code,
        content_type=request.META.get("CONTENT_TYPE", ""),
        declared_size=_declared_size(request),
        context=request_context(request),
        key_prefix=credential.key_prefix if credential else key_prefix,
        credential=credential,
    )


class BatchPushView(PartnerAPIView):
    """`POST /api/feeds/<code>/batches/`: store the body as a pending batch of the feed and queue its ingestion."""

    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [IsPartnerSystem]

    def post(self, request: Request, code: str) -> Response:
        facts = _push_facts(request, code, credential=_partner_credential(request))
        batch = pushed_batch_receive(facts, request.stream)
        transaction.on_commit(lambda: pushed_batch_process_task.delay(batch.pk))
        status_url = request.build_absolute_uri(reverse("api:batch-detail", args=[batch.public_id]))
        body = {
            "batch_id": str(batch.public_id),
            "status": batch.status,
            "status_url": status_url,
            "size": batch.size,
            "sha256": batch.checksum,
        }
        return Response(body, status=202, headers={"Location": status_url})

    def handle_exception(self, exc: Exception) -> Response:
        # Refusals past authentication are recorded by the push service; a refused key never reaches it.
        if self.request.method == "POST" and isinstance(
            exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed
        ):
            refused = exc if isinstance(exc, PartnerKeyRefused) else None
            facts = _push_facts(
                self.request,
                self.kwargs.get("code", ""),
                credential=refused.credential if refused else None,
                key_prefix=refused.key_prefix if refused else "",
            )
            push_attempt_record(facts, outcome=PushAttempt.Outcome.UNAUTHENTICATED, status_code=401)
        return super().handle_exception(exc)


class BatchDetailView(PartnerAPIView):
    """`GET /api/batches/<uuid>/`: what became of a batch this partner pushed; another partner's is a 404."""

    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [IsPartnerSystem]

    def get(self, request: Request, public_id: UUID) -> Response:
        credential = _partner_credential(request)
        batch = pushed_batch_for_partner(organisation_id=credential.organisation_id, public_id=public_id)
        if batch is None:
            raise Http404
        return Response(PushedBatchSerializer(batch, context={"request": request}).data)
