"""Back office for feeds: the list, the feed's page with Run now and Pause, its CSV mapping page, and the monitor.

Always holds: a live feed cannot be deleted (its runs and entries name it; pause it instead), and the list has no
bulk delete at all; the sections a feed carries are chosen from the PRSB headings and kept in the standard's order;
a CSV mapping is edited only through the checked form (`csv_mapping`), never as raw JSON; Run now and Pause are
POSTs, each recorded in the change history (`feed_controls`).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from records.backoffice.csv_mapping import (
    SampleForm,
    csv_preview,
    mapping_forms,
    unknown_keys,
)
from records.backoffice.feed_controls import feed_pause, feed_run_now, feed_run_now_refusal
from records.backoffice.monitor import CHART_DAYS, ERROR_RATE_WINDOW, feed_health_list
from records.backoffice.support import signed_in_user
from records.ingest.formats.csv_mapping import CsvMappingError, csv_mapping_check
from records.models import Feed, QuarantinedRecord
from records.sections import SECTION_ORDER

SHORT_FORMATS: dict[str, str] = {
    Feed.Format.FHIR: "FHIR",
    Feed.Format.CSV: "CSV",
    Feed.Format.HL7V2: "HL7 v2",
}
SHORT_SOURCES: dict[str, str] = {
    Feed.Source.FILE: "files",
    Feed.Source.INBOX: "inbox",
    Feed.Source.HTTP_PULL: "HTTP pull",
    Feed.Source.PUSH: "push",
}


class FeedForm(forms.ModelForm):  # type: ignore[type-arg]
    sections = forms.MultipleChoiceField(
        label="Sections it carries",
        choices=[(section.value, section.label) for section in SECTION_ORDER],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The PRSB headings of the record this dataset sends, in the standard's order.",
    )

    # A partner's endpoint typed without a scheme is taken as HTTPS, never plain HTTP.
    endpoint_url = forms.URLField(label="Endpoint URL", required=False, assume_scheme="https", max_length=200)

    class Meta:
        model = Feed
        # Not csv_mapping: it has its own checked form (`csv_mapping_view`).
        fields = (
            "organisation",
            "code",
            "name",
            "sections",
            "format",
            "source",
            "schedule_minutes",
            "endpoint_url",
            "endpoint_auth_env",
            "state",
            "can_create_patients",
        )

    def clean_sections(self) -> list[str]:
        chosen = set(self.cleaned_data.get("sections") or [])
        return [section.value for section in SECTION_ORDER if section.value in chosen]


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin[Feed]):
    form = FeedForm
    list_display = (
        "feed",
        "organisation",
        "format_and_source",
        "state",
        "last_success",
        "quarantine_pending",
    )
    list_display_links = ("feed",)
    list_filter = ("state", "format", "source", "organisation__kind")
    search_fields = ("code", "name", "organisation__name", "organisation__ods_code")
    autocomplete_fields = ("organisation",)
    # The watermark moves only when a pull's run commits (docs/feeds.md), never by hand.
    readonly_fields = ("last_success_at", "watermark", "csv_mapping_summary")
    list_select_related = ("organisation",)
    actions = ("run_now_selected", "pause_selected")
    change_list_template = "admin/records/feed/change_list.html"
    change_form_template = "admin/records/feed/change_form.html"
    fieldsets = (
        (None, {"fields": ("organisation", "code", "name", "sections")}),
        (
            "How the data arrives",
            {
                "fields": (
                    "format",
                    "source",
                    "schedule_minutes",
                    "endpoint_url",
                    "endpoint_auth_env",
                    "csv_mapping_summary",
                )
            },
        ),
        ("State", {"fields": ("state", "can_create_patients", "last_success_at", "watermark")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Feed]:
        pending = Count("quarantined", filter=Q(quarantined__status=QuarantinedRecord.Status.PENDING))
        return super().get_queryset(request).annotate(quarantine_pending_count=pending)

    @admin.display(description="Feed", ordering="code")
    def feed(self, feed: Feed) -> str:
        return format_html('{}<span class="feed-name">{}</span>', feed.code, feed.name)

    @admin.display(description="Format", ordering="format")
    def format_and_source(self, feed: Feed) -> str:
        return f"{SHORT_FORMATS.get(feed.format, feed.format)}, {SHORT_SOURCES.get(feed.source, feed.source)}"

    @admin.display(description="Last success", ordering="last_success_at")
    def last_success(self, feed: Feed) -> str:
        when = (
            dateformat.format(timezone.localtime(feed.last_success_at), "j M Y, H:i")
            if feed.last_success_at
            else "never"
        )
        if feed.is_stale(timezone.now()):
            return format_html('{} <span class="stale-badge">Stale</span>', when)
        return when

    @admin.display(description="Quarantine", ordering="quarantine_pending_count")
    def quarantine_pending(self, feed: Feed) -> str:
        count: int = getattr(feed, "quarantine_pending_count", 0)
        if not count:
            return "0"
        query = urlencode(
            {"feed__id__exact": str(feed.pk), "status__exact": str(QuarantinedRecord.Status.PENDING)}
        )
        url = f"{reverse('admin:records_quarantinedrecord_changelist')}?{query}"
        return format_html('<a href="{}" aria-label="{} pending for {}">{}</a>', url, count, feed.code, count)

    @admin.display(description="CSV mapping")
    def csv_mapping_summary(self, feed: Feed) -> str:
        if feed.format != Feed.Format.CSV:
            return "Only a CSV feed has one."
        if feed.pk is None:
            return "Save the feed first, then declare its mapping."
        url = reverse("admin:records_feed_csv_mapping", args=[feed.pk])
        try:
            mapping = csv_mapping_check(feed.csv_mapping)
        except CsvMappingError as error:
            return format_html(
                '<span class="mapping-invalid">Not valid, so its runs fail:</span><ul>{}</ul><a href="{}">Edit the '
                "CSV mapping</a>",
                format_html_join("", "<li>{}</li>", ((problem,) for problem in error.problems)),
                url,
            )
        columns = format_html_join(", ", "{} ← {}", mapping.columns.items())
        return format_html(
            'Columns: {}. <a href="{}">Edit the CSV mapping, or preview a sample</a>', columns, url
        )

    def has_delete_permission(self, request: HttpRequest, obj: Feed | None = None) -> bool:
        # A live feed's runs and entries name it: pause it instead.
        if obj is not None and obj.state == Feed.State.LIVE:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # A bulk delete could take live feeds with it; a feed is deleted from its own page, if not live.
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Run the selected feeds now", permissions=["change"])
    def run_now_selected(self, request: HttpRequest, queryset: QuerySet[Feed]) -> None:
        queued = []
        for feed in queryset.order_by("code"):
            refusal = feed_run_now(feed, user=signed_in_user(request))
            if refusal:
                self.message_user(request, refusal, messages.WARNING)
                continue
            self.log_change(request, feed, "Run now: a run was queued.")
            queued.append(feed.code)
        if queued:
            self.message_user(request, _queued_message(queued), messages.SUCCESS)

    @admin.action(description="Pause the selected feeds", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Feed]) -> None:
        paused = []
        for feed in queryset.order_by("code"):
            if feed_pause(feed):
                self.log_change(request, feed, "Paused.")
                paused.append(feed.code)
        if paused:
            self.message_user(
                request, f"Paused {', '.join(paused)}: beat no longer runs them.", messages.SUCCESS
            )
        else:
            self.message_user(request, "The selected feeds were paused already.", messages.INFO)

    def get_urls(self) -> list[URLPattern]:
        # Before the model's own URLs, whose "<object id>/" pattern would otherwise take "monitor/".
        wrap = self.admin_site.admin_view
        own = [
            path("monitor/", wrap(self.monitor_view), name="records_feed_monitor"),
            path("<path:object_id>/run-now/", wrap(self.run_now_view), name="records_feed_run_now"),
            path("<path:object_id>/pause/", wrap(self.pause_view), name="records_feed_pause"),
            path(
                "<path:object_id>/csv-mapping/", wrap(self.csv_mapping_view), name="records_feed_csv_mapping"
            ),
        ]
        return [*own, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        feed = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if feed is not None:
            context["run_now_refusal"] = feed_run_now_refusal(feed)
            context["is_paused"] = feed.state == Feed.State.PAUSED
        return super().change_view(request, object_id, form_url, context)

    def _feed_to_change(self, request: HttpRequest, object_id: str) -> Feed:
        if not self.has_change_permission(request):
            raise PermissionDenied
        # get_object answers None for an id that is not one (a word where a number belongs), as for a missing feed.
        feed = self.get_object(request, unquote(object_id))
        if feed is None:
            raise Http404
        return feed

    def _back_to(self, feed: Feed) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:records_feed_change", args=[feed.pk]))

    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        feed = self._feed_to_change(request, object_id)
        refusal = feed_run_now(feed, user=signed_in_user(request))
        if refusal:
            self.message_user(request, refusal, messages.ERROR)
        else:
            self.log_change(request, feed, "Run now: a run was queued.")
            self.message_user(request, _queued_message([feed.code]), messages.SUCCESS)
        return self._back_to(feed)

    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        feed = self._feed_to_change(request, object_id)
        if feed_pause(feed):
            self.log_change(request, feed, "Paused.")
            self.message_user(
                request,
                f"Paused {feed.code}: beat no longer runs it. Set its state to live to start it again.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, f"{feed.code} was paused already.", messages.INFO)
        return self._back_to(feed)

    def csv_mapping_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        feed = self._feed_to_change(request, object_id)
        if feed.format != Feed.Format.CSV:
            self.message_user(
                request, f"{feed.code} is not a CSV feed, so it has no CSV mapping.", messages.WARNING
            )
            return self._back_to(feed)
        preview = None
        if request.method == "POST":
            forms_ = mapping_forms(feed.csv_mapping, request.POST)
            sample = SampleForm(request.POST, request.FILES)
            if "_save" in request.POST and forms_.is_valid():
                feed.csv_mapping = forms_.mapping
                feed.save(update_fields=["csv_mapping"])
                self.log_change(request, feed, "Changed the CSV mapping.")
                self.message_user(request, f"Saved the CSV mapping of {feed.code}.", messages.SUCCESS)
                return self._back_to(feed)
            if "_preview" in request.POST and sample.is_valid() and forms_.is_valid():
                upload = sample.cleaned_data.get("sample")
                if upload is None:
                    sample.add_error("sample", "Choose a sample extract to preview.")
                else:
                    preview = csv_preview(feed, forms_.mapping, upload.read(), upload.name or "sample.csv")
        else:
            forms_ = mapping_forms(feed.csv_mapping)
            sample = SampleForm()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": feed,
            "title": f"CSV mapping of {feed.code}",
            "forms": forms_,
            "sample": sample,
            "preview": preview,
            "unknown_keys": unknown_keys(feed.csv_mapping),
            "back_url": reverse("admin:records_feed_change", args=[feed.pk]),
        }
        return TemplateResponse(request, "admin/records/feed/csv_mapping.html", context)

    def monitor_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Feed monitor",
            "feeds": feed_health_list(now),
            "now": now,
            "window_days": ERROR_RATE_WINDOW.days,
            "chart_days": CHART_DAYS,
            "quarantine_url": reverse("admin:records_quarantinedrecord_changelist"),
        }
        return TemplateResponse(request, "admin/records/feed/monitor.html", context)


def _queued_message(codes: list[str]) -> str:
    return (
        f"Queued a run of {', '.join(codes)}. It starts within a minute; its ingest runs appear under Ingest runs and "
        "the feed monitor."
    )
