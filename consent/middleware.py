"""Carries the role profile a user chose at login from their session to `consent.policy`."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from consent.policy import REQUEST_CACHE_ATTRIBUTE, SELECTED_PROFILE_SESSION_KEY


class SelectedRoleMiddleware:
    """Puts the chosen role profile's id on the user, where `consent.policy.staff_profile_of` reads it.

    The policy never reads the session itself, so it answers the same for a request and for a worker; a user with
    one role profile needs no choice, and a user with several acts under none until they choose.

    It also gives the request's user an empty cache, so the role profiles and role the door, the page frame and the
    audit row each need are read once per request, not once per question; the cache goes with the request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        selected = request.session.get(SELECTED_PROFILE_SESSION_KEY) if hasattr(request, "session") else None
        if selected is not None and request.user.is_authenticated:
            setattr(request.user, SELECTED_PROFILE_SESSION_KEY, int(selected))
        if request.user.is_authenticated:
            setattr(request.user, REQUEST_CACHE_ATTRIBUTE, {})
        return self.get_response(request)
