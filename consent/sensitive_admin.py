"""Back office: the sensitive code lists and the SNOMED CT hierarchy they expand through.

The back office adds codes to the four national sets; the curated default's rows cannot be deleted nor re-coded
(their display and whether descendants count may change). Every saved or deleted code queues, once the change
commits, the re-flagging of stored entries (`consent.tasks.sensitive_flags_refresh_task`). The hierarchy is read
only here: `manage.py snomed_hierarchy_load` writes it.
"""

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.forms import ModelForm
from django.http import HttpRequest

from consent.models import ConceptIsA, SensitiveCode
from consent.tasks import sensitive_flags_refresh_task


def _refresh_on_commit() -> None:
    transaction.on_commit(sensitive_flags_refresh_task.delay)


@admin.register(SensitiveCode)
class SensitiveCodeAdmin(admin.ModelAdmin[SensitiveCode]):
    list_display = (
        "code",
        "display",
        "sensitive_set",
        "system",
        "include_descendants",
        "is_default",
        "added_at",
    )
    list_filter = ("sensitive_set", "system", "is_default")
    search_fields = ("code", "display")
    ordering = ("sensitive_set", "system", "code")
    fields = ("sensitive_set", "system", "code", "display", "include_descendants", "is_default", "added_at")

    def get_readonly_fields(self, request: HttpRequest, obj: SensitiveCode | None = None) -> tuple[str, ...]:
        if obj is not None and obj.is_default:
            return ("sensitive_set", "system", "code", "is_default", "added_at")
        return ("is_default", "added_at")

    def has_delete_permission(self, request: HttpRequest, obj: SensitiveCode | None = None) -> bool:
        if obj is not None and obj.is_default:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # The bulk delete action asks no row whether it may go; a default row never may.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(
        self, request: HttpRequest, obj: SensitiveCode, form: ModelForm[SensitiveCode], change: bool
    ) -> None:
        # Codes are compared exactly; a space pasted in with one would keep it from ever matching.
        obj.code = obj.code.strip()
        super().save_model(request, obj, form, change)
        _refresh_on_commit()

    def delete_model(self, request: HttpRequest, obj: SensitiveCode) -> None:
        super().delete_model(request, obj)
        _refresh_on_commit()


@admin.register(ConceptIsA)
class ConceptIsAAdmin(admin.ModelAdmin[ConceptIsA]):
    list_display = ("child", "parent", "source")
    list_filter = ("source",)
    search_fields = ("=child", "=parent")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ConceptIsA | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ConceptIsA | None = None) -> bool:
        return False
