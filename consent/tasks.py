"""Celery tasks of the consent app.

Thin, as in `records.tasks`: each calls one service, retries only a database that went away, and is safe to run twice.
"""

from smtplib import SMTPException
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from consent.sensitive import sensitive_flags_refresh

# A database that went away is worth another attempt a few seconds later; nothing else is.
_RETRY_ON_DATABASE: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 4,
}


@shared_task(
    name="consent.sensitive_flags_refresh_task",
    **_RETRY_ON_DATABASE,
)
def sensitive_flags_refresh_task() -> int:
    """Re-flag stored entries after the sensitive codes or the SNOMED CT hierarchy changed; return how many changed.

    Takes no arguments: it always brings every entry up to the sets as they are when it runs, so two queued after
    two changes do the work once between them.
    """
    return sensitive_flags_refresh()


@shared_task(
    name="consent.case_overdue_alerts_raise_task",
    **_RETRY_ON_DATABASE,
)
def case_overdue_alerts_raise_task() -> int:
    """Raise one alert for each objection and subject access request open past its due date; return how many were
    raised.

    Takes no arguments and is safe to run twice, or twice at once: a case has one overdue alert, however often this
    runs (`consent.subject_access.case_overdue_alerts_raise`).
    """
    from consent.subject_access import case_overdue_alerts_raise

    return len(case_overdue_alerts_raise())


@shared_task(
    name="consent.suspicious_access_scan_task",
    **_RETRY_ON_DATABASE,
)
def suspicious_access_scan_task() -> int:
    """Scan the access trail and the finished ingest runs for suspicious patterns; return how many alerts were
    raised.

    Takes no arguments and is safe to run twice, or twice at once: each rule judges each event once, under a lock
    of its mark, and a finding raises one alert (`consent.surveillance`).
    """
    from consent.surveillance import suspicious_access_scan

    return suspicious_access_scan()


@shared_task(
    name="consent.alert_digest_send_task",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError, SMTPException, ConnectionError),
    retry_backoff=60,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=4,
)
def alert_digest_send_task() -> int:
    """E-mail each privacy officer today's digest of open alerts and cases; return how many were sent.

    Takes no arguments and is safe to run twice: each officer gets one a day (`consent.digest.alert_digest_send`),
    and a retry after a mail server's failure sends only what was not sent.
    """
    from consent.digest import alert_digest_send

    return alert_digest_send()
