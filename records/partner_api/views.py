"""The partner API: partners' systems push batches into their own feeds and read back what became of them.

Every answer is JSON; every error is an RFC 9457 problem (`application/problem+json`, records/partner_api/problems.py).
Only a partner key authenticates here (records/partner_api/authentication.py); a signed-in session does not. No
response carries patient data. Each view names the authentication, the permission and the throttle it allows; the
base class allows nothing, and refuses a client address that sent too many wrong keys before looking at its key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
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
from records.feeds.push.keys import key_prefix_of
from records.feeds.push.limits import address_failure_count
from records.feeds.push.receive import (
    PushFacts,
    push_attempt_record,
    push_attempt_unqueued,
    pushed_batch_for_partner,
    pushed_batch_receive,
)
from records.models import PartnerCredential, PushAttempt, PushedBatch
from records.partner_api.authentication import KEYWORD, PartnerKeyAuthentication, PartnerKeyRefused
from records.partner_api.permissions import IsPartnerSystem
from records.partner_api.problems import problem, problem_exception_handler
from records.partner_api.serializers import PushedBatchSerializer
from records.partner_api.throttling import PartnerKeyThrottle, address_throttle_check
from records.tasks import BROKER_UNAVAILABLE_ERRORS, pushed_batch_process_task
from sharedcare.middleware import client_address
from sharedcare.permissions import DenyAll

logger = logging.getLogger(__name__)

# The beat's sweep queues a batch left pending within PUSH_REQUEUE_AFTER_MINUTES plus its own five minutes; asking
# after two minutes is early enough for a partner that wants to see it move.
UNAVAILABLE_RETRY_AFTER_SECONDS = 120


class JsonOnly(BaseContentNegotiation):
    """Always JSON: a partner sending `Accept: application/fhir+json` gets an answer, not a 406."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class PartnerAPIView(APIView):
    """Base of every partner API view: JSON only, problems for errors. Allows nothing until a view says so."""

    authentication_classes: Sequence[type[BaseAuthentication]] = []
    permission_classes: Sequence[type[BasePermission]] = [DenyAll]
    renderer_classes = [JSONRenderer]
    parser_classes: Sequence[type[BaseParser]] = []  # bodies are read raw, bounded, by the push service
    content_negotiation_class = JsonOnly
    throttle_classes: Sequence[type[BaseThrottle]] = []
    # The key that authenticated this request, once it has; never looked up again after a refusal.
    authenticated_credential: PartnerCredential | None = None

    def perform_authentication(self, request: Request) -> None:
        address_throttle_check(request)
        super().perform_authentication(request)
        if isinstance(request.auth, PartnerCredential):
            self.authenticated_credential = request.auth

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            address_failure_count(client_address(self.request))
        return super().handle_exception(exc)

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


def _presented_key_prefix(request: Request) -> str:
    """The recordable start of a bearer key the request carries, without looking the key up."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) == 2 and parts[0].lower() == KEYWORD.lower():
        return key_prefix_of(parts[1])
    return ""


def _processing_queued(batch: PushedBatch) -> bool:
    """Queue the batch's processing once it has committed; False when the broker could not take it.

    Outside a transaction (as the view always is) the message is sent at once, so the answer can say so; inside
    one it is sent at commit and a broker down then is left to the sweep.
    """
    refused: list[bool] = []

    def send() -> None:
        try:
            pushed_batch_process_task.delay(batch.pk)
        except BROKER_UNAVAILABLE_ERRORS:
            logger.warning(
                "batch %s stored but not queued: the broker did not answer", batch.pk, exc_info=True
            )
            refused.append(True)

    transaction.on_commit(send)
    return not refused


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
    throttle_classes = [PartnerKeyThrottle]
    throttle_scope = "push"

    def post(self, request: Request, code: str) -> Response:
        facts = _push_facts(request, code, credential=_partner_credential(request))
        batch = pushed_batch_receive(facts, request.stream)
        status_url = request.build_absolute_uri(reverse("api:batch-detail", args=[batch.public_id]))
        if not _processing_queued(batch):
            push_attempt_unqueued(batch)
            detail = (
                "The batch is stored but could not be queued for processing; it will be processed when the queue "
                "is back, without being sent again. Its status URL says when."
            )
            return problem(
                503,
                detail,
                code=PushAttempt.Outcome.UNAVAILABLE.value,
                request=request,
                headers={"Location": status_url},
                retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS,
                extensions={"batch_id": str(batch.public_id), "status_url": status_url},
            )
        body = {
            "batch_id": str(batch.public_id),
            "status": batch.status,
            "status_url": status_url,
            "size": batch.size,
            "sha256": batch.checksum,
        }
        return Response(body, status=202, headers={"Location": status_url})

    def handle_exception(self, exc: Exception) -> Response:
        # Refusals past authentication are recorded by the push service; a refused key or a throttled request
        # never reaches it.
        if self.request.method == "POST":
            self._refusal_record(exc)
        return super().handle_exception(exc)

    def _refusal_record(self, exc: Exception) -> None:
        code = self.kwargs.get("code", "")
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            refused = exc if isinstance(exc, PartnerKeyRefused) else None
            facts = _push_facts(
                self.request,
                code,
                credential=refused.credential if refused else None,
                key_prefix=refused.key_prefix if refused else "",
            )
            push_attempt_record(facts, outcome=PushAttempt.Outcome.UNAUTHENTICATED, status_code=401)
        elif isinstance(exc, exceptions.Throttled):
            # Throttled by key after authentication, or by address before it, when the key is not looked up.
            facts = _push_facts(
                self.request,
                code,
                credential=self.authenticated_credential,
                key_prefix=_presented_key_prefix(self.request),
            )
            push_attempt_record(facts, outcome=PushAttempt.Outcome.RATE_LIMITED, status_code=429)


class BatchDetailView(PartnerAPIView):
    """`GET /api/batches/<uuid>/`: what became of a batch this partner pushed; another partner's is a 404."""

    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [IsPartnerSystem]
    throttle_classes = [PartnerKeyThrottle]
    throttle_scope = "status"

    def get(self, request: Request, public_id: UUID) -> Response:
        credential = _partner_credential(request)
        batch = pushed_batch_for_partner(organisation_id=credential.organisation_id, public_id=public_id)
        if batch is None:
            raise Http404
        return Response(PushedBatchSerializer(batch, context={"request": request}).data)
