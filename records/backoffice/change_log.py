"""The back office's change log (django-auditlog's entries), limited to changes that name no patient.

Always holds: the log lists and opens only entries about the models in `STAFF_ONLY_MODELS`, which hold no patient
data; every other model is left out, deny by default, so a model added to auditlog later stays hidden until someone
decides it belongs here. The history of legitimate relationships (which organisation may see which patient) and of
quarantined records (NHS numbers, what the partner sent), and of self-claimed relationships and break-glass grants
(which user opened which patient) is therefore not shown in the admin at all. Reading the log, its list or one
entry, is itself a `read-audit` event (purpose audit), as reading the access trail is (audit/admin.py).
"""

from typing import Any

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from audit.models import AccessEvent
from audit.services import back_office_event_record
from consent.models import (
    CareTeam,
    CareTeamMembership,
    FeedSupportAssignment,
    Role,
    SensitiveCode,
    StaffProfile,
)
from records.models import Feed, Organisation, PartnerCredential

STAFF_ONLY_MODELS: tuple[type[Model], ...] = (
    Organisation,
    Feed,
    PartnerCredential,
    Role,
    StaffProfile,
    CareTeam,
    CareTeamMembership,
    FeedSupportAssignment,
    SensitiveCode,
)


class StaffChangeLogAdmin(LogEntryAdmin):  # type: ignore[misc]
    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        shown = ContentType.objects.get_for_models(*STAFF_ONLY_MODELS, for_concrete_models=False).values()
        entries: QuerySet[Any] = super().get_queryset(request)
        return entries.filter(content_type__in=[content_type.pk for content_type in shown])

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if self.has_view_or_change_permission(request):
            _read_audit(request, f"change log list {request.GET.urlencode()}")
        response: HttpResponse = super().changelist_view(request, extra_context)
        return response

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if self.has_view_or_change_permission(request):
            _read_audit(request, f"change log entry {object_id}")
        response: HttpResponse = super().change_view(request, object_id, form_url, extra_context)
        return response


def _read_audit(request: HttpRequest, what: str) -> None:
    # Staff without the view permission are refused by Django's own view, before anything is read.
    back_office_event_record(
        request, action=AccessEvent.Action.READ_AUDIT, purpose=AccessEvent.Purpose.AUDIT, reason=what
    )


admin.site.unregister(LogEntry)
admin.site.register(LogEntry, StaffChangeLogAdmin)
