"""The rules of who may see what. The functions here are the only places they live.

Two kinds of access, each with its object rule and its list rule side by side, sharing one ladder of checks:
- direct care: `decide()` for one patient and `visible_patients()` for the list, both built on `_clinical_standing`;
- feed support (the back office): `feed_support_decide()` for one partner's feed data and
  `supported_organisations()` for the list, both built on `_feed_support_standing`.

Deny by default: every rule is one condition on its own line, and a request that passes no rule is refused.
Actions and purposes are `AccessEvent`'s own enumerations, so the rules and the audit trail name them alike.
Nothing else in the project asks whether a user may see a patient.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Permission
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import AccessEvent
from consent.models import (
    FEED_SUPPORT_PERMISSION,
    FeedSupportAssignment,
    LegitimateRelationship,
    StaffProfile,
)
from consent.roles import Activity, activities_for_role, sections_for_role
from records.models import Organisation, Patient
from records.models.patients import ACCESS_RECORD_PERMISSION
from records.sections import Section

Action = AccessEvent.Action
Purpose = AccessEvent.Purpose
User = AbstractBaseUser | AnonymousUser

# The actions each kind of access knows; any other action is refused.
CLINICAL_ACTIONS = frozenset({Action.SEARCH, Action.VIEW_RECORD})
FEED_SUPPORT_ACTIONS = frozenset({Action.SEARCH, Action.VIEW_DOCUMENT, Action.REVEAL})


@dataclass(frozen=True)
class Decision:
    """What one user may see of one patient (or one partner's feed data), and why."""

    allowed: bool
    why_not: str = ""
    basis: str = ""
    relationship_id: int | None = None
    sections: frozenset[Section] = frozenset()
    # Filled by upheld objections (a later rule); empty means nothing withheld on that ground.
    withheld_sections: frozenset[Section] = frozenset()
    withheld_partners: frozenset[str] = frozenset()
    withholds_sensitive: bool = True
    shows_restricted_demographics: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def basis_label(self) -> str:
        return self.basis


def _deny(why: str) -> Decision:
    return Decision(allowed=False, why_not=why)


def staff_profile_of(user: User) -> StaffProfile | None:
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        profile: StaffProfile = user.staff_profile  # type: ignore[union-attr]
    except StaffProfile.DoesNotExist:
        return None
    return profile


@dataclass(frozen=True)
class _Standing:
    """What a user brings to direct care, once the checks every clinical access shares have passed."""

    profile: StaffProfile
    sections: frozenset[Section]
    activities: frozenset[Activity]


def _clinical_standing(user: User, action: str, purpose: str) -> _Standing | str:
    """The checks `decide` and `visible_patients` share: the user's standing, or why they have none."""
    if action not in CLINICAL_ACTIONS:
        return "unknown action"
    if purpose != Purpose.DIRECT_CARE:
        return "only direct care is a purpose for reading a record"
    if not getattr(user, "is_active", False):
        return "user is not active"
    profile = staff_profile_of(user)
    if profile is None:
        return "user has no staff role"
    if not profile.organisation.is_active:
        return "user's organisation is not an active partner"
    sections = sections_for_role(profile.job_role)
    if not sections:
        return "role gives no access to records"
    activities = activities_for_role(profile.job_role)
    if Activity.PATIENT_TRACE not in activities:
        return "role may not trace patients"
    return _Standing(profile=profile, sections=sections, activities=activities)


def _current(now: datetime) -> Q:
    return Q(valid_from__lte=now) & (Q(valid_until__isnull=True) | Q(valid_until__gt=now))


def _current_relationships(profile: StaffProfile, now: datetime) -> QuerySet[LegitimateRelationship]:
    return LegitimateRelationship.objects.filter(
        _current(now),
        group_id=profile.organisation.group_id,
        permission__codename=ACCESS_RECORD_PERMISSION,
        permission__content_type__app_label="records",
    )


def decide(user: User, patient: Patient, action: str, purpose: str = Purpose.DIRECT_CARE) -> Decision:
    """Decide whether `user` may take `action` on `patient` for `purpose`, and what they may then see.

    Always holds: the answer is a denial unless every rule below passes; expiry is judged against the
    current time on every call; superusers gain nothing from being superusers.
    """
    standing = _clinical_standing(user, action, purpose)
    if isinstance(standing, str):
        return _deny(standing)
    if patient.merged_into_id is not None:
        return _deny("record merged into another; open the surviving record")
    relationship = (
        _current_relationships(standing.profile, timezone.now())
        .filter(content_object=patient)
        .order_by("basis")
        .first()
    )
    if relationship is None:
        return _deny("no legitimate relationship")
    return Decision(
        allowed=True,
        basis=f"{relationship.basis}:{standing.profile.organisation.ods_code}",
        relationship_id=relationship.pk,
        sections=standing.sections,
        withholds_sensitive=True,
        shows_restricted_demographics=Activity.ACCESS_SENSITIVE in standing.activities,
    )


def visible_patients(
    user: User, action: str = Action.SEARCH, purpose: str = Purpose.DIRECT_CARE
) -> QuerySet[Patient]:
    """The patients `decide(user, patient, action, purpose)` would allow, as one queryset.

    Always holds: the two never disagree, because both stand on `_clinical_standing` and the same relationships.
    """
    standing = _clinical_standing(user, action, purpose)
    if isinstance(standing, str):
        return Patient.objects.none()
    related = _current_relationships(standing.profile, timezone.now()).values("content_object_id")
    return Patient.objects.filter(pk__in=related, merged_into__isnull=True)


def _holds_feed_support_permission(user: User) -> bool:
    # Asked of the permission tables, not `has_perm`: a superuser holds it only if it was granted to them.
    return (
        Permission.objects.filter(codename=FEED_SUPPORT_PERMISSION, content_type__app_label="consent")
        .filter(Q(user=user) | Q(group__user=user))
        .exists()
    )


def _assignments(user: User) -> QuerySet[FeedSupportAssignment]:
    return FeedSupportAssignment.objects.filter(user_id=user.pk or 0)


def _feed_support_standing(user: User, action: str, purpose: str) -> str | None:
    """The checks `feed_support_decide` and `supported_organisations` share: None, or why the user may not."""
    if action not in FEED_SUPPORT_ACTIONS:
        return "unknown action"
    if purpose != Purpose.FEED_SUPPORT:
        return "only feed support is a purpose for reading what a partner sent"
    if not getattr(user, "is_active", False):
        return "user is not active"
    if not getattr(user, "is_staff", False):
        return "user is not back-office staff"
    if not _holds_feed_support_permission(user):
        return "user does not hold the feed-support permission"
    return None


def feed_support_decide(
    user: User, organisation: Organisation | None, action: str, purpose: str = Purpose.FEED_SUPPORT
) -> Decision:
    """Decide whether back-office `user` may read what `organisation`'s feeds sent (payloads, error texts).

    Always holds: the answer is a denial unless every rule below passes; being a superuser grants nothing; the
    permission alone opens nothing, only together with an assignment to support this very partner.
    """
    why_not = _feed_support_standing(user, action, purpose)
    if why_not is not None:
        return _deny(why_not)
    if organisation is None:
        return _deny("not from a partner's feed")
    if not _assignments(user).filter(organisation=organisation).exists():
        return _deny("user does not support this partner")
    return Decision(allowed=True, basis=f"feed-support:{organisation.ods_code}")


def supported_organisations(
    user: User, action: str = Action.VIEW_DOCUMENT, purpose: str = Purpose.FEED_SUPPORT
) -> QuerySet[Organisation]:
    """The partners whose feed data `feed_support_decide(user, partner, action, purpose)` would open."""
    if _feed_support_standing(user, action, purpose) is not None:
        return Organisation.objects.none()
    return Organisation.objects.filter(pk__in=_assignments(user).values("organisation"))
