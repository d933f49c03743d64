"""The privacy officer's audit console: its home with the charts, the search of the access trail (paged, and
downloaded as CSV), and a user's activity timeline.

Every view goes through the door in `records.access_console`, which decides by `consent.policy.may_read_audit` and
audits every read; none builds a query. Anyone else gets 404, as for a patient not held. The NHS number travels
only in a POST body: a search is kept in the session and its pages and download are named by a random token.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from records.access import PatientNotFound
from records.access_audit import may_read_audit_for_user
from records.access_console import (
    EventSearch,
    audit_console_for_user,
    console_open_for_user,
    event_search_begin_for_user,
    event_search_export_for_user,
    event_search_for_user,
    user_timeline_for_user,
)
from records.portal.console_forms import (
    EventSearchForm,
    TimelineForm,
    blank_search_form,
    page_number,
    search_form_for,
    search_keep,
    search_recall,
)
from records.portal.console_output import accesses_chart, alerts_chart, event_rows_csv

NO_LONGER_KEPT = "That search is no longer kept. Search again."


@login_required
@require_http_methods(["GET"])
def console_home(request: HttpRequest) -> HttpResponse:
    try:
        summary = audit_console_for_user(user=request.user, request=request)
    except PatientNotFound:
        raise Http404 from None
    context = {
        "form": blank_search_form(),
        "summary": summary,
        "accesses_chart": accesses_chart(summary.accesses_per_day),
        "alerts_chart": alerts_chart(summary.alerts_per_week),
    }
    return render(request, "records/console/home.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def event_search(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _search_sent(request)
    token = request.GET.get("search", "")
    search = search_recall(request.session, token) if token else None
    if search is None:
        try:
            console_open_for_user(user=request.user, request=request, page="event search form")
        except PatientNotFound:
            raise Http404 from None
        if token:
            messages.warning(request, NO_LONGER_KEPT)
        return render(request, "records/console/events.html", {"form": blank_search_form()})
    return _search_results(request, token, search)


def _search_sent(request: HttpRequest) -> HttpResponse:
    form = EventSearchForm(request.POST)
    search = form.search() if form.is_valid() else None
    try:
        event_search_begin_for_user(user=request.user, request=request, search=search)
    except PatientNotFound:
        raise Http404 from None
    if search is None:
        return render(request, "records/console/events.html", {"form": form})
    token = search_keep(request.session, search)
    return HttpResponseRedirect(f"{reverse('records:audit-events')}?search={token}", status=303)


def _search_results(request: HttpRequest, token: str, search: EventSearch) -> HttpResponse:
    form = search_form_for(search)
    try:
        results = event_search_for_user(
            user=request.user,
            request=request,
            search=search,
            page_number=page_number(request.GET.get("page")),
        )
    except PatientNotFound:
        # Asked after the door, which audits a refused search itself: only a privacy officer learns the number
        # is held by nobody.
        try:
            may_read_audit_for_user(request.user)
        except PatientNotFound:
            raise Http404 from None
        form.reject_as_not_held()
        return render(request, "records/console/events.html", {"form": form})
    return render(request, "records/console/events.html", {"form": form, "results": results, "token": token})


@login_required
@require_http_methods(["GET"])
def event_search_export(request: HttpRequest) -> HttpResponse:
    search = search_recall(request.session, request.GET.get("search", ""))
    try:
        if search is None:
            console_open_for_user(user=request.user, request=request, page="event search download")
        else:
            rows = event_search_export_for_user(user=request.user, request=request, search=search)
    except PatientNotFound:
        raise Http404 from None
    if search is None:
        messages.warning(request, NO_LONGER_KEPT)
        return HttpResponseRedirect(reverse("records:audit-events"), status=303)
    response = HttpResponse(event_rows_csv(rows), content_type="text/csv; charset=utf-8")
    # Named by the day only: a file name ends up in download folders and logs.
    filename = f"audit-events-{timezone.localdate():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_http_methods(["GET"])
def user_timeline(request: HttpRequest, user_id: int) -> HttpResponse:
    form = TimelineForm(request.GET)
    if not form.is_valid():
        try:
            console_open_for_user(user=request.user, request=request, page=f"timeline of user {user_id}")
        except PatientNotFound:
            raise Http404 from None
        return render(request, "records/console/timeline.html", {"form": form, "user_id": user_id})
    try:
        timeline = user_timeline_for_user(
            user=request.user,
            request=request,
            subject_user_id=user_id,
            date_from=form.cleaned_data["date_from"],
            date_to=form.cleaned_data["date_to"],
            page_number=page_number(request.GET.get("page")),
        )
    except PatientNotFound:
        raise Http404 from None
    # The range read, filled in, so the officer sees the default days and can change them.
    shown = TimelineForm(initial={"date_from": timeline.date_from, "date_to": timeline.date_to})
    return render(
        request, "records/console/timeline.html", {"form": shown, "user_id": user_id, "timeline": timeline}
    )
