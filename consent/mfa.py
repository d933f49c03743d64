"""A second factor for local accounts: who must have one, enrolling an authenticator app, the recovery codes, and
the back office's reset of someone else's.

What always holds:
- every back-office account (staff or superuser) and every holder of any role profile whose role reviews alerts
  must pass a second factor after the password, whichever role they go on to choose; others may enrol, and once they
  have a device they pass it too;
- a code is checked against the user's own confirmed devices only, through django-otp, whose per-device throttle
  doubles the wait after each wrong code and is kept across sign-ins; a recovery code is deleted as it is used;
- nobody removes their own devices: only another user resets them, the reset is logged by django-auditlog with its
  actor and raises an access-administration alert for the privacy officers.
"""

from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import Alert
from consent.policy import role_of_profile, staff_profiles_of
from consent.roles import Activity

User = AbstractBaseUser | AnonymousUser

RECOVERY_CODE_COUNT = 10
# The name each device gets; a user holds at most one of each kind.
AUTHENTICATOR_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
# The activities that make a role a privacy officer's (as `consent.policy.may_review_alerts` reads them).
_ALERT_ACTIVITIES = frozenset({Activity.EMERGENCY_ACCESS_ALERTS, Activity.SELF_CLAIMED_ALERTS})


class MfaSelfResetRefused(Exception):
    """A user asked to remove their own second factor; nothing was changed."""


def mfa_required(user: User) -> bool:
    """Whether this user must pass a second factor: a back-office account, or the holder of any role profile whose
    role reviews alerts.

    Any profile, not the chosen one: the second factor is asked for before the user chooses a role, and a user who
    could choose a privacy officer's role afterwards must already have passed it.
    """
    if not getattr(user, "is_active", False):
        return False
    if getattr(user, "is_staff", False) or getattr(user, "is_superuser", False):
        return True
    # The policy's own readers, cached for the request: a page that shows the user's role reads nothing twice.
    return any(
        (role := role_of_profile(user, profile)) is not None
        and bool(_ALERT_ACTIVITIES & set(role.activities))
        for profile in staff_profiles_of(user)
    )


def mfa_authenticator_of(user: User) -> TOTPDevice | None:
    """The user's confirmed authenticator app, if they have enrolled one."""
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).first()


def mfa_enrolled(user: User) -> bool:
    return bool(TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists())


def mfa_enrolment_start(user: AbstractBaseUser) -> TOTPDevice:
    """A new, unconfirmed authenticator for the user, replacing any enrolment they left unfinished: its secret is
    shown on the enrolment page only, and it counts for nothing until a code from it is confirmed."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)


def mfa_enrolment_pending(user: AbstractBaseUser, device_id: int) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(pk=device_id, user_id=user.pk, confirmed=False).first()


@dataclass(frozen=True)
class Enrolled:
    device: TOTPDevice
    # Shown once, on the page that confirms the enrolment; the database keeps them for checking only.
    recovery_codes: list[str]


def mfa_enrolment_confirm(*, user: AbstractBaseUser, device: TOTPDevice, code: str) -> Enrolled | None:
    """Confirm the enrolment if `code` is the authenticator's current one; None (and a throttled wrong try
    counted on the device) if not. Refuses a user who already has a confirmed authenticator: a second one would
    be a way round a reset. Issues RECOVERY_CODE_COUNT new recovery codes, replacing any earlier ones."""
    with transaction.atomic():
        if mfa_enrolled(user):
            return None
        locked = TOTPDevice.objects.select_for_update().filter(pk=device.pk, user_id=user.pk).first()
        if locked is None or locked.confirmed or not locked.verify_token(_digits(code)):
            return None
        locked.confirmed = True
        locked.save(update_fields=["confirmed"])
        return Enrolled(device=locked, recovery_codes=_recovery_codes_issue(user))


def _recovery_codes_issue(user: AbstractBaseUser) -> list[str]:
    StaticDevice.objects.filter(user_id=user.pk).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def _digits(code: str) -> str:
    return "".join(code.split())


def _recovery_form(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def mfa_verify(*, user: AbstractBaseUser, code: str) -> Device | None:
    """The device that accepts `code` (the authenticator's current code, or one unused recovery code, which is then
    spent), or None. Each device checks under a row lock and counts a wrong code towards its own throttle; a
    throttled device accepts nothing, even the right code, until its wait is over."""
    with transaction.atomic():
        authenticator = TOTPDevice.objects.select_for_update().filter(user_id=user.pk, confirmed=True).first()
        digits = _digits(code)
        if authenticator is not None and digits.isdigit() and len(digits) == authenticator.digits:
            return authenticator if authenticator.verify_token(digits) else None
        recovery = StaticDevice.objects.select_for_update().filter(user_id=user.pk, confirmed=True).first()
        if recovery is not None and recovery.verify_token(_recovery_form(code)):
            return recovery
        if recovery is None and authenticator is not None:
            # Anything but the authenticator's digits, with no recovery codes to try it on, is still a wrong code.
            authenticator.throttle_increment()
        return None


def mfa_recovery_codes_left(user: AbstractBaseUser) -> int:
    return int(StaticToken.objects.filter(device__user_id=user.pk, device__confirmed=True).count())


def mfa_devices_reset(*, actor: AbstractBaseUser, user: AbstractBaseUser) -> int:
    """Remove every second-factor device of `user`, at the request of `actor`, who must be someone else: the user
    enrols again at their next sign-in, and any session they verified with a removed device is asked again.

    Each removal is logged by django-auditlog with its actor (the back office's request); an access-administration
    alert names both users and no patient. Raises `MfaSelfResetRefused` (raising a self-grant-refused alert, and
    changing nothing else) when `actor` is `user`. Returns how many devices were removed.
    """
    if actor.pk == user.pk:
        # Outside the reset's own transaction, so raising the refusal does not take the alert back.
        Alert.objects.create(
            kind=Alert.Kind.SELF_GRANT_REFUSED,
            reference=f"MFA-SELF-{user.pk}",
            user_id=actor.pk,
            username=actor.get_username(),
            reason=f"{actor.get_username()} tried to remove their own second factor; refused.",
            raised_at=timezone.now(),
        )
        raise MfaSelfResetRefused
    with transaction.atomic():
        devices: list[Device] = [
            *TOTPDevice.objects.filter(user_id=user.pk),
            *StaticDevice.objects.filter(user_id=user.pk),
        ]
        for device in devices:
            # One by one, so django-auditlog records each removal.
            device.delete()
        Alert.objects.create(
            kind=Alert.Kind.ACCESS_ADMINISTRATION,
            reference=f"MFA-RESET-{user.pk}",
            user_id=actor.pk,
            username=actor.get_username(),
            reason=(
                f"{actor.get_username()} reset the second factor of {user.get_username()} "
                f"({len(devices)} device{'s' if len(devices) != 1 else ''} removed); they enrol again at their "
                "next sign-in."
            ),
            raised_at=timezone.now(),
        )
        return len(devices)
