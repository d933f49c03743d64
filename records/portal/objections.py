"""The IG team's pages for patients' objections: the case list, a case with its steps as forms and its change
history, the outcome letter, and recording an objection made by phone, letter or in person. Also the GP practice's
form for an objection a patient made to it, opened from the patient's record.

Every view goes through the door in `records.access_objections`; none builds a query. To anyone the door refuses,
every page here is a 404, the same as for a case that does not exist, and nothing is shown or changed.
"""

import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from consent.models import Objection
from consent.objections import ObjectionStepRefused
from records import nhs_number
from records.access import PatientNotFound
from records.access_objections import (
    CaseNotFound,
    MatchCandidate,
    MatchNotFound,
    ObjectionCase,
    objection_case_for_user,
    objection_cases_for_user,
    objection_clinical_input_for_user,
    objection_decide_for_user,
    objection_enter_for_patient_for_user,
    objection_enter_for_user,
    objection_extend_for_user,
    objection_for_user,
    objection_identity_not_found_for_user,
    objection_identity_verify_for_user,
    objection_inform_for_user,
    objection_letter_for_user,
    objection_match_for_user,
    objection_patient_for_user,
    objection_withdraw_for_user,
    works_objections,
)
from records.portal.objection_forms import (
    CaseFilterForm,
    ClinicalInputForm,
    DecisionForm,
    ExtendForm,
    IdentityLookupForm,
    IdentityNotFoundForm,
    IdentityVerifyForm,
    ObjectionEntryForm,
    ObjectionForPatientForm,
    WithdrawForm,
)
from records.sections import Section

NOT_MATCHED = "No patient we hold has that NHS number."


def _detail_url(reference: str) -> str:
    return reverse("records:objection-detail", kwargs={"reference": reference})


def _scope_words(
    case: ObjectionCase, whole: bool, sections: list[str], from_partners: list[str], to_partners: list[str]
) -> list[str]:
    """A scope in words for the page: sections by their headings, partners by name and ODS code."""
    name = case.partner_names.get
    words = ["The whole record"] if whole else []
    words += [f"Section: {Section(key).label}" for key in sections]
    words += [f"Data from {name(code, code)} ({code}) not shared" for code in from_partners]
    words += [f"Staff of {name(code, code)} ({code}) not to see the record" for code in to_partners]
    return words


def _case_page(request: HttpRequest, reference: str, *, status: int = 200, **bound: Any) -> HttpResponse:
    """The case page, with each step's form (bound ones as given, with their errors) and a look-up's candidate."""
    try:
        case = objection_case_for_user(user=request.user, reference=reference)
    except CaseNotFound:
        raise Http404 from None
    objection = case.objection
    candidate: MatchCandidate | None = bound.pop("candidate", None)
    context: dict[str, Any] = {
        "case": case,
        "objection": objection,
        "candidate": candidate,
        "given_nhs_number": nhs_number.display(objection.nhs_number) if objection.nhs_number else "",
        "asked": _scope_words(
            case,
            objection.scope_whole_record,
            objection.scope_sections,
            objection.scope_from_partners,
            objection.scope_to_partners,
        ),
        "upheld": _scope_words(
            case,
            objection.upheld_whole_record,
            objection.upheld_sections,
            objection.upheld_from_partners,
            objection.upheld_to_partners,
        ),
        "lookup_form": IdentityLookupForm(initial={"nhs_number": objection.nhs_number}),
        "verify_form": IdentityVerifyForm(initial={"nhs_number": candidate.nhs_number if candidate else ""}),
        "not_found_form": IdentityNotFoundForm(),
        "clinical_form": ClinicalInputForm(),
        "decision_form": DecisionForm(objection=objection),
        "extend_form": ExtendForm(objection=objection),
        "withdraw_form": WithdrawForm(),
        "status": Objection.Status,
        **bound,
    }
    # Every problem in the summary at the top: a step the case is not ready for has no form of its own shown.
    context["problems"] = [
        str(error)
        for form in bound.values()
        if isinstance(form, forms.Form)
        for errors in form.errors.values()
        for error in errors
    ]
    return render(request, "records/objection_detail.html", context, status=status)


def _step(
    request: HttpRequest,
    reference: str,
    form: forms.Form,
    name: str,
    run: Callable[[], object],
    done: str,
) -> HttpResponse:
    """Run one step of the case when its form is valid; otherwise, or when the case refuses it, show the case
    page again with the form's errors."""
    if form.is_valid():
        try:
            run()
        except CaseNotFound:
            raise Http404 from None
        except (ObjectionStepRefused, ValueError) as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(request, done)
            return HttpResponseRedirect(_detail_url(reference), status=303)
    return _case_page(request, reference, status=400, **{name: form})


@login_required
@require_GET
def objection_list(request: HttpRequest) -> HttpResponse:
    form = CaseFilterForm(request.GET or None)
    valid = form.is_valid() if request.GET else True
    data = form.cleaned_data if request.GET and valid else {}
    try:
        cases = objection_cases_for_user(
            user=request.user, status=data.get("status", ""), overdue_only=data.get("overdue", False)
        )
    except CaseNotFound:
        raise Http404 from None
    return render(
        request,
        "records/objection_list.html",
        {"cases": cases, "form": form, "filtered": bool(data.get("status") or data.get("overdue"))},
        status=200 if valid else 400,
    )


@login_required
@require_GET
def objection_detail(request: HttpRequest, reference: str) -> HttpResponse:
    return _case_page(request, reference)


@login_required
@require_POST
def objection_identity_lookup(request: HttpRequest, reference: str) -> HttpResponse:
    form = IdentityLookupForm(request.POST)
    if not form.is_valid():
        return _case_page(request, reference, status=400, lookup_form=form)
    try:
        candidate = objection_match_for_user(
            user=request.user,
            reference=reference,
            nhs_number_text=form.cleaned_data["nhs_number"],
            request=request,
        )
    except CaseNotFound:
        raise Http404 from None
    except MatchNotFound:
        form.add_error("nhs_number", NOT_MATCHED)
        return _case_page(request, reference, lookup_form=form)
    except ObjectionStepRefused as refused:
        form.add_error(None, str(refused))
        return _case_page(request, reference, status=400, lookup_form=form)
    return _case_page(request, reference, lookup_form=form, candidate=candidate)


@login_required
@require_POST
def objection_identity_verify(request: HttpRequest, reference: str) -> HttpResponse:
    form = IdentityVerifyForm(request.POST)

    def run() -> object:
        try:
            return objection_identity_verify_for_user(
                user=request.user,
                reference=reference,
                nhs_number_text=form.cleaned_data["nhs_number"],
                note=form.cleaned_data["note"],
                request=request,
            )
        except MatchNotFound:
            raise ValueError(NOT_MATCHED) from None

    return _step(request, reference, form, "verify_form", run, "Identity verified: the case is matched.")


@login_required
@require_POST
def objection_identity_not_found(request: HttpRequest, reference: str) -> HttpResponse:
    form = IdentityNotFoundForm(request.POST)
    return _step(
        request,
        reference,
        form,
        "not_found_form",
        lambda: objection_identity_not_found_for_user(
            user=request.user, reference=reference, note=form.cleaned_data["note"]
        ),
        "Recorded: no patient we hold matches.",
    )


@login_required
@require_POST
def objection_clinical_input(request: HttpRequest, reference: str) -> HttpResponse:
    form = ClinicalInputForm(request.POST)
    return _step(
        request,
        reference,
        form,
        "clinical_form",
        lambda: objection_clinical_input_for_user(
            user=request.user,
            reference=reference,
            clinician=form.cleaned_data["clinician"],
            text=form.cleaned_data["text"],
        ),
        "Clinical input recorded: the case is under review.",
    )


def _objection_or_404(request: HttpRequest, reference: str) -> Objection:
    try:
        return objection_for_user(user=request.user, reference=reference)
    except CaseNotFound:
        raise Http404 from None


@login_required
@require_POST
def objection_decide(request: HttpRequest, reference: str) -> HttpResponse:
    form = DecisionForm(request.POST, objection=_objection_or_404(request, reference))
    return _step(
        request,
        reference,
        form,
        "decision_form",
        lambda: objection_decide_for_user(user=request.user, reference=reference, **form.decision()),
        "Decision recorded.",
    )


@login_required
@require_POST
def objection_inform(request: HttpRequest, reference: str) -> HttpResponse:
    form = forms.Form(request.POST)
    return _step(
        request,
        reference,
        form,
        "inform_form",
        lambda: objection_inform_for_user(user=request.user, reference=reference),
        "Recorded that the patient was told.",
    )


@login_required
@require_POST
def objection_extend(request: HttpRequest, reference: str) -> HttpResponse:
    form = ExtendForm(request.POST, objection=_objection_or_404(request, reference))
    return _step(
        request,
        reference,
        form,
        "extend_form",
        lambda: objection_extend_for_user(
            user=request.user, reference=reference, due_at=form.due_at(), reason=form.cleaned_data["reason"]
        ),
        "Due date extended.",
    )


@login_required
@require_POST
def objection_withdraw(request: HttpRequest, reference: str) -> HttpResponse:
    form = WithdrawForm(request.POST)
    return _step(
        request,
        reference,
        form,
        "withdraw_form",
        lambda: objection_withdraw_for_user(
            user=request.user, reference=reference, note=form.cleaned_data["note"]
        ),
        "Recorded: the patient withdrew the objection. It is no longer enforced.",
    )


@login_required
@require_GET
def objection_letter(request: HttpRequest, reference: str) -> HttpResponse:
    try:
        filename, pdf = objection_letter_for_user(user=request.user, reference=reference)
    except CaseNotFound:
        raise Http404 from None
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def objection_new(request: HttpRequest) -> HttpResponse:
    if not works_objections(request.user):
        raise Http404
    form = ObjectionEntryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            objection, matched = objection_enter_for_user(
                user=request.user,
                request=request,
                fields=form.receive_fields(),
                match_now=form.cleaned_data["match_now"],
            )
        except CaseNotFound:
            raise Http404 from None
        if form.cleaned_data["match_now"] and not matched:
            messages.warning(request, f"{NOT_MATCHED} The case is received; verify identity from its page.")
        messages.success(request, f"Objection {objection.reference} recorded.")
        return HttpResponseRedirect(_detail_url(objection.reference), status=303)
    return render(request, "records/objection_new.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def objection_new_for_patient(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    form = ObjectionForPatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            objection = objection_enter_for_patient_for_user(
                user=request.user, public_id=public_id, request=request, fields=form.receive_fields()
            )
        except PatientNotFound:
            raise Http404 from None
        except ValueError as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(
                request,
                f"Objection {objection.reference} recorded. The information governance team will consider it "
                "and write to the patient.",
            )
            return HttpResponseRedirect(
                reverse("records:patient-detail", kwargs={"public_id": public_id}), status=303
            )
    try:
        patient = objection_patient_for_user(user=request.user, public_id=public_id, request=request)
    except PatientNotFound:
        raise Http404 from None
    return render(
        request,
        "records/objection_new_for_patient.html",
        {"form": form, "patient": patient},
        status=400 if form.errors else 200,
    )
