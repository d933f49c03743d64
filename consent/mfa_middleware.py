"""Holds a signed-in user at the second-factor step until they pass it: nothing else opens before."""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode
from rest_framework.views import APIView

from consent.mfa import mfa_enrolled, mfa_required

# Whether this session's user had an authenticator when it was first asked: read once per session, so a user who
# need not use one pays no query on every page, and one who enrolled of their own accord still passes it.
ENROLLED_SESSION_KEY = "mfa_enrolled"
# The pages a user who has not passed the second factor may open.
_OPEN_URL_NAMES = ("mfa-verify", "mfa-enrol", "logout")


class MfaRequiredMiddleware:
    """Sends a signed-in user who must pass a second factor, and has not passed it in this session, to the
    verification page (or to enrolment when they have no authenticator yet); only those pages, signing out and
    static files answer until they do.

    After django-otp's `OTPMiddleware`, whose `is_verified()` reloads the session's device on every request, so a
    device the back office removes stops counting at once; and after `SelectedRoleMiddleware`, so asking whether a
    user must pass it reads the profiles and roles the page reads anyway. A session signed in by a backend that
    already asked for a second factor (`MFA_EXEMPT_BACKENDS`) passes. Requests with no session user, and the
    partner API, which authenticates by its keys and never by the session, are not touched.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        view_class = getattr(view_func, "cls", None)
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            return None
        held = self._held_at(request)
        if held is None:
            return None
        target = reverse(held)
        if request.method == "GET":
            target += "?" + urlencode({"next": request.get_full_path()})
        return HttpResponseRedirect(target)

    def _held_at(self, request: HttpRequest) -> str | None:
        user = request.user
        if not user.is_authenticated:
            return None
        match = request.resolver_match
        if match is not None and match.view_name in _OPEN_URL_NAMES:
            return None
        if user.is_verified():  # type: ignore[attr-defined]
            return None
        if request.session.get(BACKEND_SESSION_KEY) in settings.MFA_EXEMPT_BACKENDS:
            return None
        if ENROLLED_SESSION_KEY not in request.session:
            request.session[ENROLLED_SESSION_KEY] = mfa_enrolled(user)
        if request.session[ENROLLED_SESSION_KEY]:
            return "mfa-verify"
        if mfa_required(user):
            return "mfa-enrol"
        return None
