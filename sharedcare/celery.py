"""The Celery application. Settings come from Django's, under the CELERY_ prefix."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sharedcare.settings")

app = Celery("sharedcare")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The one beat schedule of the project.
app.conf.beat_schedule = {
    "verify-audit-chain-nightly": {
        "task": "audit.access_chain_verify_task",
        "schedule": crontab(hour=2, minute=15),
    },
    # Anchors the audit chain's head outside the events table, so removing the newest events is found.
    "checkpoint-audit-chain": {
        "task": "audit.audit_checkpoint_write_task",
        "schedule": crontab(minute="*/15"),
    },
    # Starts a run of every live inbox and HTTP-pull feed that is due (see records.feeds.scheduling).
    "dispatch-due-feeds": {
        "task": "records.feeds_due_dispatch_task",
        "schedule": 60.0,
        # A dispatch not started within its minute is superseded by the next one.
        "options": {"expires": 55},
    },
    # Queues again the pushed batches left pending (the broker was down when they came); see docs/push-api.md.
    "requeue-pending-pushed-batches": {
        "task": "records.pushed_batches_requeue_task",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 240},
    },
    # Writes down which self-claims and break-glass grants have expired; access already closed when they did.
    "tidy-personal-grants": {
        "task": "records.personal_grants_tidy_task",
        "schedule": crontab(minute="*/15"),
    },
    # Raises one alert for each patient's objection or access request open past its legal due date.
    "alert-overdue-patient-cases": {
        "task": "consent.case_overdue_alerts_raise_task",
        "schedule": crontab(minute=5),
    },
    # E-mails each privacy officer what is open: alerts by kind, overdue cases (consent.digest); 07:00 UTC.
    "send-privacy-officers-digest": {
        "task": "consent.alert_digest_send_task",
        "schedule": crontab(hour=7, minute=0),
    },
    # Scans the access trail and the finished ingest runs for suspicious patterns (consent.surveillance).
    "scan-for-suspicious-access": {
        "task": "consent.suspicious_access_scan_task",
        "schedule": crontab(minute="*/5"),
    },
}
