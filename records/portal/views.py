"""The clinician portal: home, search by NHS number or by name and date of birth, the record page, giving oneself
access to a patient found without a relationship, choosing a role, and the privacy officer's review of alerts.

Every view that touches a patient goes through the door in `records.access`; none builds a patient query.
A patient who does not exist and a patient this user may not see get the same answer. The access page (self-claim
and break-glass) opens only for a patient this session searched for and was offered, so it cannot be used to probe
for patients.
"""

import uuid
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from audit.alerts import AlertAlreadyReviewed
from records import nhs_number
from records.access import (
    PatientNotFound,
    RecordWithheld,
    RelationshipNeeded,
    alert_open_for_user,
    alert_queue_for_user,
    alert_review_for_user,
    break_glass_for_user,
    get_patient_for_user,
    grant_end_for_user,
    patient_search_for_user,
    relationship_declare_for_user,
    role_choice_needed,
    role_select_for_user,
    signed_in_profile,
    staff_profiles_for_user,
)
from records.access_limits import SearchLimitReached, patient_search_limit_check
from records.access_search import (
    NAME_SEARCH_LISTED,
    NameSearchCriteria,
    NameSearchResult,
    patient_name_search_for_user,
)
from records.portal.forms import (
    NAME_SEARCH,
    AlertReviewForm,
    BreakGlassForm,
    PatientNameSearchForm,
    PatientSearchForm,
    RelationshipDeclareForm,
    RoleSelectForm,
)
from records.portal.selectors import record_page_build

# Patients this session searched for, found without a relationship, and was offered access to: the only ones the
# access page opens. Newest last; a few at most, so an old offer does not linger.
CLAIMABLE_SESSION_KEY = "portal_claimable_patients"
CLAIMABLE_KEPT = 5
# How a printed record is named in its export event.
PRINT = "print"


def _role_choice_redirect(request: HttpRequest) -> HttpResponse | None:
    if not role_choice_needed(request.user):
        return None
    return HttpResponseRedirect(f"{reverse('records:role-select')}?next={request.path}")


@login_required
@require_http_methods(["GET"])
def home(request: HttpRequest) -> HttpResponse:
    if redirect := _role_choice_redirect(request):
        return redirect
    context = {"profile": signed_in_profile(request.user), "form": PatientSearchForm()}
    return render(request, "records/home.html", context)


def _claimable_remember(
    request: HttpRequest, offer: RelationshipNeeded | RecordWithheld, number: str
) -> None:
    """Keep, for this session only, the patient a search offered access to, the number typed, and what is offered.

    A record withheld by the patient's objection offers only break-glass (a safeguarding one may set aside an
    objection whose decision allows it); the access page then says the record is withheld, not that there is no
    relationship.
    """
    kept = [
        entry for entry in request.session.get(CLAIMABLE_SESSION_KEY, []) if entry[0] != str(offer.public_id)
    ]
    withheld = isinstance(offer, RecordWithheld)
    claim_hours = 0 if withheld else offer.self_claim_max_hours  # type: ignore[union-attr]
    kept.append([str(offer.public_id), number, claim_hours, offer.break_glass_max_hours, withheld])
    request.session[CLAIMABLE_SESSION_KEY] = kept[-CLAIMABLE_KEPT:]


def _claimable(request: HttpRequest, public_id: uuid.UUID) -> tuple[str, int, int]:
    """The NHS number this session typed for the patient, and the hours offered for each kind of access; 404 for a
    patient this session was not offered."""
    for entry in request.session.get(CLAIMABLE_SESSION_KEY, []):
        if entry[0] == str(public_id):
            return entry[1], int(entry[2]), int(entry[3])
    raise Http404


def _claimable_withheld(request: HttpRequest, public_id: uuid.UUID) -> bool:
    """Whether this session was offered the patient because their objection withholds the record."""
    return any(
        entry[0] == str(public_id) and len(entry) > 4 and bool(entry[4])
        for entry in request.session.get(CLAIMABLE_SESSION_KEY, [])
    )


def _claimable_forget(request: HttpRequest, public_id: uuid.UUID) -> None:
    entries = request.session.get(CLAIMABLE_SESSION_KEY, [])
    request.session[CLAIMABLE_SESSION_KEY] = [entry for entry in entries if entry[0] != str(public_id)]


def _search_page(
    request: HttpRequest,
    *,
    form: PatientSearchForm | None = None,
    name_form: PatientNameSearchForm | None = None,
    found: NameSearchResult | None = None,
) -> HttpResponse:
    """The search page, offering both searches; the form just posted keeps what was typed."""
    context = {
        "form": form or PatientSearchForm(),
        "name_form": name_form or PatientNameSearchForm(),
        "found": found,
        "listed_max": NAME_SEARCH_LISTED,
    }
    return render(request, "records/search.html", context)


def _search_limit_page(request: HttpRequest) -> HttpResponse:
    return render(
        request, "records/search_limit.html", {"limit": settings.PATIENT_SEARCHES_PER_HOUR}, status=429
    )


def _name_search(request: HttpRequest) -> HttpResponse:
    # A list of the patients the user may see, never an offer of access: a patient without a relationship is found
    # by NHS number only, one at a time.
    form = PatientNameSearchForm(request.POST)
    if not form.is_valid():
        return _search_page(request, name_form=form)
    data = form.cleaned_data
    criteria = NameSearchCriteria(
        family_name=data["family_name"],
        birth_date=data["birth_date"],
        given_name=data["given_name"],
        postcode=data["postcode"],
        sex=data["sex"],
    )
    try:
        patient_search_limit_check(user=request.user, nhs_number_text=criteria.described(), request=request)
    except SearchLimitReached:
        return _search_limit_page(request)
    found = patient_name_search_for_user(user=request.user, criteria=criteria, request=request)
    return _search_page(request, name_form=form, found=found)


@login_required
@require_http_methods(["GET", "POST"])
def patient_search(request: HttpRequest) -> HttpResponse:
    # POST only: an NHS number, a name or a birth date in a query string would land in access logs and history.
    if request.method != "POST":
        return _search_page(request)
    if request.POST.get("search") == NAME_SEARCH:
        return _name_search(request)
    form = PatientSearchForm(request.POST)
    if form.is_valid():
        number = form.cleaned_data["nhs_number"]
        try:
            patient_search_limit_check(user=request.user, nhs_number_text=number, request=request)
        except SearchLimitReached:
            return _search_limit_page(request)
        try:
            patient = patient_search_for_user(user=request.user, nhs_number_text=number, request=request)
        except RelationshipNeeded as offer:
            _claimable_remember(request, offer, nhs_number.display(number))
            url = reverse("records:patient-access", kwargs={"public_id": offer.public_id})
            return HttpResponseRedirect(url, status=303)
        except RecordWithheld as withheld:
            # The user would see this record but for the patient's objection: they are told so on the record's
            # own page, which asks the door again and audits that view.
            if withheld.break_glass_max_hours:
                _claimable_remember(request, withheld, nhs_number.display(number))
            url = reverse("records:patient-detail", kwargs={"public_id": withheld.public_id})
            return HttpResponseRedirect(url, status=303)
        except PatientNotFound:
            form.reject_as_not_found()
        else:
            url = reverse("records:patient-detail", kwargs={"public_id": patient.public_id})
            return HttpResponseRedirect(url, status=303)
    return _search_page(request, form=form)


@login_required
@require_http_methods(["GET"])
def patient_detail(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    if redirect := _role_choice_redirect(request):
        return redirect
    build = partial(record_page_build, requested_pages=request.GET)
    try:
        access = get_patient_for_user(user=request.user, public_id=public_id, request=request, build=build)
    except RecordWithheld as withheld:
        offered = _claimable_withheld(request, public_id)
        context = {
            "public_id": public_id,
            "break_glass_offered": offered and withheld.break_glass_max_hours > 0,
        }
        return render(request, "records/record_withheld.html", context, status=403)
    except PatientNotFound:
        raise Http404 from None
    return render(
        request, "records/patient_detail.html", {"record": access.content, "decision": access.decision}
    )


@login_required
@require_http_methods(["GET"])
def patient_print(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    # The same pages of the same record as the screen, so the printout holds what the door recorded and no more.
    if redirect := _role_choice_redirect(request):
        return redirect
    build = partial(record_page_build, requested_pages=request.GET)
    try:
        access = get_patient_for_user(
            user=request.user, public_id=public_id, request=request, build=build, export=PRINT
        )
    except PatientNotFound:
        raise Http404 from None
    context = {"record": access.content, "decision": access.decision, "printed_at": access.event.occurred_at}
    return render(request, "records/patient_print.html", context)


def _access_page(
    request: HttpRequest,
    public_id: uuid.UUID,
    *,
    claim: RelationshipDeclareForm | None = None,
    glass: BreakGlassForm | None = None,
) -> HttpResponse:
    number, claim_hours, glass_hours = _claimable(request, public_id)
    context: dict[str, Any] = {
        "public_id": public_id,
        "nhs_number": number,
        "claim_form": claim or (RelationshipDeclareForm(max_hours=claim_hours) if claim_hours else None),
        "glass_form": glass or (BreakGlassForm(user=request.user) if glass_hours else None),
        "break_glass_hours": glass_hours,
        "withheld": _claimable_withheld(request, public_id),
    }
    return render(request, "records/patient_access.html", context)


@login_required
@require_http_methods(["GET"])
def patient_access(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    return _access_page(request, public_id)


def _granted(request: HttpRequest, public_id: uuid.UUID, message: str) -> HttpResponse:
    _claimable_forget(request, public_id)
    messages.success(request, message)
    return HttpResponseRedirect(
        reverse("records:patient-detail", kwargs={"public_id": public_id}), status=303
    )


@login_required
@require_POST
def relationship_declare(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    _, claim_hours, _ = _claimable(request, public_id)
    if not claim_hours:
        raise Http404
    form = RelationshipDeclareForm(request.POST, max_hours=claim_hours)
    if not form.is_valid():
        return _access_page(request, public_id, claim=form)
    try:
        grant = relationship_declare_for_user(
            user=request.user,
            public_id=public_id,
            reason_code=form.cleaned_data["reason_code"],
            reason_text=form.cleaned_data["reason_text"],
            hours=form.cleaned_data["hours"],
            request=request,
        )
    except PatientNotFound:
        raise Http404 from None
    return _granted(
        request, public_id, f"Relationship {grant.reference} recorded. It is self-claimed and audited."
    )


@login_required
@require_POST
def break_glass(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    _, _, glass_hours = _claimable(request, public_id)
    if not glass_hours:
        raise Http404
    form = BreakGlassForm(request.POST, user=request.user, request=request)
    if not form.is_valid():
        return _access_page(request, public_id, glass=form)
    try:
        grant = break_glass_for_user(
            user=request.user,
            public_id=public_id,
            reason_code=form.cleaned_data["reason_code"],
            reason_text=form.cleaned_data["reason_text"],
            request=request,
        )
    except PatientNotFound:
        raise Http404 from None
    return _granted(
        request, public_id, f"Break-glass access {grant.reference} started. Privacy officers are told."
    )


@login_required
@require_POST
def grant_end(request: HttpRequest, reference: str) -> HttpResponse:
    try:
        grant_end_for_user(user=request.user, reference=reference, request=request)
    except PatientNotFound:
        raise Http404 from None
    messages.success(request, f"Access {reference} ended.")
    return HttpResponseRedirect(reverse("records:home"), status=303)


@login_required
@require_http_methods(["GET", "POST"])
def role_select(request: HttpRequest) -> HttpResponse:
    profiles = staff_profiles_for_user(request.user)
    if not profiles:
        raise Http404
    form = RoleSelectForm(request.POST or None, profiles=profiles)
    if request.method == "POST" and form.is_valid():
        if role_select_for_user(request=request, profile_id=form.cleaned_data["profile"]) is None:
            raise Http404
        # An offer of access was made under the old role; the new one must search again.
        request.session.pop(CLAIMABLE_SESSION_KEY, None)
        wanted = request.POST.get("next", "")
        safe = url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()})
        return HttpResponseRedirect(wanted if safe and wanted else reverse("records:home"), status=303)
    status = 400 if form.errors else 200
    context = {"form": form, "next": request.GET.get("next") or request.POST.get("next", "")}
    return render(request, "records/role_select.html", context, status=status)


@login_required
@require_http_methods(["GET"])
def alert_list(request: HttpRequest) -> HttpResponse:
    try:
        alerts = alert_queue_for_user(request.user)
    except PatientNotFound:
        raise Http404 from None
    return render(request, "records/alert_list.html", {"alerts": alerts})


@login_required
@require_http_methods(["GET", "POST"])
def alert_detail(request: HttpRequest, alert_id: int) -> HttpResponse:
    form = AlertReviewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            alert_review_for_user(
                user=request.user,
                alert_id=alert_id,
                outcome=form.cleaned_data["outcome"],
                note=form.cleaned_data["note"],
            )
        except PatientNotFound:
            raise Http404 from None
        except AlertAlreadyReviewed:
            messages.error(request, "This alert was reviewed already; its outcome stays as recorded.")
        else:
            messages.success(request, "Outcome recorded.")
        return HttpResponseRedirect(
            reverse("records:alert-detail", kwargs={"alert_id": alert_id}), status=303
        )
    try:
        review = alert_open_for_user(user=request.user, alert_id=alert_id, request=request)
    except PatientNotFound:
        raise Http404 from None
    return render(request, "records/alert_detail.html", {"review": review, "form": form})
