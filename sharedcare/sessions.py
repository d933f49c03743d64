"""Sessions that end: after SESSION_IDLE_MINUTES without activity, SESSION_MAX_HOURS after sign-in whatever the
activity, and at once when the account's standing changes under them.

What always holds:
- The server decides. Every request from a signed-in browser is checked here before any view runs; past either
  limit the user is signed out and the login page says why. The page's script only warns and follows.
- Sign-in time, last activity and the standing the user signed in with live in the session itself, written at
  sign-in (`session_start`, on Django's `user_logged_in`, so every way of signing in records them).
- Activity is any request to a view not marked `session_activity_exempt` (the page's poll of the session's state
  is marked). It is written at most once a minute, so an ordinary page costs no session write; the recorded time is
  at most a minute behind, and the deadline the page is given is computed from the same recorded time.
- A session ends at its next request when the account is disabled, a role profile it signed in with is removed or
  changed, or the role profile it chose is gone. A password set by anyone else already ends every other session:
  Django keeps a hash of the password in the session and refuses a session whose hash no longer matches.
- Requests without a session (the partner API's keys) are untouched.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from consent.policy import SELECTED_PROFILE_SESSION_KEY, staff_profiles_of

SIGNED_IN_AT = "session_signed_in_at"
LAST_ACTIVITY_AT = "session_last_activity_at"
STANDING = "session_standing"
# How stale the recorded activity may be before a request writes it again.
ACTIVITY_RESOLUTION = timedelta(minutes=1)

IDLE = "idle"
LIFETIME = "lifetime"
STANDING_CHANGED = "standing"


def _signed_out_message(reason: str) -> str:
    if reason == IDLE:
        return f"You were signed out after {settings.SESSION_IDLE_MINUTES} minutes without activity."
    if reason == LIFETIME:
        return (
            f"You were signed out because you had been signed in for {settings.SESSION_MAX_HOURS} hours. "
            "Sign in again to carry on."
        )
    return "You were signed out because your account or role changed. Sign in again to carry on."


@dataclass(frozen=True)
class Deadlines:
    """When this session ends if nothing more happens: idle, and at the end of its lifetime."""

    idle_at: datetime
    lifetime_at: datetime

    def seconds_left(self, now: datetime) -> tuple[int, int]:
        """Seconds left until each deadline, rounded up so the page never leaves before the server ends the session;
        never negative."""
        return (
            max(0, math.ceil((self.idle_at - now).total_seconds())),
            max(0, math.ceil((self.lifetime_at - now).total_seconds())),
        )


def _stamp(moment: datetime) -> float:
    return moment.timestamp()


def _moment(stamp: Any) -> datetime | None:
    if not isinstance(stamp, int | float):
        return None
    return datetime.fromtimestamp(stamp, tz=timezone.get_current_timezone())


def standing_of(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """What the user's sessions were granted on: one line per role profile, naming everything that makes it the
    profile it is. Read through the policy's per-request cache, so a page that asks the door pays nothing more."""
    return sorted(
        f"{profile.pk}:{profile.organisation_id}:{profile.job_role}:{profile.sds_user_id}:"
        f"{profile.sds_role_profile_id}"
        for profile in staff_profiles_of(user)
    )


def session_start(session: SessionBase, user: AbstractBaseUser, now: datetime) -> None:
    """Record a sign-in: its time, its first activity, and the role profiles it was granted on."""
    session[SIGNED_IN_AT] = _stamp(now)
    session[LAST_ACTIVITY_AT] = _stamp(now)
    session[STANDING] = standing_of(user)


def session_deadlines(session: SessionBase) -> Deadlines | None:
    """This session's deadlines, or None when it has no sign-in recorded."""
    signed_in_at = _moment(session.get(SIGNED_IN_AT))
    last_activity_at = _moment(session.get(LAST_ACTIVITY_AT))
    if signed_in_at is None or last_activity_at is None:
        return None
    return Deadlines(
        idle_at=last_activity_at + timedelta(minutes=settings.SESSION_IDLE_MINUTES),
        lifetime_at=signed_in_at + timedelta(hours=settings.SESSION_MAX_HOURS),
    )


def session_activity_record(session: SessionBase, now: datetime, *, always: bool = False) -> None:
    """Note activity now: written when the recorded time is a minute old or more, or `always` (staying signed in)."""
    last_activity_at = _moment(session.get(LAST_ACTIVITY_AT))
    if always or last_activity_at is None or now - last_activity_at >= ACTIVITY_RESOLUTION:
        session[LAST_ACTIVITY_AT] = _stamp(now)


def _ended_because(request: HttpRequest, now: datetime) -> str | None:
    """Why this request's session has ended, or None while it stands."""
    user = request.user
    if not user.is_authenticated:
        # The session names a user Django would not load: disabled, or removed.
        return STANDING_CHANGED if SESSION_KEY in request.session else None
    deadlines = session_deadlines(request.session)
    if deadlines is None:
        # Signed in before these limits were kept: they start counting now.
        session_start(request.session, user, now)
        return None
    if now >= deadlines.lifetime_at:
        return LIFETIME
    if now >= deadlines.idle_at:
        return IDLE
    standing = standing_of(user)
    if not set(request.session.get(STANDING, ())) <= set(standing):
        return STANDING_CHANGED
    chosen = request.session.get(SELECTED_PROFILE_SESSION_KEY)
    if chosen is not None and not any(line.startswith(f"{chosen}:") for line in standing):
        return STANDING_CHANGED
    return None


def session_activity_exempt(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark a view whose requests are not the user's activity (a background poll), so they never extend a session."""
    view.session_activity_exempt = True  # type: ignore[attr-defined]
    return view


class SessionLimitsMiddleware:
    """Signs out a session past its idle or absolute limit, or whose account's standing changed; records activity.

    Placed after the authentication, role and messages middleware: it reads the user, shares the role cache with the
    door, and leaves the login page its message.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if hasattr(request, "session"):
            reason = _ended_because(request, timezone.now())
            if reason is not None:
                logout(request)
                messages.info(request, _signed_out_message(reason))
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., HttpResponse], args: Any, kwargs: Any
    ) -> None:
        if getattr(view, "session_activity_exempt", False):
            return
        if hasattr(request, "session") and request.user.is_authenticated:
            session_activity_record(request.session, timezone.now())


def _on_sign_in(sender: Any, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        session_start(request.session, user, timezone.now())


def session_limits_connect() -> None:
    """Record every sign-in's start, however it was made (login page, back office, single sign-on, tests)."""
    from django.contrib.auth.signals import user_logged_in

    user_logged_in.connect(_on_sign_in, dispatch_uid="sharedcare.sessions.session_start")
