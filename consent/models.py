"""Who may see what: roles, staff role profiles, care teams, legitimate relationships, personal grants, and the
patients' rights that limit them (objections, subject access requests, the national data opt-out)."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from consent.roles import Activity, JobRole
from records import nhs_number
from records.models import Feed, IngestRun, Organisation, Patient, RecordEntry
from records.sections import Section

# The permission that lets a back-office user read what partners sent about patients (quarantined payloads, error
# texts) for the partners they are assigned to support. Only `consent.policy` checks it, and never through
# `has_perm`, so a superuser does not hold it by being a superuser.
FEED_SUPPORT_PERMISSION = "support_feeds"


class Role(models.Model):
    """One national RBAC job role (or a local one) and what it opens: the table `consent.policy` reads.

    The back office edits it; django-auditlog records every change with its actor. A role that is not here opens
    nothing.
    """

    code = models.CharField(max_length=8, unique=True)
    name = models.CharField(max_length=100)
    sections = ArrayField(models.CharField(max_length=64, choices=Section.choices), default=list, blank=True)
    activities = ArrayField(
        models.CharField(max_length=8, choices=Activity.choices), default=list, blank=True
    )
    may_self_claim = models.BooleanField(
        "may declare a relationship", default=False, help_text="Self-claimed relationships, with a reason."
    )
    self_claim_max_hours = models.PositiveIntegerField(
        "longest self-claimed relationship (hours)", default=24
    )
    may_break_glass = models.BooleanField("may break the glass", default=False)
    break_glass_max_hours = models.PositiveIntegerField("longest break-glass grant (hours)", default=4)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(self_claim_max_hours__gte=1, break_glass_max_hours__gte=1),
                name="role_grants_last_at_least_an_hour",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class StaffProfile(models.Model):
    """One role profile: a user holding one job role at one partner organisation.

    A user may hold several (a GP who also works sessions at the hospital) and chooses one at login; the
    chosen one is the only one that counts (`consent.policy.staff_profile_of`).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_profiles"
    )
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="staff")
    job_role = models.CharField(max_length=8, choices=JobRole.choices)
    sds_user_id = models.CharField("SDS user id", max_length=20, blank=True)
    sds_role_profile_id = models.CharField("SDS role profile id", max_length=20, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organisation", "job_role"],
                name="staff_profile_once_per_role_and_organisation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_job_role_display()}, {self.organisation.ods_code})"


class StaffIdentity(models.Model):
    """Who a member of staff is as a person, as HR holds it: used only by the scan of the access trail to find a
    user opening their own record, or a record sharing their surname and address (`consent.surveillance`).

    Never shown on a clinical page and never matched to a patient on the read path; the change history masks it.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_identity"
    )
    nhs_number = models.CharField(
        "NHS number", max_length=10, blank=True, validators=[nhs_number.validate_nhs_number]
    )
    family_name = models.CharField(max_length=200)
    birth_date = models.DateField()
    postcode = models.CharField(max_length=10)
    address_line = models.CharField("first line of address", max_length=200)

    class Meta:
        verbose_name = "staff identity"
        verbose_name_plural = "staff identities"

    def __str__(self) -> str:
        # No name or address: this string ends up in the change history.
        return f"Identity of user {self.user_id}"


class CareTeam(models.Model):
    """A team within one organisation: a relationship held by its group reaches only the team's members."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="care_teams")
    name = models.CharField(max_length=200)
    # The identifier the partner's systems use for the team, matched when a caseload or referral names it.
    code = models.CharField(max_length=64)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="care_team")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="CareTeamMembership", related_name="care_teams"
    )

    class Meta:
        ordering = ["organisation__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "code"], name="care_team_code_unique_in_organisation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.organisation.ods_code})"


class CareTeamMembership(models.Model):
    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="care_team_member_once")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team}"


class LegitimateRelationship(GroupObjectPermissionBase):
    """A django-guardian object permission on a patient granted to an organisation's or a team's group.

    The grant carries why it exists (its basis), where that came from (the feed, run and resource) and until
    when, so expiry takes effect the moment `valid_until` passes rather than at the next clean-up.
    """

    class Basis(models.TextChoices):
        REGISTERED_PRACTICE = "registered-practice", "Registered GP practice"
        CARE_EVENT = "care-event", "Open or recent care event"
        CASELOAD = "caseload", "On a caseload"
        REFERRAL = "referral", "Referral received"

    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="relationships")
    basis = models.CharField(max_length=32, choices=Basis.choices)
    valid_from = models.DateTimeField(default=timezone.now)
    # Null means open-ended: a current registration, or an episode that has not ended.
    valid_until = models.DateTimeField(null=True, blank=True)
    derived_at = models.DateTimeField(default=timezone.now)
    # Provenance: what in the partners' data created this relationship.
    source_feed = models.ForeignKey(Feed, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source_run = models.ForeignKey(
        IngestRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_entry = models.ForeignKey(
        RecordEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_description = models.CharField(max_length=200, blank=True)

    class Meta(GroupObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["group", "content_object"])]

    def __str__(self) -> str:
        return f"{self.get_basis_display()} relationship {self.pk}"


class PersonalGrant(UserObjectPermissionBase):
    """Access one user gave themselves to one patient, for a reason and a limited time; audited and alerted.

    It counts only while the role profile it was made under is the one selected, and only until `valid_until`
    or `ended_at`, whichever comes first.
    """

    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    staff_profile = models.ForeignKey(StaffProfile, on_delete=models.PROTECT, related_name="+")
    # A reference that names the grant, not the patient, for alerts and conversations.
    reference = models.CharField(max_length=16, unique=True)
    reason_text = models.TextField()
    valid_from = models.DateTimeField(default=timezone.now)
    valid_until = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta(UserObjectPermissionBase.Meta):
        abstract = True
        # Guardian's base allows one grant per user and patient, ever; a user may need to claim again next week.
        unique_together = ()  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.reference


class SelfClaimedRelationship(PersonalGrant):
    class Reason(models.TextChoices):
        PLANNED_CARE = "planned-care", "Direct care (planned)"
        UNPLANNED_CARE = "unplanned-care", "Direct care (unplanned)"
        REFERRAL_RECEIVED = "referral-received", "Referral received"
        OTHER = "other", "Other"

    reason_code = models.CharField(max_length=32, choices=Reason.choices)

    class Meta(PersonalGrant.Meta):
        abstract = False
        indexes = [models.Index(fields=["user", "content_object"], name="self_claim_user_patient")]


class BreakGlassGrant(PersonalGrant):
    class Reason(models.TextChoices):
        PATIENT_CONSENTED = "patient-consented", "The patient has consented"
        EMERGENCY = "emergency-unable-to-consent", "Emergency: the patient is unable to consent"
        LEGAL_REQUIREMENT = "legal-requirement", "A legal requirement"
        SAFEGUARDING = "safeguarding-public-interest", "Safeguarding or overriding public interest"

    reason_code = models.CharField(max_length=32, choices=Reason.choices)

    class Meta(PersonalGrant.Meta):
        abstract = False
        indexes = [models.Index(fields=["user", "content_object"], name="break_glass_user_patient")]


class FeedSupportAssignment(models.Model):
    """A back-office user assigned to support one partner's feeds.

    Holding the feed-support permission opens nothing alone: the user reads a partner's quarantined payloads and
    error texts only while assigned to that partner, and only through `records.access.feed_support_open`.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feed_support_assignments"
    )
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="supporters")
    assigned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organisation"], name="feed_support_once_per_partner")
        ]
        permissions = [
            (FEED_SUPPORT_PERMISSION, "Can support partner feeds (read quarantined payloads and error texts)")
        ]

    def __str__(self) -> str:
        return f"{self.user} supports {self.organisation.ods_code}"


class SensitiveCode(models.Model):
    """A code whose presence makes a record entry sensitive: one of the national exclusion sets, extendable.

    SNOMED CT codes match themselves and, where `include_descendants`, every concept below them in `ConceptIsA`;
    ICD-10 codes match as prefixes (B20 matches B20.1); Read v2 and CTV3 codes match exactly.
    """

    class Set(models.TextChoices):
        ASSISTED_FERTILISATION = "assisted-fertilisation", "Assisted fertilisation (IVF)"
        GENDER_REASSIGNMENT = "gender-reassignment", "Gender reassignment"
        SEXUALLY_TRANSMITTED_INFECTION = "sexually-transmitted-infection", "Sexually transmitted infection"
        TERMINATION_OF_PREGNANCY = "termination-of-pregnancy", "Termination of pregnancy"

    class System(models.TextChoices):
        SNOMED_CT = "http://snomed.info/sct", "SNOMED CT"
        ICD_10 = "http://hl7.org/fhir/sid/icd-10", "ICD-10"
        READ_V2 = "http://read.info/readv2", "Read v2"
        CTV3 = "http://read.info/ctv3", "CTV3"

    sensitive_set = models.CharField(max_length=40, choices=Set.choices)
    system = models.CharField(max_length=60, choices=System.choices)
    code = models.CharField(max_length=20)
    display = models.CharField(max_length=200, blank=True)
    include_descendants = models.BooleanField(default=True)
    # Shipped with sharedcare (the curated default) rather than added by the back office.
    is_default = models.BooleanField(default=False)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sensitive_set", "system", "code"]
        constraints = [models.UniqueConstraint(fields=["system", "code"], name="sensitive_code_once")]

    def __str__(self) -> str:
        return f"{self.get_system_display()} {self.code} ({self.get_sensitive_set_display()})"


class ConceptIsA(models.Model):
    """One SNOMED CT is-a relationship: `child` is a kind of `parent`.

    Loaded from a SNOMED CT release's relationship file by `manage.py snomed_hierarchy_load`; a curated default
    covers the common concepts of the sensitive sets where no release is loaded.
    """

    child = models.CharField(max_length=18)
    parent = models.CharField(max_length=18, db_index=True)
    # Where the row came from: "curated" or the release file's name.
    source = models.CharField(max_length=100)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["child", "parent"], name="concept_is_a_once")]

    def __str__(self) -> str:
        return f"{self.child} is a {self.parent}"


# Patients' rights: objections to sharing, subject access requests and the national data opt-out.


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
