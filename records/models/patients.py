"""Patients and their record entries, one per resource a partner sent."""

import uuid

from django.db import models
from django.utils import timezone

from records import nhs_number
from records.models.ingestion import IngestRun
from records.models.partners import Feed, Organisation
from records.sections import Section

# The object permission a legitimate relationship grants on a patient (`consent.LegitimateRelationship`).
ACCESS_RECORD_PERMISSION = "access_record"


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
        permissions = [(ACCESS_RECORD_PERMISSION, "Has a legitimate relationship with the patient")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(nhs_number__regex=r"^[0-9]{10}$"), name="patient_nhs_number_ten_digits"
            )
        ]
        indexes = [
            models.Index(fields=["family_name", "birth_date"]),
            # The name search asks for the birth date first (records/access_search.py): exact and most selective.
            models.Index(fields=["birth_date"], name="patient_birth_date"),
        ]

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


# Merge chains are short in practice; the bound only guards against a cycle in bad source data.
MAX_MERGE_HOPS = 10


def patient_survivor(patient: Patient | None) -> Patient | None:
    """Follow merges (HL7 A40, FHIR replaced-by) to the record that now holds the patient's data."""
    hops = 0
    while patient is not None and patient.merged_into_id is not None and hops < MAX_MERGE_HOPS:
        patient = (
            Patient.objects.select_related("registered_practice").filter(pk=patient.merged_into_id).first()
        )
        hops += 1
    return patient
