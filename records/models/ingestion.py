"""The bookkeeping of ingestion: runs, pushed batches and their attempts, quarantined records."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from records.models.partners import Feed, PartnerCredential


class PushedBatch(models.Model):
    """A payload a partner pushed, kept whole until a worker has ingested it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    feed = models.ForeignKey(Feed, on_delete=models.PROTECT, related_name="pushed_batches")
    credential = models.ForeignKey(PartnerCredential, on_delete=models.PROTECT, related_name="batches")
    content_type = models.CharField(max_length=100)
    payload = models.BinaryField()
    size = models.PositiveIntegerField()
    checksum = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    received_at = models.DateTimeField(default=timezone.now)
    ingest_run = models.OneToOneField(
        "IngestRun", null=True, blank=True, on_delete=models.PROTECT, related_name="pushed_batch"
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "pushed batches"
        # The sweep's question every few minutes: which batches still wait, oldest first.
        indexes = [
            models.Index(
                fields=["received_at"], condition=models.Q(status="pending"), name="pushed_batch_pending"
            )
        ]

    def __str__(self) -> str:
        return f"batch {self.public_id}"


class PushAttempt(models.Model):
    """Every push to the API, accepted or refused: who tried, into which feed, and what they were told."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        UNAUTHENTICATED = "unauthenticated", "Wrong or missing credentials"
        FORBIDDEN = "forbidden", "Not this partner's feed"
        FEED_CLOSED = "feed-closed", "Feed not open to pushes"
        UNKNOWN_FEED = "unknown-feed", "No such feed"
        UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type", "Wrong content type"
        TOO_LARGE = "too-large", "Body too large"
        INVALID = "invalid", "Empty or unreadable body"
        RATE_LIMITED = "rate-limited", "Too many requests"
        OVER_QUOTA = "over-quota", "Daily byte quota used up"
        # Stored as a pending batch, but the queue could not take it; the sweep queues it later.
        UNAVAILABLE = "unavailable", "Stored; queue unavailable"

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    feed_code = models.CharField(max_length=64)
    credential = models.ForeignKey(
        PartnerCredential, null=True, blank=True, on_delete=models.PROTECT, related_name="attempts"
    )
    key_prefix = models.CharField(max_length=12, blank=True)
    outcome = models.CharField(max_length=32, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField()
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveIntegerField(default=0)
    batch = models.OneToOneField(
        PushedBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="attempt"
    )
    request_id = models.CharField(max_length=64, blank=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"push to {self.feed_code}: {self.get_outcome_display()}"


class IngestRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        COMMAND = "command", "Ingest command"
        SCHEDULE = "schedule", "Schedule"
        PUSH = "push", "Partner push"
        REPLAY = "replay", "Quarantine replay"

    feed = models.ForeignKey(Feed, on_delete=models.PROTECT, related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.COMMAND)
    source_name = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    resources_read = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    quarantined = models.PositiveIntegerField(default=0)
    # Patient resources are counted in created/updated/unchanged/quarantined like any other; these say how many of
    # the created and updated were patients rather than record entries.
    patients_created = models.PositiveIntegerField(default=0)
    patients_updated = models.PositiveIntegerField(default=0)
    checksum = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    # Not stored: the patients the run created, or that a partner's Patient id now leads to, as the pipeline returns
    # the run, for its caller to chain the replay of what waited for them (records.tasks); empty when read back.
    arrived_patient_ids: tuple[int, ...] = ()

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # A feed's last run, read from the top of its own runs, not by sorting all of them (the feed monitor).
            models.Index(fields=["feed", "-started_at", "-id"], name="ingest_run_feed_newest"),
            # The runs of the last days, for every feed at once (the monitor's error rates and chart).
            models.Index(fields=["started_at"], name="ingest_run_started"),
        ]

    def __str__(self) -> str:
        return f"{self.feed.code} run {self.pk}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def resources_per_second(self) -> float | None:
        seconds = self.duration_seconds
        if not seconds:
            return None
        return self.resources_read / seconds


class QuarantinedRecord(models.Model):
    """A partner record the ingester could not use, kept whole with the reason, to be replayed after a fix."""

    class Reason(models.TextChoices):
        UNREADABLE = "unreadable", "Unreadable input"
        INVALID_RESOURCE = "invalid-resource", "Invalid FHIR resource"
        UNSUPPORTED_TYPE = "unsupported-type", "Unsupported resource type"
        NO_NHS_NUMBER = "no-nhs-number", "No NHS number"
        INVALID_NHS_NUMBER = "invalid-nhs-number", "Invalid NHS number"
        UNKNOWN_PATIENT = "unknown-patient", "Unknown patient"
        DEMOGRAPHIC_MISMATCH = "demographic-mismatch", "Demographics do not match the known patient"
        NO_SUBJECT = "no-subject", "No patient reference"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        REPLAYING = "replaying", "Being replayed"
        REPLAYED = "replayed", "Replayed"
        DISCARDED = "discarded", "Discarded"

    feed = models.ForeignKey(Feed, on_delete=models.PROTECT, related_name="quarantined")
    ingest_run = models.ForeignKey(IngestRun, on_delete=models.PROTECT, related_name="quarantined_records")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    detail = models.TextField()
    resource_type = models.CharField(max_length=64, blank=True)
    source_id = models.CharField(max_length=200, blank=True)
    location = models.CharField(max_length=500, blank=True, help_text="File and position of the record")
    raw_payload = models.TextField()
    # sha256 of the raw payload: the same bad record sent again is not quarantined twice while one is pending.
    payload_hash = models.CharField(max_length=64)
    # The NHS number the record names, when it could be read: an unknown patient is replayed once they arrive.
    nhs_number = models.CharField(max_length=10, blank=True, db_index=True)
    # The partner's Patient id a relative `Patient/<id>` reference named, when no patient was known for it: the
    # record is replayed once the partner sends that Patient (see PartnerPatientId).
    patient_reference = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    replayed_by = models.ForeignKey(
        IngestRun, null=True, blank=True, on_delete=models.PROTECT, related_name="replayed_records"
    )
    discarded_reason = models.TextField(blank=True)
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["feed", "status", "reason"]),
            models.Index(
                fields=["patient_reference"],
                condition=models.Q(status="pending") & ~models.Q(patient_reference=""),
                name="quarantine_waiting_reference",
            ),
            # The records still waiting, counted per feed (the monitor), however many were replayed or discarded.
            models.Index(
                fields=["feed"], condition=models.Q(status="pending"), name="quarantine_pending_feed"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["feed", "reason", "payload_hash"],
                condition=models.Q(status="pending"),
                name="quarantine_pending_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} ({self.resource_type or 'unknown type'})"
