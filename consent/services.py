"""Writes to the consent app: roles and role profiles, care teams, and the relationships derived from partner data."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Count, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from consent.models import (
    FEED_SUPPORT_PERMISSION,
    CareTeam,
    CareTeamMembership,
    FeedSupportAssignment,
    LegitimateRelationship,
    Role,
    StaffProfile,
)
from consent.roles import STARTING_ROLES
from records.models import Organisation, Patient, RecordEntry
from records.models.patients import ACCESS_RECORD_PERMISSION

CARE_EVENT_TYPES = ("Encounter", "EpisodeOfCare")
OPEN_STATUSES = ("arrived", "triaged", "in-progress", "onleave", "active")
DERIVED_BASES = (LegitimateRelationship.Basis.REGISTERED_PRACTICE, LegitimateRelationship.Basis.CARE_EVENT)


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


def _derive(patient_ids: list[int], now: datetime) -> dict[tuple[int, int], tuple[str, datetime | None]]:
    wanted: dict[tuple[int, int], tuple[str, datetime | None]] = {}
    window = timedelta(days=settings.RELATIONSHIP_ENCOUNTER_DAYS)
    care_events = (
        RecordEntry.objects.filter(
            patient_id__in=patient_ids,
            resource_type__in=CARE_EVENT_TYPES,
            is_entered_in_error=False,
            is_deleted_at_source=False,
        )
        .values("patient_id", "organisation__group_id")
        .annotate(
            open_events=Count("id", filter=Q(effective_end__isnull=True, status__in=OPEN_STATUSES)),
            last_end=Max(Coalesce("effective_end", "effective_at")),
        )
    )
    retired = set(
        Patient.objects.filter(pk__in=patient_ids, merged_into__isnull=False).values_list("pk", flat=True)
    )
    for event in care_events:
        if event["patient_id"] in retired:
            continue
        last_end = event["last_end"]
        if event["open_events"]:
            valid_until = None
        elif last_end is None:
            continue
        else:
            valid_until = last_end + window
        wanted[(event["patient_id"], event["organisation__group_id"])] = (
            LegitimateRelationship.Basis.CARE_EVENT,
            valid_until,
        )
    # A record merged into another keeps no relationships of its own: access goes through the survivor.
    registered = Patient.objects.filter(
        pk__in=patient_ids, registered_practice__isnull=False, merged_into__isnull=True
    ).values_list("pk", "registered_practice__group_id")
    for patient_id, group_id in registered:
        wanted[(patient_id, group_id)] = (LegitimateRelationship.Basis.REGISTERED_PRACTICE, None)
    return wanted


def relationships_refresh(patient_ids: Iterable[int]) -> int:
    """Re-derive the feed-based legitimate relationships of these patients from their current data.

    Registered practice: open-ended while the registration lasts. A partner with an open encounter or episode:
    open-ended; with a finished one: until RELATIONSHIP_ENCOUNTER_DAYS after it ended. Relationships that the
    data no longer supports are removed. Returns the number of rows written or removed.
    """
    ids = sorted(set(patient_ids))
    if not ids:
        return 0
    now = timezone.now()
    permission = _access_permission()
    changes = 0
    with transaction.atomic():
        for start in range(0, len(ids), 2000):
            chunk = ids[start : start + 2000]
            wanted = _derive(chunk, now)
            existing = {
                (row.content_object_id, row.group_id): row
                for row in LegitimateRelationship.objects.select_for_update().filter(
                    content_object_id__in=chunk
                )
            }
            to_create, to_update, to_delete = [], [], []
            for key, (basis, valid_until) in wanted.items():
                row = existing.get(key)
                if row is None:
                    to_create.append(
                        LegitimateRelationship(
                            content_object_id=key[0],
                            group_id=key[1],
                            permission=permission,
                            basis=basis,
                            valid_from=now,
                            valid_until=valid_until,
                            derived_at=now,
                        )
                    )
                elif row.basis in DERIVED_BASES and (row.basis, row.valid_until) != (basis, valid_until):
                    row.basis, row.valid_until, row.derived_at = basis, valid_until, now
                    to_update.append(row)
            for key, row in existing.items():
                if key not in wanted and row.basis in DERIVED_BASES:
                    to_delete.append(row.pk)
            LegitimateRelationship.objects.bulk_create(to_create)
            LegitimateRelationship.objects.bulk_update(to_update, ["basis", "valid_until", "derived_at"])
            LegitimateRelationship.objects.filter(pk__in=to_delete).delete()
            changes += len(to_create) + len(to_update) + len(to_delete)
    return changes
