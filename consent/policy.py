"""The rules of who may see what. `decide()` and `visible_patients()` are the only places they live.

Deny by default: every rule is one condition on its own line, and a request that passes no rule is refused.
Nothing else in the project asks whether a user may see a patient.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from consent.models import LegitimateRelationship, StaffProfile
from consent.roles import Activity, activities_for_role, sections_for_role
from records.models import Patient
from records.sections import Section


class Action:
    SEARCH = "search"
    VIEW_RECORD = "view-record"


_ACTIONS = frozenset({Action.SEARCH, Action.VIEW_RECORD})


@dataclass(frozen=True)
class Decision:
    """What one user may see of one patient, and why."""

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


def staff_profile_of(user: AbstractBaseUser | AnonymousUser) -> StaffProfile | None:
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        profile: StaffProfile = user.staff_profile  # type: ignore[union-attr]
    except StaffProfile.DoesNotExist:
        return None
    return profile


def _current(now: datetime) -> Q:
    return Q(valid_from__lte=now) & (Q(valid_until__isnull=True) | Q(valid_until__gt=now))


def _current_relationships(profile: StaffProfile, now: datetime) -> QuerySet[LegitimateRelationship]:
    return LegitimateRelationship.objects.filter(
        _current(now),
        group_id=profile.organisation.group_id,
        permission__codename="access_record",
        permission__content_type__app_label="records",
    )


def decide(
    user: AbstractBaseUser | AnonymousUser, patient: Patient, action: str, purpose: str = "direct-care"
) -> Decision:
    """Decide whether `user` may take `action` on `patient` for `purpose`, and what they may then see.

    Always holds: the answer is a denial unless every rule below passes; expiry is judged against the
    current time on every call; superusers gain nothing from being superusers.
    """
    now = timezone.now()
    profile = staff_profile_of(user)
    if action not in _ACTIONS:
        return _deny("unknown action")
    if patient.merged_into_id is not None:
        return _deny("record merged into another; open the surviving record")
    if purpose != "direct-care":
        return _deny("only direct care is a purpose for reading a record")
    if not getattr(user, "is_active", False):
        return _deny("user is not active")
    if profile is None:
        return _deny("user has no staff role")
    if not profile.organisation.is_active:
        return _deny("user's organisation is not an active partner")
    sections = sections_for_role(profile.job_role)
    if not sections:
        return _deny("role gives no access to records")
    activities = activities_for_role(profile.job_role)
    if Activity.PATIENT_TRACE not in activities:
        return _deny("role may not trace patients")
    relationship = (
        _current_relationships(profile, now).filter(content_object=patient).order_by("basis").first()
    )
    if relationship is None:
        return _deny("no legitimate relationship")
    return Decision(
        allowed=True,
        basis=f"{relationship.basis}:{profile.organisation.ods_code}",
        relationship_id=relationship.pk,
        sections=sections,
        withholds_sensitive=True,
        shows_restricted_demographics=Activity.ACCESS_SENSITIVE in activities,
    )


def visible_patients(
    user: AbstractBaseUser | AnonymousUser, action: str = Action.SEARCH
) -> QuerySet[Patient]:
    """The patients `decide(user, patient, action)` would allow, as one queryset (the two must never disagree)."""
    now = timezone.now()
    profile = staff_profile_of(user)
    none = Patient.objects.none()
    if action not in _ACTIONS:
        return none
    if not getattr(user, "is_active", False):
        return none
    if profile is None:
        return none
    if not profile.organisation.is_active:
        return none
    if not sections_for_role(profile.job_role):
        return none
    if Activity.PATIENT_TRACE not in activities_for_role(profile.job_role):
        return none
    related = _current_relationships(profile, now).values("content_object_id")
    return Patient.objects.filter(pk__in=related, merged_into__isnull=True)
