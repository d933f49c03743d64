"""The patients' rights that limit who sees what: objections, subject access requests, the national data opt-out."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from records.models import Feed, Organisation, Patient
from records.sections import Section


class Objection(models.Model):
    """A patient's objection to their record being shared: in whole, in part, or with or from named partners.

    Considered case by case: received → identity verified (matched to a patient) or not found → under review
    (clinical input) → upheld, partly upheld or not upheld (with a reason) → patient informed; withdrawn at any
    time. Due one calendar month after receipt, extendable with a reason. Only an upheld or partly upheld
    objection changes what `consent.policy.decide` shows, and then only its decided scope (`upheld_*`), which may
    be narrower than what was asked for (`scope_*`). django-auditlog records every change with its actor.
    """

    class Channel(models.TextChoices):
        WEB_FORM = "web-form", "Online form"
        PHONE = "phone", "Phone"
        LETTER = "letter", "Letter"
        IN_PERSON = "in-person", "In person"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        IDENTITY_VERIFIED = "identity-verified", "Identity verified"
        NOT_FOUND = "not-found", "Identity not verified: no matching patient"
        UNDER_REVIEW = "under-review", "Under review"
        UPHELD = "upheld", "Upheld"
        PARTLY_UPHELD = "partly-upheld", "Partly upheld"
        NOT_UPHELD = "not-upheld", "Not upheld"
        WITHDRAWN = "withdrawn", "Withdrawn"

    class RefusalReason(models.TextChoices):
        SAFEGUARDING = "safeguarding", "Safeguarding"
        PUBLIC_INTEREST = "public-interest", "Overriding public interest"
        CARE_NOT_OTHERWISE = "care-not-otherwise", "Care cannot otherwise be delivered safely"

    class OnBehalf(models.TextChoices):
        SELF = "self", "The patient themselves"
        PARENT = "parent", "A parent or guardian of a child"
        LASTING_POWER_OF_ATTORNEY = "lasting-power-of-attorney", "Someone with lasting power of attorney"
        WITH_AUTHORITY = "with-authority", "Someone the patient has authorised"

    class ContactBy(models.TextChoices):
        EMAIL = "email", "Email"
        PHONE = "phone", "Phone"
        POST = "post", "Post"

    # Names the case, never the patient: shown to the requester, in letters and in the IG team's lists.
    reference = models.CharField(max_length=12, unique=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)

    # Who the requester says the patient is, as given; matched to a patient only by the IG team.
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    nhs_number = models.CharField(max_length=10, blank=True)
    address = models.CharField(max_length=300, blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    contact_by = models.CharField(max_length=8, choices=ContactBy.choices)
    contact_detail = models.CharField(max_length=300)
    on_behalf = models.CharField(max_length=32, choices=OnBehalf.choices, default=OnBehalf.SELF)
    requester_name = models.CharField(
        "name of the person asking, if not the patient", max_length=200, blank=True
    )
    reason_text = models.TextField("the patient's reason", blank=True)

    # What was asked for. Sections are PRSB headings; partners are ODS codes.
    scope_whole_record = models.BooleanField(default=False)
    scope_sections = ArrayField(
        models.CharField(max_length=64, choices=Section.choices), default=list, blank=True
    )
    # Data these partners sent is not to be shared with anyone else.
    scope_from_partners = ArrayField(models.CharField(max_length=6), default=list, blank=True)
    # These partners' staff are not to see the record at all.
    scope_to_partners = ArrayField(models.CharField(max_length=6), default=list, blank=True)

    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="objections"
    )
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    extension_reason = models.TextField(blank=True)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    entered_for = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="objections_entered"
    )
    # A digest of the submission as typed, so the same submission sent again quickly is recognised, not stored twice.
    fingerprint = models.CharField(max_length=64, db_index=True, blank=True)

    identity_checked_at = models.DateTimeField(null=True, blank=True)
    identity_checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    identity_note = models.TextField(blank=True)
    clinical_input = models.TextField(blank=True)
    clinical_input_by = models.CharField("clinician consulted", max_length=200, blank=True)
    clinical_input_at = models.DateTimeField(null=True, blank=True)

    # The decision, and the scope it upholds (partly upheld: a part of what was asked for).
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    refusal_reason = models.CharField(max_length=24, choices=RefusalReason.choices, blank=True)
    decision_note = models.TextField(blank=True)
    upheld_whole_record = models.BooleanField(default=False)
    upheld_sections = ArrayField(
        models.CharField(max_length=64, choices=Section.choices), default=list, blank=True
    )
    upheld_from_partners = ArrayField(models.CharField(max_length=6), default=list, blank=True)
    upheld_to_partners = ArrayField(models.CharField(max_length=6), default=list, blank=True)
    # Whether a break-glass for safeguarding or overriding public interest may set this objection aside for its
    # time; such an override is its own, louder audit event and alert.
    break_glass_may_override = models.BooleanField(default=False)

    informed_at = models.DateTimeField("patient informed", null=True, blank=True)
    informed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_note = models.TextField(blank=True)

    ENFORCED = (Status.UPHELD, Status.PARTLY_UPHELD)
    OPEN = (Status.RECEIVED, Status.IDENTITY_VERIFIED, Status.UNDER_REVIEW)

    class Meta:
        ordering = ["due_at", "pk"]
        indexes = [
            models.Index(
                fields=["patient"],
                name="objection_enforced_patient",
                condition=models.Q(status__in=["upheld", "partly-upheld"]),
            )
        ]
        permissions = [("manage_objections", "Can manage objections and subject access requests")]

    def __str__(self) -> str:
        return f"Objection {self.reference} ({self.get_status_display()})"

    @property
    def is_enforced(self) -> bool:
        return self.status in self.ENFORCED

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class SubjectAccessRequest(models.Model):
    """A patient's request to learn what sharedcare holds and who accessed their record and why.

    Received → identity verified → fulfilled with the patient's access report; due one calendar month after
    receipt, extendable with a reason; overdue requests raise an alert.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        IDENTITY_VERIFIED = "identity-verified", "Identity verified"
        FULFILLED = "fulfilled", "Fulfilled"
        WITHDRAWN = "withdrawn", "Withdrawn"

    reference = models.CharField(max_length=12, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)
    channel = models.CharField(max_length=16, choices=Objection.Channel.choices)
    requester_name = models.CharField(max_length=200)
    contact_by = models.CharField(max_length=8, choices=Objection.ContactBy.choices)
    contact_detail = models.CharField(max_length=300)
    nhs_number = models.CharField(max_length=10, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="subject_access_requests"
    )
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    extension_reason = models.TextField(blank=True)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    identity_checked_at = models.DateTimeField(null=True, blank=True)
    identity_checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    fulfilled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The access report sent: a CSV of the patient's access events, kept as sent.
    report = models.TextField(blank=True)
    note = models.TextField(blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_note = models.TextField(blank=True)

    class Meta:
        ordering = ["due_at", "pk"]

    def __str__(self) -> str:
        return f"Subject access request {self.reference} ({self.get_status_display()})"


class NationalOptOut(models.Model):
    """A patient's national data opt-out, as a feed or staff recorded it.

    It governs uses beyond individual care: it does not hide data from the direct-care view unless the deployment
    sets `NDOP_HIDES_DIRECT_CARE`.
    """

    class Source(models.TextChoices):
        FEED = "feed", "A partner's feed"
        STAFF = "staff", "Recorded by staff"

    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="national_opt_out")
    source = models.CharField(max_length=8, choices=Source.choices)
    source_feed = models.ForeignKey(Feed, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"National data opt-out for patient {self.patient_id}"
