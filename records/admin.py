"""Back office for partners, feeds, ingest runs and quarantine.

Patients and record entries are deliberately not in the admin: being staff or superuser opens no clinical data.
The one place partner payloads are visible is a quarantined record's detail page, and opening it is audited.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse

from audit.models import AccessEvent
from audit.services import back_office_event_record
from records.models import Feed, IngestRun, Organisation, QuarantinedRecord


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
    list_display = ("code", "organisation", "name", "format", "state", "last_success_at")
    list_filter = ("state", "format", "organisation__kind")
    search_fields = ("code", "name", "organisation__name", "organisation__ods_code")
    autocomplete_fields = ("organisation",)
    readonly_fields = ("last_success_at",)


@admin.register(IngestRun)
class IngestRunAdmin(admin.ModelAdmin[IngestRun]):
    list_display = (
        "pk",
        "feed",
        "status",
        "started_at",
        "duration",
        "resources_read",
        "created",
        "updated",
        "unchanged",
        "quarantined",
    )
    list_filter = ("status", "feed")
    date_hierarchy = "started_at"
    list_select_related = ("feed",)

    @admin.display(description="Duration (s)")
    def duration(self, run: IngestRun) -> str:
        seconds = run.duration_seconds
        return "—" if seconds is None else f"{seconds:.1f}"

    def get_readonly_fields(self, request: HttpRequest, obj: IngestRun | None = None) -> list[str]:
        return [field.name for field in IngestRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: IngestRun | None = None) -> bool:
        return False


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(admin.ModelAdmin[QuarantinedRecord]):
    list_display = ("created_at", "feed", "reason", "resource_type", "source_id", "location", "status")
    list_filter = ("reason", "status", "feed")
    search_fields = ("=source_id", "detail", "location")
    list_select_related = ("feed",)
    # The payload is on the detail page only, where opening it is audited.
    fields = (
        "feed",
        "ingest_run",
        "reason",
        "detail",
        "resource_type",
        "source_id",
        "location",
        "status",
        "created_at",
        "raw_payload",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: QuarantinedRecord | None = None) -> list[str]:
        return list(self.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: QuarantinedRecord | None = None) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        back_office_event_record(
            request,
            action=AccessEvent.Action.VIEW_DOCUMENT,
            purpose=AccessEvent.Purpose.FEED_SUPPORT,
            reason=f"quarantined record {object_id}",
        )
        return super().change_view(request, object_id, form_url, extra_context)
