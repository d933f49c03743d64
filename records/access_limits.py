"""The door's limit on how many patients one user may search for in an hour.

A clinician searches for the patients in front of them; hundreds of searches an hour by one account is a script, a
shared login or someone trawling, and the record is not a directory. What always holds:
- each well-formed search a signed-in user makes counts once against their own hourly allowance
  (`PATIENT_SEARCHES_PER_HOUR`, counted in the shared Redis by django-ratelimit, so every web process shares it);
- a search past the allowance is not made: no patient is looked up, a `search` event with outcome denied (the number
  typed, as every search records it) is committed, and then `SearchLimitReached` is raised;
- the first refused search in an hour raises one `SEARCH_LIMIT` alert for the privacy officer, naming the user and
  the hour, never a patient; later ones in the same hour add events, not alerts.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

# django-ratelimit ships no type information.
from django_ratelimit.core import is_ratelimited

from audit.alerts import alert_raise_once
from audit.models import AccessEvent, Alert
from audit.services import AccessFacts, access_event_record
from records.access import User, actor_of, context_of

SEARCH_LIMIT_REASON = "hourly patient search limit reached"


class SearchLimitReached(Exception):
    """The user has searched for as many patients as an hour allows; the search was refused and audited."""


def patient_search_limit_check(
    *, user: User, nhs_number_text: str, request: HttpRequest, now: datetime | None = None
) -> None:
    """Count this search against the user's hourly allowance; past it, audit the refusal, alert once an hour, and
    raise `SearchLimitReached`. The caller validates the number's form first, as for the search itself."""
    rate = f"{settings.PATIENT_SEARCHES_PER_HOUR}/h"
    if not is_ratelimited(
        request, group="patient-search", key="user", rate=rate, method="POST", increment=True
    ):
        return
    now = now or timezone.now()
    actor = actor_of(user)
    with transaction.atomic():
        event = access_event_record(
            actor,
            AccessFacts(
                action=AccessEvent.Action.SEARCH,
                outcome=AccessEvent.Outcome.DENIED,
                query=nhs_number_text[:200],
                reason=SEARCH_LIMIT_REASON,
            ),
            context_of(request),
        )
        hour = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
        alert_raise_once(
            kind=Alert.Kind.SEARCH_LIMIT,
            reference=f"SRCH-{actor.user_id}-{hour:%Y%m%d%H}"[:32],
            actor=actor,
            patient_id=None,
            reason=(
                f"More than {settings.PATIENT_SEARCHES_PER_HOUR} patient searches in the hour from "
                f"{hour:%H:%M} on {hour:%-d %B %Y}; the rest were refused"
            ),
            event=event,
        )
    raise SearchLimitReached
