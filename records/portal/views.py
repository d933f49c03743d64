"""The clinician portal: home, search by NHS number, and the consolidated record page.

Every view that touches a patient goes through the door in `records.access`; none builds a patient query.
A patient who does not exist and a patient this user may not see get the same answer.
"""

import uuid
from functools import partial

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from records.access import PatientNotFound, get_patient_for_user, patient_search_for_user, signed_in_profile
from records.portal.forms import PatientSearchForm
from records.portal.selectors import record_page_build


@login_required
@require_http_methods(["GET"])
def home(request: HttpRequest) -> HttpResponse:
    context = {"profile": signed_in_profile(request.user), "form": PatientSearchForm()}
    return render(request, "records/home.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def patient_search(request: HttpRequest) -> HttpResponse:
    # POST only: an NHS number in a query string would land in access logs and browser history.
    if request.method != "POST":
        return render(request, "records/search.html", {"form": PatientSearchForm()})
    form = PatientSearchForm(request.POST)
    if form.is_valid():
        try:
            patient = patient_search_for_user(
                user=request.user, nhs_number_text=form.cleaned_data["nhs_number"], request=request
            )
        except PatientNotFound:
            form.reject_as_not_found()
        else:
            url = reverse("records:patient-detail", kwargs={"public_id": patient.public_id})
            return HttpResponseRedirect(url, status=303)
    return render(request, "records/search.html", {"form": form})


@login_required
@require_http_methods(["GET"])
def patient_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    build = partial(record_page_build, requested_pages=request.GET)
    try:
        access = get_patient_for_user(user=request.user, public_id=public_id, request=request, build=build)
    except PatientNotFound:
        raise Http404 from None
    return render(
        request, "records/patient_detail.html", {"record": access.content, "decision": access.decision}
    )
