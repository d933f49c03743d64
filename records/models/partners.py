"""Partners, their feeds and the keys their systems push with."""

from datetime import datetime, timedelta

from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

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
