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
}
