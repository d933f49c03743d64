"""The door for the privacy officer's list of failed sign-ins and current lockouts (django-axes keeps them).

Who may: privacy officers, as `consent.policy.may_read_audit` says; to anyone else `PatientNotFound`, the answer
every audit page gives. What always holds: reading the list is a `read-audit` event with purpose audit, written
before it is read; a refusal's denied event is committed before `PatientNotFound` is raised. The list names
usernames and addresses, never a patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AccessEvent
from audit.services import AccessFacts, access_event_record
from consent.policy import may_read_audit
from records.access import PatientNotFound, User, actor_of, context_of

FAILURES_SHOWN = 200
NOT_A_PRIVACY_OFFICER = "user may not read the audit trail"


@dataclass(frozen=True)
class SignInFailures:
    """The newest failed sign-ins, and the username and address pairs locked out at `now`."""

    failures: list[AccessFailureLog]
    lockouts: list[AccessAttempt]
    now: datetime


def sign_in_failures_for_user(
    *, user: User, request: HttpRequest | None, now: datetime | None = None
) -> SignInFailures:
    """The failed sign-ins (newest first, at most `FAILURES_SHOWN`) and the lockouts in force, for a privacy officer."""
    allowed = may_read_audit(user)
    now = now or timezone.now()
    found: SignInFailures | None = None
    with transaction.atomic():
        access_event_record(
            actor_of(user),
            AccessFacts(
                action=AccessEvent.Action.READ_AUDIT,
                purpose=AccessEvent.Purpose.AUDIT,
                outcome=AccessEvent.Outcome.ALLOWED if allowed else AccessEvent.Outcome.DENIED,
                query="failed sign-ins",
                basis="failed sign-ins" if allowed else "",
                reason="" if allowed else NOT_A_PRIVACY_OFFICER,
            ),
            context_of(request),
        )
        if allowed:
            found = SignInFailures(
                failures=list(AccessFailureLog.objects.order_by("-attempt_time", "-pk")[:FAILURES_SHOWN]),
                lockouts=list(
                    AccessAttempt.objects.filter(
                        failures_since_start__gte=settings.AXES_FAILURE_LIMIT,
                        attempt_time__gt=now - settings.AXES_COOLOFF_TIME,
                    ).order_by("-attempt_time", "-pk")
                ),
                now=now,
            )
    if found is None:
        raise PatientNotFound
    return found
