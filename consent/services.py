"""Writes to the consent app: roles and role profiles, care teams, and the relationships derived from partner data."""

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

# Derived relationships live in consent.derivation; ingestion refreshes them through this name.
from consent.derivation import relationships_refresh as relationships_refresh
from consent.models import (
    FEED_SUPPORT_PERMISSION,
    CareTeam,
    CareTeamMembership,
    FeedSupportAssignment,
    Role,
    StaffProfile,
)
from consent.policy import PATIENTS_RIGHTS_PERMISSION
from consent.roles import STARTING_ROLES
from records.models import Organisation
from records.models.patients import ACCESS_RECORD_PERMISSION


def _access_permission() -> Permission:
    return Permission.objects.get(codename=ACCESS_RECORD_PERMISSION, content_type__app_label="records")


def feed_support_grant(*, user_id: int, organisations: Iterable[Organisation]) -> None:
    """Let a back-office user support these partners' feeds: the feed-support permission plus one assignment each.

    Both are needed (`consent.policy.feed_support_decide`); django-auditlog records each assignment.
    """
    permission = Permission.objects.get(codename=FEED_SUPPORT_PERMISSION, content_type__app_label="consent")
    with transaction.atomic():
        permission.user_set.add(user_id)
        for organisation in organisations:
            FeedSupportAssignment.objects.get_or_create(user_id=user_id, organisation=organisation)


def staff_profile_set(
    *, user_id: int, organisation: Organisation, job_role: str, sds_user_id: str = ""
) -> StaffProfile:
    """Make this the user's only role profile, and their groups follow it."""
    with transaction.atomic():
        StaffProfile.objects.filter(user_id=user_id).exclude(
            organisation=organisation, job_role=job_role
        ).delete()
        profile = staff_profile_add(
            user_id=user_id, organisation=organisation, job_role=job_role, sds_user_id=sds_user_id
        )
        return profile


def staff_profile_add(
    *, user_id: int, organisation: Organisation, job_role: str, sds_user_id: str = ""
) -> StaffProfile:
    """Give a user one more role profile (a role at an organisation); they choose among them at login."""
    with transaction.atomic():
        profile, _ = StaffProfile.objects.update_or_create(
            user_id=user_id,
            organisation=organisation,
            job_role=job_role,
            defaults={"sds_user_id": sds_user_id},
        )
        staff_groups_sync(user_id=user_id)
        return profile


def staff_groups_sync(*, user_id: int) -> None:
    """Make the user a member of exactly the organisation groups of the role profiles they hold."""
    user = get_user_model().objects.get(pk=user_id)
    wanted = set(
        Organisation.objects.filter(staff__user_id=user_id).values_list("group_id", flat=True).distinct()
    )
    held = set(user.groups.filter(organisation__isnull=False).values_list("pk", flat=True))
    user.groups.remove(*(held - wanted))
    user.groups.add(*(wanted - held))


def roles_seed() -> int:
    """Create any starting role (`consent.roles.STARTING_ROLES`) the roles table lacks; never changes an edited one.

    Run after every migrate (and after a test flush) so a deployment never lacks the roles it starts with.
    Returns how many were created.
    """
    existing = set(Role.objects.values_list("code", flat=True))
    missing = [
        Role(
            code=seed.code,
            name=seed.name,
            sections=sorted(seed.sections),
            activities=sorted(seed.activities),
            may_self_claim=seed.may_self_claim,
            may_break_glass=seed.may_break_glass,
            self_claim_max_hours=settings.SELF_CLAIM_HOURS,
            break_glass_max_hours=settings.BREAK_GLASS_HOURS,
        )
        for seed in STARTING_ROLES
        if seed.code not in existing
    ]
    Role.objects.bulk_create(missing, ignore_conflicts=True)
    return len(missing)


def care_team_create(*, organisation: Organisation, name: str, code: str) -> CareTeam:
    """Create a team within an organisation, with the group its relationships are granted to."""
    with transaction.atomic():
        group = Group.objects.create(name=f"team:{organisation.ods_code}:{code}"[:150])
        return CareTeam.objects.create(organisation=organisation, name=name, code=code, group=group)


def care_team_member_add(*, team: CareTeam, user_id: int) -> CareTeamMembership:
    """Add a user to a team; django-auditlog records the membership."""
    membership, _ = CareTeamMembership.objects.get_or_create(team=team, user_id=user_id)
    return membership


INFORMATION_GOVERNANCE_GROUP = "Information governance"


def information_governance_team_add(*, user_id: int) -> None:
    """Make the user one of the IG team, who work patients' objections and subject access requests: a member of
    the group holding `consent.manage_objections` (created with it when missing)."""
    permission = Permission.objects.get(
        codename=PATIENTS_RIGHTS_PERMISSION, content_type__app_label="consent"
    )
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=INFORMATION_GOVERNANCE_GROUP)
        group.permissions.add(permission)
        group.user_set.add(user_id)
