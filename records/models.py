"""Partners, patients, their record entries, and the feeds that bring the entries in."""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from records import nhs_number
from records.sections import Section

ods_code_validator = RegexValidator(
    r"^[A-Z0-9]{3,6}$", "An ODS code is 3 to 6 capital letters and digits (for example RGT or D82044)."
)


class Organisation(models.Model):
    """A partner: a source of data and the employer of users."""

    class Kind(models.TextChoices):
        GP_PRACTICE = "gp-practice", "GP practice"
        ACUTE_TRUST = "acute-trust", "Acute trust"
        MENTAL_HEALTH_TRUST = "mental-health-trust", "Mental health trust"
        COMMUNITY_TRUST = "community-trust", "Community trust"
        AMBULANCE_TRUST = "ambulance-trust", "Ambulance trust"
        LOCAL_AUTHORITY = "local-authority", "Local authority"
        ICB = "icb", "Integrated care board"

    ods_code = models.CharField("ODS code", max_length=6, unique=True, validators=[ods_code_validator])
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    primary_care_network = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    # Legitimate relationships are granted to this group; staff of the organisation are its members.
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="organisation")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.ods_code})"


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Not known"

    # URLs carry this opaque id, never the NHS number (which would land in access logs).
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    nhs_number = models.CharField(
        "NHS number", max_length=10, unique=True, validators=[nhs_number.validate_nhs_number]
    )
    given_name = models.CharField(max_length=200, blank=True)
    family_name = models.CharField(max_length=200, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=8, choices=Sex.choices, default=Sex.UNKNOWN)
    address = models.TextField(blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    registered_practice = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="registered_patients"
    )
    # Set when a source merges this record into another (HL7 A40, FHIR Patient.link replaced-by).
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from"
    )
    death_date = models.DateField(null=True, blank=True)
    # PDS "R" / S-flag: address, phone and practice are hidden from roles without the sensitive-records activity.
    is_restricted = models.BooleanField(default=False)
    source_organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The version of the demographics held (the Patient resource's meta.versionId / meta.lastUpdated, or the time an
    # HL7 message was sent): an older copy, from any feed, never overwrites them.
    source_version = models.CharField(max_length=64, blank=True)
    source_last_updated = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("access_record", "Has a legitimate relationship with the patient")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(nhs_number__regex=r"^[0-9]{10}$"), name="patient_nhs_number_ten_digits"
            )
        ]
        indexes = [models.Index(fields=["family_name", "birth_date"])]

    def __str__(self) -> str:
        # No name or NHS number: this string ends up in logs and admin history.
        return f"Patient {self.public_id}"

    @property
    def nhs_number_display(self) -> str:
        return nhs_number.display(self.nhs_number)

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.given_name, self.family_name.upper()) if part)


class PartnerPatientId(models.Model):
    """A partner's own id for a Patient resource it sent, and the patient it led to.

    Lets a later run resolve a literal `Patient/<id>` reference to a patient the partner sent before (an HTTP pull
    since the watermark brings new observations, not the unchanged Patient they refer to). It is never a way to
    match: the Patient resource was matched on its NHS number when it came.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    source_id = models.CharField(max_length=64)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "source_id"], name="partner_patient_id_unique")
        ]

    def __str__(self) -> str:
        return f"Patient/{self.source_id} at {self.organisation_id}"


class Feed(models.Model):
    """One dataset a partner sends: what it carries, in which format, from where, on what schedule."""

    class Format(models.TextChoices):
        FHIR = "fhir", "FHIR R4 (JSON, XML or NDJSON)"
        CSV = "csv", "CSV extract with a declared column mapping"
        HL7V2 = "hl7v2", "HL7 v2 ADT messages"

    class Source(models.TextChoices):
        FILE = "file", "Files given to the ingest command"
        INBOX = "inbox", "Inbox folder"
        HTTP_PULL = "http-pull", "Pull from the partner's FHIR endpoint"
        PUSH = "push", "Pushed by the partner to the API"

    class State(models.TextChoices):
        ONBOARDING = "onboarding", "Onboarding"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"

    code = models.SlugField(max_length=64, unique=True)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="feeds")
    name = models.CharField(max_length=200)
    sections = ArrayField(models.CharField(max_length=64, choices=Section.choices), default=list, blank=True)
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.FHIR)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.FILE)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ONBOARDING)
    # Only a feed that is an authority on demographics (a GP system, PDS) may create patients.
    can_create_patients = models.BooleanField(default=False)
    # How often the feed is due, in minutes; a feed with no success within twice this is stale.
    schedule_minutes = models.PositiveIntegerField(default=60)
    # HTTP pull: the partner's FHIR base URL, and the name of the environment variable holding the value of the
    # Authorization header to send (the secret itself never sits in the database).
    endpoint_url = models.URLField(blank=True)
    endpoint_auth_env = models.CharField(max_length=64, blank=True)
    # CSV: which column holds what, e.g. {"nhs_number": "NHS No", "birth_date": "DOB", ...}.
    csv_mapping = models.JSONField(default=dict, blank=True)
    # HTTP pull: resources last updated at or before this were fetched by a committed run.
    watermark = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["organisation__name", "name"]

    def __str__(self) -> str:
        return self.code

    def is_stale(self, now: datetime) -> bool:
        """A live feed with no success within twice its schedule."""
        if self.state != self.State.LIVE:
            return False
        if self.last_success_at is None:
            return True
        return now - self.last_success_at > timedelta(minutes=2 * self.schedule_minutes)


class PartnerCredential(models.Model):
    """An API key a partner's system uses to push data. Only a hash of the key is stored."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="credentials")
    name = models.CharField(max_length=200, help_text="Which system uses this key")
    key_prefix = models.CharField(
        max_length=12, unique=True, help_text="The first characters, to tell keys apart"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"


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

    class Meta:
        ordering = ["-started_at"]

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


class RecordEntry(models.Model):
    """One resource from one partner, as the partner last sent it."""

    # No index of their own: record_entry_page leads with the patient and record_entry_unique_source with the
    # organisation, and each serves what a single-column index would. Two fewer indexes to write for every entry,
    # and no organisation-only index for the planner to pick, wrongly, for the held-entry lookups (see upsert.py).
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="entries", db_index=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    feed = models.ForeignKey(Feed, on_delete=models.PROTECT, related_name="entries")
    ingest_run = models.ForeignKey(IngestRun, on_delete=models.PROTECT, related_name="entries")
    section = models.CharField(max_length=64, choices=Section.choices)
    resource_type = models.CharField(max_length=64)
    source_id = models.CharField(max_length=200)
    source_version = models.CharField(max_length=64, blank=True)
    source_last_updated = models.DateTimeField(null=True, blank=True)
    effective_at = models.DateTimeField(null=True, blank=True)
    effective_end = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(null=True, blank=True)
    code_system = models.CharField(max_length=200, blank=True)
    code = models.CharField(max_length=64, blank=True)
    display = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=500)
    resource = models.JSONField()
    content_hash = models.CharField(max_length=64)
    is_sensitive = models.BooleanField(default=False)
    is_confidential = models.BooleanField(default=False)
    is_entered_in_error = models.BooleanField(default=False)
    # The source deleted the resource: kept for the audit trail, never shown.
    is_deleted_at_source = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "resource_type", "source_id"], name="record_entry_unique_source"
            )
        ]
        indexes = [models.Index(fields=["patient", "section", "-effective_at"], name="record_entry_page")]
        verbose_name_plural = "record entries"

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.source_id} from {self.organisation_id}"
