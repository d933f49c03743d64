"""The feeds' rule of the scan for suspicious patterns: a feed's ingest run that created far more legitimate
relationships than that feed's runs usually do (a partner sending every patient as "registered", a mapping gone
wrong), so that many users suddenly may open records they could not before.

What a run created is read from the change history of derived relationships (`consent.derivation_history`): one
creation entry per relationship, naming the feed and run that derived it. What always holds:
- a run is judged once, after it finished: this rule's mark (`AlertScan.last_event_id`, here an IngestRun id, not an
  AccessEvent id) stops below the first run still going, since runs finish out of order, and moves past a run only
  when every run up to it has finished; a run a dead worker left marked running (started longer ago than a task
  may run) never committed anything and is passed;
- a run is alerted when it created more than `ALERT_FEED_RELATIONSHIPS_MINIMUM` and more than
  `ALERT_FEED_RELATIONSHIPS_FACTOR` times the median of the feed's previous succeeded runs (up to
  `PREVIOUS_RUNS` of them); a feed's first run has no usual to compare with and is not alerted;
- one alert per run, raised with the mark's row locked; it names the feed and run, no user and no patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import median

from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Count
from django.db.models.fields.json import KT

from audit.models import Alert, AlertScan
from consent.models import LegitimateRelationship
from records.models import IngestRun

RULE = Alert.Kind.FEED_RELATIONSHIP_RATE
BATCH = 500
PREVIOUS_RUNS = 20


def feed_relationship_rate_scan(now: datetime) -> int:
    """Judge every ingest run finished since this rule's mark; return how many alerts were raised."""
    raised = 0
    # A run still marked running that started before this is taken for dead (as records.ingest.pipeline does).
    alive_since = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    while True:
        with transaction.atomic():
            scan, _ = AlertScan.objects.select_for_update().get_or_create(rule=RULE)
            runs = list(
                IngestRun.objects.filter(pk__gt=scan.last_event_id)
                .select_related("feed")
                .order_by("pk")[:BATCH]
            )
            judged: list[IngestRun] = []
            for run in runs:
                if run.status == IngestRun.Status.RUNNING and run.started_at >= alive_since:
                    break
                judged.append(run)
            succeeded = [run for run in judged if run.status == IngestRun.Status.SUCCEEDED]
            created = relationships_created(succeeded)
            raised += sum(_judge(run, created.get(run.pk, 0), now) for run in succeeded)
            if judged:
                scan.last_event_id = judged[-1].pk
            scan.scanned_at = now
            scan.save(update_fields=["last_event_id", "scanned_at"])
        if len(judged) < BATCH:
            return raised


def relationships_created(runs: Sequence[IngestRun]) -> dict[int, int]:
    """How many relationships each run derived when it was ingested, from the change history, by run id."""
    finished = [run for run in runs if run.finished_at is not None]
    if not finished:
        return {}
    rows = (
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(LegitimateRelationship),
            action=LogEntry.Action.CREATE,
            # The runs' own time span first: the timestamp is indexed, the run id inside the JSON is not.
            timestamp__gte=min(run.started_at for run in finished),
            timestamp__lte=max(run.finished_at for run in finished if run.finished_at is not None),
        )
        .annotate(run=KT("additional_data__run_id"))
        .filter(run__in=[str(run.pk) for run in finished])
        .values_list("run")
        .annotate(created=Count("pk"))
        .order_by()
    )
    return {int(run): created for run, created in rows}


def _judge(run: IngestRun, created: int, now: datetime) -> bool:
    minimum = settings.ALERT_FEED_RELATIONSHIPS_MINIMUM
    if created <= minimum:
        return False
    previous = list(
        IngestRun.objects.filter(
            feed_id=run.feed_id, status=IngestRun.Status.SUCCEEDED, pk__lt=run.pk
        ).order_by("-pk")[:PREVIOUS_RUNS]
    )
    if not previous:
        return False
    counts = relationships_created(previous)
    usual = median(counts.get(earlier.pk, 0) for earlier in previous)
    threshold = max(minimum, settings.ALERT_FEED_RELATIONSHIPS_FACTOR * usual)
    if created <= threshold:
        return False
    reference = f"FEED-{run.pk}"
    # Not audit.alerts.alert_raise_once, which is about an access: here there is no access, user or patient. The
    # mark's row lock already keeps a second scan out.
    if Alert.objects.filter(kind=RULE, reference=reference).exists():
        return False
    feed = run.feed
    Alert.objects.create(
        kind=RULE,
        reference=reference,
        reason=(
            f"Run {run.pk} of {feed.name} ({feed.code}) created {created} relationships; the median of its "
            f"previous {len(previous)} runs is {usual:g} (alerted above {threshold:g})."
        ),
        raised_at=run.finished_at or now,
    )
    return True
