"""Who may see what: roles, staff role profiles and identities, care teams, legitimate relationships, personal
grants and feed support."""

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
