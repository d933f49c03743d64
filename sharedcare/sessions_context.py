"""What every signed-in page tells its session-timeout script (templates/includes/session_timeout.html)."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from sharedcare.sessions import session_deadlines


def session_timeout(request: HttpRequest) -> dict[str, Any]:
    """Seconds left before the session ends (idle, and absolute) and when to warn; nothing for a visitor."""
    user = getattr(request, "user", None)
    session = getattr(request, "session", None)
    if user is None or session is None or not user.is_authenticated:
        return {}
    deadlines = session_deadlines(session)
    if deadlines is None:
        return {}
    idle_seconds, lifetime_seconds = deadlines.seconds_left(timezone.now())
    return {
        "session_timeout": {
            "idle_seconds": idle_seconds,
            "lifetime_seconds": lifetime_seconds,
            "warning_seconds": settings.SESSION_WARNING_MINUTES * 60,
        }
    }
