"""Back office: resetting another user's second factor, from the users list.

django-otp's own device pages are taken out of the back office: through them a superuser could delete their own
devices, or read a secret. A reset here is the only way a device is removed, and never by its owner.
"""

from auditlog.registry import auditlog
from django.contrib import admin, messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.mfa import MfaSelfResetRefused, mfa_devices_reset

for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)

# Each device's creation, confirmation and removal, with its actor. Never its secret, and not the counters every
# sign-in moves (the last code's step, the clock drift, the throttle), which would log each sign-in as a change.
_DEVICE_COUNTERS = [
    "last_t",
    "drift",
    "throttling_failure_timestamp",
    "throttling_failure_count",
    "last_used_at",
]
auditlog.register(
    TOTPDevice, exclude_fields=_DEVICE_COUNTERS, mask_fields=["key"], mask_callable="consent.apps.secret_mask"
)
auditlog.register(StaticDevice, exclude_fields=_DEVICE_COUNTERS)


@admin.action(description="Reset second factor (they enrol again at next sign-in)", permissions=["change"])
def mfa_reset_action(
    model_admin: admin.ModelAdmin[User], request: HttpRequest, queryset: QuerySet[User]
) -> None:
    """Remove the chosen users' authenticators and recovery codes; the user's own account is refused."""
    actor = request.user
    if not isinstance(actor, AbstractBaseUser):
        raise RuntimeError("invariant: isinstance(actor, AbstractBaseUser)")
    for user in queryset.order_by("pk"):
        try:
            removed = mfa_devices_reset(actor=actor, user=user)
        except MfaSelfResetRefused:
            model_admin.message_user(
                request,
                "You cannot reset your own second factor; another administrator must do it.",
                messages.ERROR,
            )
            continue
        model_admin.message_user(
            request, f"{user.get_username()}: second factor reset ({removed} devices removed)."
        )
