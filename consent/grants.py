"""Writes of personal grants: self-claimed relationships and break-glass access, their early end and their tidying.

Whether a user may make a grant, and for how long at most, is `consent.policy`'s question (`self_claim_decide`,
`break_glass_decide`); the door asks it and audits the answer, then calls these in the same transaction. What always
holds: a grant is made under the role profile the user acts under, ends no later than its role's maximum allows,
carries a reference that names the grant and never the patient, and is only ever ended, never deleted or extended.
Ending is a record of fact: `consent.policy.decide` judges `valid_until` and `ended_at` itself on every call, so
`personal_grants_tidy` only writes down what has already taken effect.
"""

import secrets
import string
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from consent.models import BreakGlassGrant, PersonalGrant, SelfClaimedRelationship, StaffProfile
from records.models import Patient
from records.models.patients import ACCESS_RECORD_PERMISSION

SELF_CLAIM_PREFIX = "SC-"
BREAK_GLASS_PREFIX = "BG-"
_REFERENCE_ALPHABET = string.ascii_uppercase + string.digits
_REFERENCE_LENGTH = 8
G = TypeVar("G", SelfClaimedRelationship, BreakGlassGrant)


def grant_reference_new(prefix: str) -> str:
    """A fresh reference such as "BG-7Q2K9MZD": random, so it says nothing about the patient or the time."""
    return prefix + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(_REFERENCE_LENGTH))


def _access_permission() -> Permission:
    return Permission.objects.get(codename=ACCESS_RECORD_PERMISSION, content_type__app_label="records")


def _lasting(hours: int, max_hours: int) -> timedelta:
    # Never longer than the role allows and never less than an hour, whatever the caller asked for.
    return timedelta(hours=max(1, min(hours, max_hours)))


def _grant_create(
    model: type[G],
    prefix: str,
    *,
    profile: StaffProfile,
    patient: Patient,
    reason_code: str,
    reason_text: str,
    hours: int,
    max_hours: int,
    now: datetime | None,
) -> G:
    reason = model.Reason(reason_code)
    text = reason_text.strip()
    if not text:
        raise ValueError(f"{model._meta.verbose_name} needs a reason in words")
    start = now or timezone.now()
    with transaction.atomic():
        grant: G = model.objects.create(
            user_id=profile.user_id,
            permission=_access_permission(),
            content_object=patient,
            staff_profile=profile,
            reference=grant_reference_new(prefix),
            reason_code=reason,
            reason_text=text,
            valid_from=start,
            valid_until=start + _lasting(hours, max_hours),
        )
    return grant


def self_claim_create(
    *,
    profile: StaffProfile,
    patient: Patient,
    reason_code: str,
    reason_text: str,
    hours: int,
    max_hours: int,
    now: datetime | None = None,
) -> SelfClaimedRelationship:
    """Record that the profile's user declared a relationship with `patient`, for `hours` (at most `max_hours`).

    Always holds: the reason is one of `SelfClaimedRelationship.Reason` and the text is not blank (ValueError
    otherwise, and nothing is written).
    """
    return _grant_create(
        SelfClaimedRelationship,
        SELF_CLAIM_PREFIX,
        profile=profile,
        patient=patient,
        reason_code=reason_code,
        reason_text=reason_text,
        hours=hours,
        max_hours=max_hours,
        now=now,
    )


def break_glass_create(
    *,
    profile: StaffProfile,
    patient: Patient,
    reason_code: str,
    reason_text: str,
    hours: int,
    max_hours: int,
    now: datetime | None = None,
) -> BreakGlassGrant:
    """Record that the profile's user broke the glass on `patient`, for `hours` (at most `max_hours`).

    Always holds: the reason is one of `BreakGlassGrant.Reason` and the text is not blank (ValueError otherwise,
    and nothing is written). The password was checked by the caller before this is reached.
    """
    return _grant_create(
        BreakGlassGrant,
        BREAK_GLASS_PREFIX,
        profile=profile,
        patient=patient,
        reason_code=reason_code,
        reason_text=reason_text,
        hours=hours,
        max_hours=max_hours,
        now=now,
    )


def _grant_model(reference: str) -> type[SelfClaimedRelationship] | type[BreakGlassGrant] | None:
    if reference.startswith(SELF_CLAIM_PREFIX):
        return SelfClaimedRelationship
    if reference.startswith(BREAK_GLASS_PREFIX):
        return BreakGlassGrant
    return None


def grant_end(*, user_id: int, reference: str, now: datetime | None = None) -> PersonalGrant | None:
    """End the user's own current grant named `reference` now; None if they hold no such current grant.

    Always holds: only the grant's holder ends it, an ended or expired grant is left as it is, and the grant is
    marked, never deleted, so the trail keeps it.
    """
    model = _grant_model(reference)
    if model is None:
        return None
    moment = now or timezone.now()
    with transaction.atomic():
        grant: PersonalGrant | None = (
            model.objects.select_for_update()
            .filter(user_id=user_id, reference=reference, ended_at__isnull=True, valid_until__gt=moment)
            .first()
        )
        if grant is None:
            return None
        grant.ended_at = moment
        grant.save(update_fields=["ended_at"])
        return grant


class GrantInForce(NamedTuple):
    reference: str
    valid_until: datetime


# A break-glass grant is in force from its start until it expires or is ended, under any of the user's profiles.
_BREAK_GLASS_IN_FORCE_SQL = """
SELECT reference, valid_until
FROM consent_breakglassgrant
WHERE user_id = %(user)s AND valid_from <= %(now)s AND valid_until > %(now)s AND ended_at IS NULL
ORDER BY valid_until, id
"""


def break_glass_current(user_id: int, now: datetime | None = None) -> list[GrantInForce]:
    """The user's break-glass grants that are in force now, under any of their role profiles, soonest to end first.

    For the banner every page shows; it names references and end times, never patients. One fixed statement, as it
    is asked on every page: building it through the ORM cost more than answering it.
    """
    moment = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_BREAK_GLASS_IN_FORCE_SQL, {"user": user_id, "now": moment})
        return [GrantInForce(reference, valid_until) for reference, valid_until in cursor.fetchall()]


def personal_grants_tidy(now: datetime | None = None) -> int:
    """Mark every grant whose time has run out as ended at its expiry; returns how many were marked.

    Safe to run twice and at any time: it writes down what `decide` already enforces and changes no one's access.
    """
    moment = now or timezone.now()
    marked = 0
    for model in (SelfClaimedRelationship, BreakGlassGrant):
        marked += model.objects.filter(ended_at__isnull=True, valid_until__lte=moment).update(
            ended_at=F("valid_until")
        )
    return marked
