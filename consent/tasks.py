"""Celery tasks of the consent app.

Thin, as in `records.tasks`: each calls one service, retries only a database that went away, and is safe to run twice.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from consent.sensitive import sensitive_flags_refresh


@shared_task(
    name="consent.sensitive_flags_refresh_task",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=4,
)
def sensitive_flags_refresh_task() -> int:
    """Re-flag stored entries after the sensitive codes or the SNOMED CT hierarchy changed; return how many changed.

    Takes no arguments: it always brings every entry up to the sets as they are when it runs, so two queued after
    two changes do the work once between them.
    """
    return sensitive_flags_refresh()
