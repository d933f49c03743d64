"""The privacy officers' daily digest: one plain e-mail a day to each, saying what waits for them.

What always holds:
- it goes to every active user `consent.policy.may_review_alerts` names who has an e-mail address, and to no one else;
- it holds counts and ages only: open alerts by kind, how long the oldest has waited, open and overdue objections
  and subject access requests, and a link to where they are worked. No patient's name, NHS number or id, no case
  reference and no user named in an alert is in it, since mail leaves the system;
- each recipient gets one a day (the day in the site's time zone), however often it runs: a Redis key per recipient
  and day is taken before sending, atomically, and given back if the sending fails so a retry sends it.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.mail import send_mail
from django.db.models import Count, Min
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from audit.models import Alert
from consent.models import Objection, SubjectAccessRequest
from consent.policy import may_review_alerts
from consent.subject_access import OPEN as REQUEST_OPEN

logger = logging.getLogger(__name__)

# Long enough to outlive the day it marks, wherever in the day the digest ran.
_SENT_KEY_SECONDS = 2 * 24 * 60 * 60


@dataclass(frozen=True)
class DigestSummary:
    open_alerts: list[tuple[str, int]]
    oldest_open_alert_age: timedelta | None
    objections_open: int
    objections_overdue: int
    requests_open: int
    requests_overdue: int


def digest_summary(now: datetime) -> DigestSummary:
    """What is open at `now`: alerts by kind (in the order of `Alert.Kind`), the oldest open alert's age, and the
    open and overdue objections and subject access requests."""
    open_alerts = Alert.objects.filter(reviewed_at__isnull=True)
    by_kind = dict(open_alerts.values_list("kind").annotate(count=Count("id")).order_by())
    oldest = open_alerts.aggregate(oldest=Min("raised_at"))["oldest"]
    objections = Objection.objects.filter(status__in=Objection.OPEN)
    requests = SubjectAccessRequest.objects.filter(status__in=REQUEST_OPEN)
    return DigestSummary(
        open_alerts=[(kind.label, by_kind[kind.value]) for kind in Alert.Kind if by_kind.get(kind.value)],
        oldest_open_alert_age=now - oldest if oldest else None,
        objections_open=objections.count(),
        objections_overdue=objections.filter(due_at__lt=now).count(),
        requests_open=requests.count(),
        requests_overdue=requests.filter(due_at__lt=now).count(),
    )


def _age(age: timedelta) -> str:
    if age >= timedelta(days=1):
        return f"{age.days} day{'s' if age.days != 1 else ''}"
    hours = int(age.total_seconds() // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}" if hours else "less than an hour"


def _console_url() -> str:
    try:
        path = reverse("records:audit-console")
    except NoReverseMatch:
        path = reverse("records:alert-list")
    return f"{settings.SITE_URL}{path}"


def digest_text(summary: DigestSummary, *, day: str) -> tuple[str, str]:
    """The subject and plain-text body of the digest for `day`."""
    alert_total = sum(count for _, count in summary.open_alerts)
    overdue = summary.objections_overdue + summary.requests_overdue
    subject = f"sharedcare daily digest, {day}: {alert_total} open alerts, {overdue} overdue cases"
    lines = [f"What waits for the privacy officers on {day}.", "", f"Open alerts: {alert_total}"]
    lines += [f"  {label}: {count}" for label, count in summary.open_alerts]
    if summary.oldest_open_alert_age is not None:
        lines.append(f"  The oldest has waited {_age(summary.oldest_open_alert_age)}.")
    lines += [
        "",
        f"Objections: {summary.objections_open} open, {summary.objections_overdue} overdue",
        f"Subject access requests: {summary.requests_open} open, {summary.requests_overdue} overdue",
        "",
        f"Work them in sharedcare: {_console_url()}",
        "",
        "This message names no patient. Sign in to see the details.",
    ]
    return subject, "\n".join(lines) + "\n"


def digest_recipients() -> list[AbstractBaseUser]:
    """Active users with an e-mail address whom the policy makes privacy officers."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="").order_by("pk")
    return [user for user in users if may_review_alerts(user)]


def alert_digest_send(now: datetime | None = None) -> int:
    """Send today's digest to each privacy officer who has not had it today; return how many were sent.

    Safe to run twice, or twice at once: each recipient's digest for the day is sent once. A failed sending raises,
    leaving that recipient (and those after) to the next run.
    """
    moment = now or timezone.now()
    day = timezone.localdate(moment)
    subject, body = digest_text(digest_summary(moment), day=f"{day:%-d %B %Y}")
    sent = 0
    for user in digest_recipients():
        key = f"consent:alert-digest:{day.isoformat()}:{user.pk}"
        if not cache.add(key, moment.isoformat(), _SENT_KEY_SECONDS):
            continue
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [getattr(user, "email", "")])
        except Exception:
            cache.delete(key)
            raise
        logger.info("alert digest for %s sent to user %s", day.isoformat(), user.pk)
        sent += 1
    return sent
