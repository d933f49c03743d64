"""A read-only view of the access trail for the back office. Reading it is itself audited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest, HttpResponse

from audit.models import AccessEvent
from audit.services import back_office_event_record

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices


def _read_audit(request: HttpRequest, what: str, patient_id: int | None = None) -> None:
    back_office_event_record(
        request,
        action=AccessEvent.Action.READ_AUDIT,
        purpose=AccessEvent.Purpose.AUDIT,
        reason=what,
        patient_id=patient_id,
    )


class OrganisationOdsFilter(admin.AllValuesFieldListFilter):
    """The organisations of the trail's events; an event made by no organisation (a signed-out visitor, the back
    office) is listed by name, not as a link with no text."""

    def choices(self, changelist: ChangeList) -> Iterator[_ListFilterChoices]:
        for choice in super().choices(changelist):
            choice["display"] = choice["display"] or "No organisation"
            yield choice


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
    list_filter = ("action", "outcome", "purpose", ("organisation_ods", OrganisationOdsFilter))
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
