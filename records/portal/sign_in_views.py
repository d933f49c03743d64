"""The privacy officer's page of failed sign-ins and lockouts; the door is `records.access_sign_ins`."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from records.access import PatientNotFound
from records.access_sign_ins import FAILURES_SHOWN, sign_in_failures_for_user


@login_required
@require_GET
def sign_in_failures(request: HttpRequest) -> HttpResponse:
    try:
        found = sign_in_failures_for_user(user=request.user, request=request)
    except PatientNotFound:
        raise Http404 from None
    return render(
        request,
        "records/sign_in_failures.html",
        {"found": found, "shown": FAILURES_SHOWN, "limit": settings.AXES_FAILURE_LIMIT},
    )
