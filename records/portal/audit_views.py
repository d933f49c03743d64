"""The privacy officer's pages for the audit trail: a patient's access report, on the page, as PDF and as CSV; and
the change history of who may see what.

Every view goes through the door in `records.access_audit`, which decides by `consent.policy.may_read_audit` and
audits every read; none builds a query. Anyone else gets 404, as for a patient not held. The NHS number travels
only in a POST body; the report's pages name the patient by their opaque public id.
"""

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from consent.access_report import access_report_csv, access_report_pdf
from records.access import PatientNotFound
from records.access_audit import (
    CHANGE_KINDS,
    PatientAccessReport,
    access_report_find_for_user,
    access_report_for_user,
    governance_changes_for_user,
    may_read_audit_for_user,
)
from records.portal.forms import PatientSearchForm

NOT_HELD = "No patient is held here with that NHS number."


@login_required
@require_http_methods(["GET", "POST"])
def access_report_find(request: HttpRequest) -> HttpResponse:
    form = PatientSearchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = access_report_find_for_user(
                user=request.user, nhs_number_text=form.cleaned_data["nhs_number"], request=request
            )
        except PatientNotFound:
            form.data = {**form.data, "nhs_number": ""}
            form.add_error("nhs_number", NOT_HELD)
        else:
            url = reverse("records:access-report-patient", kwargs={"public_id": patient.public_id})
            return HttpResponseRedirect(url, status=303)
    # Asked after the door, which audits a refused search itself: only a privacy officer sees the form.
    try:
        may_read_audit_for_user(request.user)
    except PatientNotFound:
        raise Http404 from None
    return render(request, "records/access_report_find.html", {"form": form})


def _report(request: HttpRequest, public_id: uuid.UUID, download: str = "") -> PatientAccessReport:
    try:
        return access_report_for_user(
            user=request.user, public_id=public_id, request=request, download=download
        )
    except PatientNotFound:
        raise Http404 from None


def _filename(report: PatientAccessReport, extension: str) -> str:
    # The patient's opaque id, never their NHS number or name: file names end up in download folders and logs.
    return f"access-report-{report.patient.public_id}-{timezone.localdate():%Y-%m-%d}.{extension}"


@login_required
@require_http_methods(["GET"])
def access_report_patient(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    return render(request, "records/access_report.html", {"report": _report(request, public_id)})


@login_required
@require_http_methods(["GET"])
def access_report_pdf_download(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    report = _report(request, public_id, "pdf")
    response = HttpResponse(access_report_pdf(report.patient, report.lines), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{_filename(report, "pdf")}"'
    return response


@login_required
@require_http_methods(["GET"])
def access_report_csv_download(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    report = _report(request, public_id, "csv")
    response = HttpResponse(access_report_csv(report.lines), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(report, "csv")}"'
    return response


@login_required
@require_http_methods(["GET"])
def change_history(request: HttpRequest) -> HttpResponse:
    # A username, typed by the privacy officer to narrow the list; never a patient's identifier.
    actor = request.GET.get("actor", "").strip()[:150]
    # An unknown kind shows every kind, as the form's first choice does.
    kind = request.GET.get("kind", "")
    kind = kind if kind in CHANGE_KINDS else ""
    try:
        lines = governance_changes_for_user(user=request.user, request=request, actor=actor, kind=kind)
    except PatientNotFound:
        raise Http404 from None
    context = {"lines": lines, "actor": actor, "kind": kind, "kinds": CHANGE_KINDS}
    return render(request, "records/change_history.html", context)
