"""Separation of duties over who may do what: the registration authority (RA) alone changes a user's access, and
nobody changes their own.

A user's access is their role profiles, care-team memberships, feed-support assignments, identity as HR holds it,
active/staff/superuser flags, groups and direct permissions, and password. What always holds:
- only a member of a group holding `consent.administer_access` (the "Registration authority" group) changes
  another user's access; being a superuser gives nothing (`may_administer_access`);
- nobody, an RA included, changes their own access in the back office; their own password is changed only on the
  password-change page, with the old password (`access_change_refusal`);
- every allowed change raises an ACCESS_ADMINISTRATION alert naming who changed whom and what
  (`access_change_alert`); every refused attempt is written to the change history with its actor and what was
  tried, and raises a SELF_GRANT_REFUSED alert, committed whatever the caller does next (`access_change_refuse`).
Neither alert names a patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from auditlog.models import LogEntry
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone

from audit.models import Alert
from consent.grants import grant_reference_new
from consent.models import StaffProfile

User = AbstractBaseUser | AnonymousUser

ACCESS_ADMINISTRATION_PERMISSION = "administer_access"
ACCESS_ADMINISTRATION_PERMISSION_NAME = (
    "Can administer access (role profiles, care teams, feed support, passwords, staff flags) of other users"
)
REGISTRATION_AUTHORITY_GROUP = "Registration authority"
ADMINISTERED_PREFIX = "AA-"
REFUSED_PREFIX = "SG-"
NOT_YOUR_OWN = "nobody changes their own access; another registration authority member must"
NOT_THE_RA = "only the registration authority changes a user's access"
# What the back office needs to show and edit the pages an RA works on; given with the group so an RA need not be
# a superuser. (app label, codename).
RA_ADMIN_PERMISSIONS = (
    ("auth", "view_user"),
    ("auth", "add_user"),
    ("auth", "change_user"),
    ("auth", "view_group"),
    ("consent", "view_staffprofile"),
    ("consent", "add_staffprofile"),
    ("consent", "change_staffprofile"),
    ("consent", "delete_staffprofile"),
    ("consent", "view_careteam"),
    ("consent", "add_careteam"),
    ("consent", "change_careteam"),
    ("consent", "view_careteammembership"),
    ("consent", "add_careteammembership"),
    ("consent", "change_careteammembership"),
    ("consent", "delete_careteammembership"),
    ("consent", "view_feedsupportassignment"),
    ("consent", "add_feedsupportassignment"),
    ("consent", "change_feedsupportassignment"),
    ("consent", "delete_feedsupportassignment"),
    ("consent", "view_staffidentity"),
    ("consent", "add_staffidentity"),
    ("consent", "change_staffidentity"),
    ("records", "view_organisation"),
)


def _access_administration_permission() -> Permission:
    content_type = ContentType.objects.get_for_model(StaffProfile)
    permission, _ = Permission.objects.get_or_create(
        codename=ACCESS_ADMINISTRATION_PERMISSION,
        content_type=content_type,
        defaults={"name": ACCESS_ADMINISTRATION_PERMISSION_NAME},
    )
    return permission


_RA_CACHE_ATTRIBUTE = "_sharedcare_registration_authority"


def may_administer_access(user: User) -> bool:
    """Whether `user` is one of the registration authority: active back-office staff in a group holding
    `consent.administer_access`. Nothing else counts, a superuser's standing included."""
    if not getattr(user, "is_active", False):
        return False
    if not getattr(user, "is_staff", False) or user.pk is None:
        return False
    # Asked of the group tables, never `has_perm`: Django answers True to every `has_perm` of a superuser, and
    # the point of this permission is that the superuser who runs the back office does not hold it by being one.
    # Only a group counts, so the RA's members are listed in one place. Kept on the user object, as Django keeps
    # its own permission cache there: an admin page asks once per model it lists, and the object lives one request.
    cached: bool | None = getattr(user, _RA_CACHE_ATTRIBUTE, None)
    if cached is None:
        cached = (
            Permission.objects.filter(
                codename=ACCESS_ADMINISTRATION_PERMISSION, content_type__app_label="consent"
            )
            .filter(group__user__pk=user.pk)
            .exists()
        )
        setattr(user, _RA_CACHE_ATTRIBUTE, cached)
    return cached


def access_change_refusal(actor: User, affected_user_ids: Iterable[int | None]) -> str:
    """Why `actor` may not change the access of these users, or "" when they may (an RA, none of them herself).

    An empty `affected_user_ids` means a user not yet created: only the RA adds users (that sets a password)."""
    if actor.pk is not None and actor.pk in set(affected_user_ids):
        return NOT_YOUR_OWN
    if not may_administer_access(actor):
        return NOT_THE_RA
    return ""


def _describe(user: object) -> str:
    return str(getattr(user, "username", "") or user)


def access_change_alert(*, actor: User, subject: object, changes: Sequence[str]) -> Alert | None:
    """Raise one ACCESS_ADMINISTRATION alert: `actor` changed `subject`'s access, as `changes` says; None when
    nothing changed. Call it inside the transaction that made the change."""
    if not changes:
        return None
    return Alert.objects.create(
        kind=Alert.Kind.ACCESS_ADMINISTRATION,
        reference=grant_reference_new(ADMINISTERED_PREFIX),
        user_id=actor.pk,
        username=_describe(actor),
        reason=f"{_describe(actor)} changed the access of {_describe(subject)}: {'; '.join(changes)}.",
        raised_at=timezone.now(),
    )


def access_change_refuse(
    *,
    actor: User,
    subject_type: type[Model],
    subject: Model | None,
    subject_label: str,
    attempted: str,
    why: str,
) -> Alert:
    """Record a refused attempt to change the access held through `subject` (a user, a care team, a group of type
    `subject_type`; None for one not yet created), named `subject_label`: a change-history entry with the actor and
    what was tried, and a
    SELF_GRANT_REFUSED alert, both or neither. Call it outside any transaction that will be rolled back, so the
    refusal stays recorded (the back office calls it before its own transaction begins)."""
    what = f"{attempted} (refused: {why})"
    with transaction.atomic():
        content_type = ContentType.objects.get_for_model(subject_type)
        LogEntry.objects.create(
            content_type=content_type,
            object_pk=str(subject.pk) if subject is not None else "",
            object_id=subject.pk if subject is not None and isinstance(subject.pk, int) else None,
            object_repr=subject_label[:200],
            action=LogEntry.Action.ACCESS,
            changes={"refused attempt": ["", what]},
            actor_id=actor.pk,
            additional_data={"refused": attempted, "why": why},
            timestamp=timezone.now(),
        )
        return Alert.objects.create(
            kind=Alert.Kind.SELF_GRANT_REFUSED,
            reference=grant_reference_new(REFUSED_PREFIX),
            user_id=actor.pk,
            username=_describe(actor),
            reason=f"{_describe(actor)} tried to change the access of {subject_label}: {what}.",
            raised_at=timezone.now(),
        )


def registration_authority_add(*, user_id: int) -> Group:
    """Make the user one of the registration authority: a member of the group holding
    `consent.administer_access` and the back-office permissions its pages need (created when missing).

    Not a back-office page: who may grant access is itself given by a deployment step (or another RA through
    the user's groups), never by oneself."""
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=REGISTRATION_AUTHORITY_GROUP)
        wanted = Q()
        for app_label, codename in RA_ADMIN_PERMISSIONS:
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        group.permissions.add(_access_administration_permission(), *Permission.objects.filter(wanted))
        group.user_set.add(user_id)
        return group
