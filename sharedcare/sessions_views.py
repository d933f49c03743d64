"""What the page's session-timeout script asks: how long the session has left, and to stay signed in."""

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from sharedcare.sessions import session_activity_exempt, session_activity_record, session_deadlines


def _state(request: HttpRequest) -> JsonResponse:
    deadlines = session_deadlines(request.session) if request.user.is_authenticated else None
    if deadlines is None:
        return JsonResponse({"signed_in": False}, status=401)
    idle_seconds, lifetime_seconds = deadlines.seconds_left(timezone.now())
    return JsonResponse(
        {"signed_in": True, "idle_seconds": idle_seconds, "lifetime_seconds": lifetime_seconds}
    )


@require_GET
@session_activity_exempt
def session_status(request: HttpRequest) -> JsonResponse:
    """Seconds left before the session ends, asked in the background: it is not activity and extends nothing."""
    return _state(request)


@require_POST
def session_keep_alive(request: HttpRequest) -> JsonResponse:
    """Stay signed in: activity now, so the idle limit starts again; the absolute limit stays where it is."""
    if request.user.is_authenticated:
        session_activity_record(request.session, timezone.now(), always=True)
    return _state(request)
