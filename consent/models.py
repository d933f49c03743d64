"""Who may see what: staff roles and legitimate relationships."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase

from consent.roles import JobRole
from records.models import Organisation, Patient

# The permission that lets a back-office user read what partners sent about patients (quarantined payloads, error
# texts) for the partners they are assigned to support. Only `consent.policy` checks it, and never through
# `has_perm`, so a superuser does not hold it by being a superuser.
FEED_SUPPORT_PERMISSION = "support_feeds"


class StaffProfile(models.Model):
    """Ties a user to the partner organisation that employs them and the national RBAC job role they hold."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_profile"
    )
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="staff")
    job_role = models.CharField(max_length=8, choices=JobRole.choices)
    sds_user_id = models.CharField("SDS user id", max_length=20, blank=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.get_job_role_display()}, {self.organisation.ods_code})"


class LegitimateRelationship(GroupObjectPermissionBase):
    """A django-guardian object permission on a patient granted to an organisation's group, with its basis.

    Guardian's direct-foreign-key form lets the grant itself carry why it exists and until when, so expiry
    takes effect the moment `valid_until` passes rather than at the next clean-up.
    """

    class Basis(models.TextChoices):
        REGISTERED_PRACTICE = "registered-practice", "Registered GP practice"
        CARE_EVENT = "care-event", "Recent or open care event"

    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="relationships")
    basis = models.CharField(max_length=32, choices=Basis.choices)
    valid_from = models.DateTimeField(default=timezone.now)
    # Null means open-ended: a current registration, or an episode that has not ended.
    valid_until = models.DateTimeField(null=True, blank=True)
    derived_at = models.DateTimeField(default=timezone.now)

    class Meta(GroupObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["group", "content_object"])]

    def __str__(self) -> str:
        return f"{self.get_basis_display()} relationship {self.pk}"


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
