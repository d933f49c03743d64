"""Back office for partners, their feeds (with the feed monitor) and ingest runs.

A run's error text can quote what the partner sent, so a run's page goes through the door (`FeedSupportAdmin`) and
shows the error masked until revealed.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from records.backoffice.monitor import CHART_DAYS, ERROR_RATE_WINDOW, feed_health_list
from records.backoffice.support import FeedSupportAdmin
from records.models import Feed, IngestRun, Organisation


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin[Organisation]):
    list_display = ("name", "ods_code", "kind", "primary_care_network", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("name", "ods_code", "primary_care_network")
    exclude = ("group",)

    def save_model(self, request: HttpRequest, obj: Organisation, form: Any, change: bool) -> None:
        # Every partner has the group its staff and its legitimate relationships hang on.
        if obj.group_id is None:
            obj.group, _ = Group.objects.get_or_create(name=f"organisation:{obj.ods_code}")
        super().save_model(request, obj, form, change)


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin[Feed]):
    list_display = ("code", "organisation", "name", "format", "source", "state", "last_success_at", "stale")
    list_filter = ("state", "format", "source", "organisation__kind")
    search_fields = ("code", "name", "organisation__name", "organisation__ods_code")
    autocomplete_fields = ("organisation",)
    readonly_fields = ("last_success_at",)
    list_select_related = ("organisation",)
    change_list_template = "admin/records/feed/change_list.html"

    @admin.display(description="Stale", boolean=True)
    def stale(self, feed: Feed) -> bool:
        return feed.is_stale(timezone.now())

    def get_urls(self) -> list[URLPattern]:
        # Before the model's own URLs, whose "<object id>/" pattern would otherwise take "monitor/".
        monitor = path("monitor/", self.admin_site.admin_view(self.monitor_view), name="records_feed_monitor")
        return [monitor, *super().get_urls()]

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


@admin.register(IngestRun)
class IngestRunAdmin(FeedSupportAdmin[IngestRun]):
    list_display = (
        "pk",
        "feed",
        "trigger",
        "status",
        "started_at",
        "duration",
        "throughput",
        "resources_read",
        "created",
        "updated",
        "unchanged",
        "quarantined",
    )
    list_filter = ("status", "trigger", "feed")
    date_hierarchy = "started_at"
    list_select_related = ("feed",)
    fields = (
        "feed",
        "trigger",
        "source_name",
        "status",
        "started_at",
        "finished_at",
        "resources_read",
        "created",
        "updated",
        "unchanged",
        "quarantined",
        "patients_created",
        "patients_updated",
        "checksum",
        "error",
    )
    masked_fields = ("error",)

    def feed_partner(self, obj: IngestRun) -> Organisation | None:
        return obj.feed.organisation

    @admin.display(description="Duration (s)")
    def duration(self, run: IngestRun) -> str:
        seconds = run.duration_seconds
        return "—" if seconds is None else f"{seconds:.1f}"

    @admin.display(description="Resources/s")
    def throughput(self, run: IngestRun) -> str:
        rate = run.resources_per_second
        return "—" if rate is None else f"{rate:,.0f}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: IngestRun | None = None) -> bool:
        return False
