"""A read-only view of the access trail for the back office. Reading it is itself audited."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from audit.models import AccessEvent
from audit.services import back_office_event_record


def _read_audit(request: HttpRequest, what: str, patient_id: int | None = None) -> None:
    back_office_event_record(
        request,
        action=AccessEvent.Action.READ_AUDIT,
        purpose=AccessEvent.Purpose.AUDIT,
        reason=what,
        patient_id=patient_id,
    )


@admin.register(AccessEvent)
class AccessEventAdmin(admin.ModelAdmin[AccessEvent]):
    list_display = (
        "occurred_at",
        "username",
        "job_role",
        "organisation_ods",
        "action",
        "outcome",
        "patient_id",
    )
    list_filter = ("action", "outcome", "purpose", "organisation_ods")
    search_fields = ("=username", "=patient_id", "=query", "=request_id")
    date_hierarchy = "occurred_at"
    ordering = ("-occurred_at", "-id")
    list_per_page = 50

    def get_readonly_fields(self, request: HttpRequest, obj: AccessEvent | None = None) -> list[str]:
        return [field.name for field in AccessEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AccessEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AccessEvent | None = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        _read_audit(request, f"access event list {request.GET.urlencode()}"[:500])
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        event = AccessEvent.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        _read_audit(request, f"access event {object_id}", event.patient_id if event else None)
        return super().change_view(request, object_id, form_url, extra_context)
