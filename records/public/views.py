"""The public pages, for patients and no login: the object-to-share form, its check-your-answers step, the
confirmation with the request's reference, and the page that says where a request stands.

What always holds:
- no page looks up a patient, so none can say whether one exists: the form stores what was typed
  (`consent.objections.objection_receive`) for the IG team to match, and the status page finds a request only by its
  reference and date of birth together;
- every POST is rate-limited per client address, per minute and per day (settings `PUBLIC_FORM_RATE_*` and
  `PUBLIC_STATUS_RATE_*`), and past either limit answers 429 having stored nothing;
- a submission is stored only from the check-your-answers page, then the browser is redirected (POST-redirect-GET);
  the reference is kept in the visitor's own session, never in a URL, so no one else can read it.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import csrf
from django.views.decorators.http import require_http_methods

# django-ratelimit ships no type information.
from django_ratelimit.decorators import ratelimit

from consent.models import Objection
from consent.objections import objection_receive
from records.public.forms import ObjectionForm, StatusForm
from records.public.selectors import objection_due, objection_standing

DRAFT = "public_objection_draft"
SENT = "public_objection_sent"
RETRY_AFTER_SECONDS = 60


def _rate(setting: str, period: str) -> Callable[[str, HttpRequest], str]:
    # Read at each request, so a deployment's (or a test's) setting takes effect without re-importing the views.
    def rate(group: str, request: HttpRequest) -> str:
        return f"{getattr(settings, setting)}/{period}"

    return rate


def _limited(
    group: str, minute: str, day: str
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Count this view's POSTs per client address against two limits; the view answers `request.limited`."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        per_day = ratelimit(group=group, key="ip", rate=_rate(day, "d"), method="POST", block=False)
        per_minute = ratelimit(group=group, key="ip", rate=_rate(minute, "m"), method="POST", block=False)
        return per_minute(per_day(view))  # type: ignore[no-any-return]

    return decorate


def _too_many(request: HttpRequest) -> HttpResponse:
    response = render(request, "public/too_many_requests.html", status=429)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _draft_keep(request: HttpRequest, form: ObjectionForm) -> None:
    """Keep the valid answers, as posted, for the check-your-answers page to check again and send."""
    request.session[DRAFT] = {
        name: request.POST.getlist(name) for name in form.fields if name != "website" and name in request.POST
    }


def _draft(request: HttpRequest) -> QueryDict | None:
    kept = request.session.get(DRAFT)
    if not isinstance(kept, dict):
        return None
    data = QueryDict(mutable=True)
    for name, values in kept.items():
        data.setlist(name, values)
    return data


def _form_page(request: HttpRequest, form: ObjectionForm) -> HttpResponse:
    return render(request, "public/objection_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
@_limited("public-objection", "PUBLIC_FORM_RATE_PER_MINUTE", "PUBLIC_FORM_RATE_PER_DAY")
def objection_form(request: HttpRequest) -> HttpResponse:
    """The form. A valid answer is kept in the session for the check-your-answers page; nothing is stored yet."""
    if request.method == "POST":
        if getattr(request, "limited", False):
            return _too_many(request)
        form = ObjectionForm(request.POST)
        if not form.is_valid():
            return _form_page(request, form)
        _draft_keep(request, form)
        return redirect("public:objection-check")
    draft = _draft(request)
    return _form_page(request, ObjectionForm(draft) if draft is not None else ObjectionForm())


@require_http_methods(["GET", "POST"])
@_limited("public-objection", "PUBLIC_FORM_RATE_PER_MINUTE", "PUBLIC_FORM_RATE_PER_DAY")
def objection_check(request: HttpRequest) -> HttpResponse:
    """Check your answers, what objecting means, and the button that sends the request."""
    draft = _draft(request)
    if draft is None:
        return redirect("public:objection-form")
    if request.method == "POST" and getattr(request, "limited", False):
        return _too_many(request)
    form = ObjectionForm(draft)
    if not form.is_valid():
        # The answers were valid when kept; something they name (a partner) has changed since.
        return _form_page(request, form)
    if request.method == "POST":
        objection, _ = objection_receive(channel=Objection.Channel.WEB_FORM, **form.objection_fields())
        del request.session[DRAFT]
        request.session[SENT] = objection.reference
        return redirect("public:objection-sent")
    return render(request, "public/objection_check.html", {"form": form, "rows": form.summary()})


@require_http_methods(["GET"])
def objection_sent(request: HttpRequest) -> HttpResponse:
    """The reference of the request this visitor sent, and what happens next; the same for every patient."""
    reference = request.session.get(SENT)
    due = objection_due(reference) if isinstance(reference, str) else None
    if due is None:
        return redirect("public:objection-form")
    return render(request, "public/objection_sent.html", {"reference": reference, "due_at": due})


NOT_FOUND = (
    "We could not find a request with that reference and date of birth. Check both are the same as on your "
    "confirmation and try again."
)


@require_http_methods(["GET", "POST"])
@_limited("public-objection-status", "PUBLIC_STATUS_RATE_PER_MINUTE", "PUBLIC_STATUS_RATE_PER_DAY")
def objection_status(request: HttpRequest) -> HttpResponse:
    """Where a request stands, for its reference and date of birth; one answer when either is wrong."""
    if request.method == "POST":
        if getattr(request, "limited", False):
            return _too_many(request)
        form = StatusForm(request.POST)
        if form.is_valid():
            standing = objection_standing(form.cleaned_data["reference"], form.cleaned_data["birth_date"])
            if standing is not None:
                return render(request, "public/objection_standing.html", {"standing": standing})
            form = StatusForm.not_found(NOT_FOUND)
    else:
        form = StatusForm()
    return render(request, "public/objection_status.html", {"form": form})


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form posted without its CSRF token: on the public pages, a page in their own design; elsewhere Django's."""
    if request.path.startswith(reverse("public:objection-form")):
        return render(request, "public/csrf_failure.html", status=403)
    response: HttpResponse = csrf.csrf_failure(request, reason)
    return response
