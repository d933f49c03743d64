"""The pages of a CIS2 sign-in: the start (to the provider), the callback, and the refusal.

What always holds: with OIDC unconfigured both URLs answer 404; a callback that does not end in a matched role
profile leaves nobody signed in and shows a refusal page (403 for a role sharedcare does not know, 400 for a sign-in
that did not finish: a replayed or forged state, an error from the provider); a successful one selects the matched
role profile in the session exactly as the role chooser does, so no chooser is shown.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import auth
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from records.access import role_select_for_user
from sharedcare.oidc import MATCHED_PROFILE_ATTRIBUTE, REFUSAL_ATTRIBUTE

logger = logging.getLogger(__name__)

app_name = "oidc"


def oidc_refused(request: HttpRequest, *, role_refused: bool) -> HttpResponse:
    """The refusal page; the one who tried is signed out of anything they were signed in to."""
    if request.user.is_authenticated:
        auth.logout(request)
    status = 403 if role_refused else 400
    return render(request, "registration/oidc_refused.html", {"role_refused": role_refused}, status=status)


class Cis2SignInView(OIDCAuthenticationRequestView):  # type: ignore[misc]
    """Sends the browser to the provider with a fresh state, nonce and PKCE challenge kept in the session."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404
        response: HttpResponse = super().get(request)
        return response


class Cis2CallbackView(OIDCAuthenticationCallbackView):  # type: ignore[misc]
    """Where the provider sends the browser back: the state is checked and spent, then the code exchanged."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404
        try:
            response: HttpResponse = super().get(request)
        except SuspiciousOperation as error:
            logger.warning("CIS2 sign-in refused: %s", error)
            return oidc_refused(request, role_refused=False)
        return response

    def login_failure(self) -> HttpResponse:
        refusal = getattr(self.request, REFUSAL_ATTRIBUTE, None)
        if refusal is None:
            logger.warning(
                "CIS2 sign-in did not finish (%s)", self.request.GET.get("error", "no code exchanged")
            )
        return oidc_refused(self.request, role_refused=refusal is not None)

    def login_success(self) -> HttpResponse:
        response: HttpResponse = super().login_success()
        profile_id = getattr(self.user, MATCHED_PROFILE_ATTRIBUTE, None)
        if profile_id is None or role_select_for_user(request=self.request, profile_id=profile_id) is None:
            setattr(self.request, REFUSAL_ATTRIBUTE, "the matched role profile could not be selected")
            return oidc_refused(self.request, role_refused=True)
        return response


def oidc_sign_in(request: HttpRequest) -> dict[str, bool]:
    """Template context: whether the sign-in page offers the NHS Care Identity button."""
    return {"oidc_sign_in_enabled": bool(settings.OIDC_ENABLED)}


urlpatterns = [
    path("sign-in/", Cis2SignInView.as_view(), name="sign-in"),
    path("callback/", Cis2CallbackView.as_view(), name="callback"),
]
