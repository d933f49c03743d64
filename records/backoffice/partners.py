"""Back office for partners and ingest runs (feeds are in `feeds`).

A run's error text can quote what the partner sent, so a run's page goes through the door (`FeedSupportAdmin`) and
shows the error masked until revealed.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from records.backoffice.support import FeedSupportAdmin
from records.models import IngestRun, Organisation


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
