"""The second-factor pages after the password: verify a code, or enrol an authenticator app and receive the
recovery codes. They show nothing about any patient."""

from base64 import b32encode
from typing import Any

import segno
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.mfa import (
    mfa_enrolled,
    mfa_enrolment_confirm,
    mfa_enrolment_pending,
    mfa_enrolment_start,
    mfa_recovery_codes_left,
    mfa_verify,
)

# The authenticator being enrolled in this session, until a code from it confirms it.
ENROLMENT_SESSION_KEY = "mfa_enrolment_device_id"


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Security code",
        max_length=32,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "spellcheck": "false"}
        ),
        error_messages={"required": "Enter the code."},
    )


def _next_of(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(wanted, {request.get_host()}, require_https=request.is_secure()):
        return wanted
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _locked_out(request: HttpRequest) -> HttpResponse:
    # Signed out as well: the next try starts again from the password, which the lockout refuses until it ends.
    logout(request)
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(request, "registration/mfa_locked_out.html", {"minutes": minutes}, status=429)


@login_required
@require_http_methods(["GET", "POST"])
def mfa_verify_view(request: HttpRequest) -> HttpResponse:
    """Ask for a code from the user's authenticator, or one of their recovery codes.

    A wrong code is a failed sign-in to django-axes, as a wrong password is: enough of them for this username from
    this address sign the user out and pause signing in. The device's own throttle refuses even the right code for
    a while after each wrong one.
    """
    user = request.user
    if not isinstance(user, AbstractBaseUser):
        raise RuntimeError("invariant: isinstance(user, AbstractBaseUser)")
    credentials = {"username": user.get_username()}
    if AxesProxyHandler.is_locked(request, credentials):
        return _locked_out(request)
    if user.is_verified():  # type: ignore[attr-defined]
        return redirect(_next_of(request))
    if not mfa_enrolled(user):
        return redirect("mfa-enrol")
    form = CodeForm(request.POST or None)
    if form.is_valid():
        device = mfa_verify(user=user, code=form.cleaned_data["code"])
        if device is not None:
            otp_login(request, device)
            return redirect(_next_of(request))
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        if getattr(request, "axes_locked_out", False):
            return _locked_out(request)
        form.add_error(
            "code", "That code is not right, or it was tried too soon after a wrong one. Try again."
        )
    status = 400 if form.is_bound else 200
    return render(
        request,
        "registration/mfa_verify.html",
        {"form": form, "next": _next_of(request), "recovery_codes_left": mfa_recovery_codes_left(user)},
        status=status,
    )


def _qr_code(device: TOTPDevice) -> str:
    # Drawn on the server as inline SVG: no script, and the secret never leaves this page.
    return mark_safe(  # noqa: S308 - segno's own markup around the otpauth address, which it escapes.
        segno.make(device.config_url, error="m").svg_inline(
            scale=5, border=2, title="QR code of the secret for your authenticator app"
        )
    )


def _secret_text(device: TOTPDevice) -> str:
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[start : start + 4] for start in range(0, len(secret), 4))


@login_required
@require_http_methods(["GET", "POST"])
def mfa_enrol_view(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator app: its secret as a QR code and as text, confirmed by one code from it; then the
    recovery codes, shown on that page only. A user who already has an authenticator cannot replace it here."""
    user = request.user
    if not isinstance(user, AbstractBaseUser):
        raise RuntimeError("invariant: isinstance(user, AbstractBaseUser)")
    if mfa_enrolled(user):
        return redirect("mfa-verify")
    device = None
    if request.method == "POST":
        device = mfa_enrolment_pending(user, int(request.session.get(ENROLMENT_SESSION_KEY) or 0))
    if device is None:
        # A fresh secret each time the page is opened: one shown earlier and left unconfirmed counts for nothing.
        device = mfa_enrolment_start(user)
        request.session[ENROLMENT_SESSION_KEY] = device.pk
        form = CodeForm()
    else:
        form = CodeForm(request.POST)
        if form.is_valid():
            enrolled = mfa_enrolment_confirm(user=user, device=device, code=form.cleaned_data["code"])
            if enrolled is not None:
                del request.session[ENROLMENT_SESSION_KEY]
                otp_login(request, enrolled.device)
                context: dict[str, Any] = {"codes": enrolled.recovery_codes, "next": _next_of(request)}
                return render(request, "registration/mfa_recovery_codes.html", context)
            form.add_error(
                "code", "That code is not right, or it was tried too soon after a wrong one. Try again."
            )
    return render(
        request,
        "registration/mfa_enrol.html",
        {
            "form": form,
            "qr_code": _qr_code(device),
            "secret": _secret_text(device),
            "next": _next_of(request),
        },
        status=400 if form.is_bound else 200,
    )
