"""The IG team's pages for subject access requests and national data opt-outs.

Every view goes through the door in `records.access_requests`, which decides by
`consent.policy.may_manage_patients_rights` and audits what touches a patient; none builds a query. Anyone outside
the team gets 404, as for a case that does not exist, and nothing changes. No NHS number is ever in a URL: a request
is named by its reference, an opt-out by its row's id, and every NHS number travels in a POST body.
"""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from consent.subject_access import CaseStepRefused
from records.access import PatientNotFound
from records.access_requests import (
    AccessReport,
    IdentityNotMatched,
    national_opt_out_record_for_user,
    national_opt_out_remove_for_user,
    national_opt_outs_for_user,
    patients_rights_team_only,
    subject_access_enter_for_user,
    subject_access_extend_for_user,
    subject_access_fulfil_for_user,
    subject_access_open_for_user,
    subject_access_register_for_user,
    subject_access_report_for_user,
    subject_access_verify_for_user,
    subject_access_withdraw_for_user,
)
from records.portal.subject_access_forms import (
    ExtendForm,
    IdentityForm,
    OptOutRecordForm,
    OptOutRemoveForm,
    SubjectAccessEnterForm,
    WithdrawForm,
)

NO_MATCH = (
    "No patient held here has this NHS number and date of birth. Check both against the proof of identity."
)


def _detail_url(reference: str) -> str:
    return reverse("records:subject-access-detail", kwargs={"reference": reference})


def _to_case(reference: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(_detail_url(reference), status=303)


def _csv(report: AccessReport) -> HttpResponse:
    response = HttpResponse(report.csv, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{report.reference}-access-report.csv"'
    return response


@login_required
@require_http_methods(["GET"])
def subject_access_list(request: HttpRequest) -> HttpResponse:
    try:
        register = subject_access_register_for_user(request.user, request.GET.get("page"))
    except PatientNotFound:
        raise Http404 from None
    return render(request, "records/subject_access_list.html", {"register": register})


@login_required
@require_http_methods(["GET", "POST"])
def subject_access_new(request: HttpRequest) -> HttpResponse:
    try:
        patients_rights_team_only(request.user)
    except PatientNotFound:
        raise Http404 from None
    form = SubjectAccessEnterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            case = subject_access_enter_for_user(
                user=request.user,
                channel=data["channel"],
                requester_name=data["requester_name"],
                contact_by=data["contact_by"],
                contact_detail=data["contact_detail"],
                nhs_number_text=data["nhs_number"],
                birth_date=data["birth_date"],
                received_at=form.received_at(),
            )
        except PatientNotFound:
            raise Http404 from None
        except CaseStepRefused as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(request, f"Request {case.reference} recorded. Give the person this reference.")
            return _to_case(case.reference)
    return render(request, "records/subject_access_new.html", {"form": form})


def _case_page(request: HttpRequest, reference: str, **forms: Any) -> HttpResponse:
    try:
        case = subject_access_open_for_user(user=request.user, reference=reference)
    except PatientNotFound:
        raise Http404 from None
    context = {
        "case": case,
        "identity_form": forms.get("identity") or IdentityForm(),
        "extend_form": forms.get("extend") or ExtendForm(),
        "withdraw_form": forms.get("withdraw") or WithdrawForm(),
    }
    return render(request, "records/subject_access_detail.html", context)


@login_required
@require_http_methods(["GET"])
def subject_access_detail(request: HttpRequest, reference: str) -> HttpResponse:
    return _case_page(request, reference)


@login_required
@require_POST
def subject_access_verify(request: HttpRequest, reference: str) -> HttpResponse:
    form = IdentityForm(request.POST)
    if not form.is_valid():
        return _case_page(request, reference, identity=form)
    try:
        subject_access_verify_for_user(
            user=request.user,
            reference=reference,
            nhs_number_text=form.cleaned_data["nhs_number"],
            birth_date=form.cleaned_data["birth_date"],
            request=request,
        )
    except PatientNotFound:
        raise Http404 from None
    except IdentityNotMatched:
        form.add_error(None, NO_MATCH)
        return _case_page(request, reference, identity=form)
    except CaseStepRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, "Identity verified: the request is matched to a patient held here.")
    return _to_case(reference)


@login_required
@require_POST
def subject_access_extend(request: HttpRequest, reference: str) -> HttpResponse:
    form = ExtendForm(request.POST)
    if not form.is_valid():
        return _case_page(request, reference, extend=form)
    try:
        subject_access_extend_for_user(
            user=request.user,
            reference=reference,
            due_on=form.cleaned_data["due_on"],
            reason=form.cleaned_data["reason"],
        )
    except PatientNotFound:
        raise Http404 from None
    except CaseStepRefused as refused:
        form.add_error(None, str(refused))
        return _case_page(request, reference, extend=form)
    messages.success(request, "Due date extended.")
    return _to_case(reference)


@login_required
@require_POST
def subject_access_fulfil(request: HttpRequest, reference: str) -> HttpResponse:
    try:
        report = subject_access_fulfil_for_user(user=request.user, reference=reference, request=request)
    except PatientNotFound:
        raise Http404 from None
    except CaseStepRefused as refused:
        messages.error(request, str(refused))
        return _to_case(reference)
    return _csv(report)


@login_required
@require_http_methods(["GET"])
def subject_access_report(request: HttpRequest, reference: str) -> HttpResponse:
    try:
        report = subject_access_report_for_user(user=request.user, reference=reference, request=request)
    except PatientNotFound:
        raise Http404 from None
    return _csv(report)


@login_required
@require_POST
def subject_access_withdraw(request: HttpRequest, reference: str) -> HttpResponse:
    form = WithdrawForm(request.POST)
    if not form.is_valid():
        return _case_page(request, reference, withdraw=form)
    try:
        subject_access_withdraw_for_user(
            user=request.user, reference=reference, note=form.cleaned_data["note"]
        )
    except PatientNotFound:
        raise Http404 from None
    except CaseStepRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, "Request withdrawn.")
    return _to_case(reference)


# The national data opt-out.


def _opt_out_page(
    request: HttpRequest, *, record: OptOutRecordForm | None = None, remove: OptOutRemoveForm | None = None
) -> HttpResponse:
    try:
        listing = national_opt_outs_for_user(
            user=request.user, request=request, page_number=request.GET.get("page")
        )
    except PatientNotFound:
        raise Http404 from None
    rows = [
        (
            row,
            remove
            if remove is not None and remove.opt_out_id == row.opt_out.pk
            else OptOutRemoveForm(opt_out_id=row.opt_out.pk),
        )
        for row in listing.rows
    ]
    context = {"page": listing.page, "rows": rows, "form": record or OptOutRecordForm()}
    return render(request, "records/opt_out_list.html", context)


@login_required
@require_http_methods(["GET"])
def opt_out_list(request: HttpRequest) -> HttpResponse:
    return _opt_out_page(request)


@login_required
@require_POST
def opt_out_record(request: HttpRequest) -> HttpResponse:
    form = OptOutRecordForm(request.POST)
    if not form.is_valid():
        return _opt_out_page(request, record=form)
    try:
        _, created = national_opt_out_record_for_user(
            user=request.user,
            nhs_number_text=form.cleaned_data["nhs_number"],
            birth_date=form.cleaned_data["birth_date"],
            note=form.cleaned_data["note"],
            request=request,
        )
    except PatientNotFound:
        raise Http404 from None
    except IdentityNotMatched:
        form.add_error(None, NO_MATCH)
        return _opt_out_page(request, record=form)
    if created:
        messages.success(request, "National data opt-out recorded.")
    else:
        messages.info(request, "This patient's national data opt-out was recorded already; nothing changed.")
    return HttpResponseRedirect(reverse("records:opt-out-list"), status=303)


@login_required
@require_POST
def opt_out_remove(request: HttpRequest, opt_out_id: int) -> HttpResponse:
    form = OptOutRemoveForm(request.POST, opt_out_id=opt_out_id)
    if not form.is_valid():
        return _opt_out_page(request, remove=form)
    try:
        national_opt_out_remove_for_user(
            user=request.user, opt_out_id=opt_out_id, reason=form.cleaned_data["reason"], request=request
        )
    except PatientNotFound:
        raise Http404 from None
    messages.success(request, "National data opt-out removed.")
    return HttpResponseRedirect(reverse("records:opt-out-list"), status=303)
