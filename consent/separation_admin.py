"""The back office's side of the separation of duties (`consent.separation`): pages whose changes change someone's
access show those parts read-only to whoever may not change them, refuse and record a POST that tries anyway, and
alert the privacy officer of every change they allow.

What always holds for an admin built on `AccessAdministeredAdmin`:
- an actor `consent.separation.access_change_refusal` refuses sees the access fields read-only and the access
  inlines view-only, so the page they are shown sends none of them back;
- a POST from such an actor that carries any of them anyway was made by hand: it is refused before Django's own
  transaction begins, nothing is saved (not even the fields they may change), and the refusal is recorded and
  alerted (committed); the page says so;
- should a change reach saving all the same, it is refused again there (`PermissionDenied`, rolled back);
- every change that is saved raises one ACCESS_ADMINISTRATION alert per user affected, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.forms.formsets import MAX_NUM_FORM_COUNT, MIN_NUM_FORM_COUNT
from django.forms.models import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict

from consent.separation import (
    NOT_YOUR_OWN,
    access_change_alert,
    access_change_refusal,
    access_change_refuse,
)

M = TypeVar("M", bound=Model)
P = TypeVar("P", bound=Model)

# The keys a view-only inline sends back unchanged: its management form and each row's own id and parent.
_MANAGEMENT_KEYS = {"TOTAL_FORMS", "INITIAL_FORMS", MIN_NUM_FORM_COUNT, MAX_NUM_FORM_COUNT}
REFUSED_MESSAGE = (
    "Refused: {why}. Nothing was changed; the attempt is recorded in the change history and the privacy officer "
    "is alerted."
)


def posted_inline_changes(post: QueryDict, prefix: str, parent_field: str) -> bool:
    """Whether `post` carries a value of any field of the inline formset `prefix` other than what a view-only
    inline sends back (its management form, each row's id and its `parent_field`)."""
    for key in post:
        if not key.startswith(f"{prefix}-"):
            continue
        rest = key[len(prefix) + 1 :]
        if rest in _MANAGEMENT_KEYS:
            continue
        field = rest.partition("-")[2]
        if field not in ("id", parent_field):
            return True
    return False


def formset_changes(formset: BaseInlineFormSet[Any, Any, Any], label: str) -> list[tuple[Model, str]]:
    """What a saved inline formset changed, as (row, description) pairs, from its own record of what it saved;
    each row called a `label`."""
    changes: list[tuple[Model, str]] = [(row, f"{label} added: {row}") for row in formset.new_objects]
    changes += [
        (row, f"{label} changed: {row} ({', '.join(fields)})") for row, fields in formset.changed_objects
    ]
    changes += [(row, f"{label} removed: {row}") for row in formset.deleted_objects]
    return changes


class AccessInline(admin.options.InlineModelAdmin[M, P], Generic[M, P]):
    """An inline whose rows are someone's access: editable only by whom `access_change_refusal` allows for the
    parent (the users `AccessAdministeredAdmin.affected_user_ids` names). `access_row` names one row in alerts and
    the change history ("role profile")."""

    access_row = "row"

    def _allowed(self, request: HttpRequest, obj: P | None) -> bool:
        parent_admin = self.admin_site.get_model_admin(self.parent_model)
        if not isinstance(parent_admin, AccessAdministeredAdmin):
            raise TypeError(f"{type(self).__name__} belongs on a page built on AccessAdministeredAdmin.")
        return not parent_admin.access_refusal(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: P | None = None) -> bool:
        return super().has_add_permission(request, obj) and self._allowed(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: P | None = None) -> bool:
        return super().has_change_permission(request, obj) and self._allowed(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: P | None = None) -> bool:
        return super().has_delete_permission(request, obj) and self._allowed(request, obj)


class AccessAdministeredAdmin(admin.ModelAdmin[M], Generic[M]):
    """A page whose changes change someone's access. Subclasses name the form fields that do (`access_fields`,
    each with what changing it does), the users a change affects, and how a change reads in an alert."""

    access_fields: dict[str, str] = {}

    def affected_user_ids(self, obj: M | None) -> list[int]:
        """The users whose access a change of `obj` changes; none for one not yet created."""
        raise NotImplementedError

    def access_subject_label(self, obj: M | None, request: HttpRequest) -> str:
        return str(obj) if obj is not None else f"a new {self.opts.verbose_name}"

    def access_refusal(self, request: HttpRequest, obj: M | None) -> str:
        return access_change_refusal(request.user, self.affected_user_ids(obj))

    def posted_self_grant(self, request: HttpRequest, obj: M | None) -> str:
        """What the POST of an allowed actor tries to give to themselves, or "": for pages listing several users."""
        return ""

    def _access_inlines(self, request: HttpRequest, obj: M | None) -> list[AccessInline[Any, M]]:
        inlines = self.get_inline_instances(request, obj)
        return [inline for inline in inlines if isinstance(inline, AccessInline)]

    def posted_access_changes(self, request: HttpRequest, obj: M | None) -> list[str]:
        """What the POST tries to change of someone's access, as the page a refused actor is shown never would."""
        tried = [what for field, what in self.access_fields.items() if field in request.POST]
        for inline in self._access_inlines(request, obj):
            formset = inline.get_formset(request, obj)
            # The inline formset factory sets `fk` on the class; the stubs do not know it.
            parent_field = str(formset.fk.name)  # type: ignore[attr-defined]
            if posted_inline_changes(request.POST, formset.get_default_prefix(), parent_field):
                tried.append(f"change {inline.access_row}s")
        return tried

    def get_readonly_fields(self, request: HttpRequest, obj: M | None = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        if self.access_refusal(request, obj):
            return fields + tuple(field for field in self.access_fields if field not in fields)
        return fields

    def _refuse(self, request: HttpRequest, obj: M | None, attempted: str, why: str) -> HttpResponse:
        access_change_refuse(
            actor=request.user,
            subject_type=self.model,
            subject=obj,
            subject_label=self.access_subject_label(obj, request),
            attempted=attempted,
            why=why,
        )
        messages.error(request, REFUSED_MESSAGE.format(why=why))
        return HttpResponseRedirect(request.path)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Before Django's own transaction begins, so the refusal's record is committed whatever happens next.
        if request.method == "POST":
            obj = self.get_object(request, unquote(object_id)) if object_id else None
            if object_id is None or obj is not None:
                why = self.access_refusal(request, obj)
                tried = self.posted_access_changes(request, obj) if why else []
                if why and object_id is None:
                    tried = tried or [f"add a {self.opts.verbose_name}"]
                if tried:
                    return self._refuse(request, obj, "; ".join(tried), why)
                self_grant = "" if why else self.posted_self_grant(request, obj)
                if self_grant:
                    return self._refuse(request, obj, self_grant, NOT_YOUR_OWN)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def access_row_changes(self, formsets: Iterable[Any]) -> list[tuple[Model, str]]:
        """Every row the saved inline formsets added, changed or removed, with how it reads in an alert."""
        labels = {
            inline.model: inline.access_row for inline in self.inlines if issubclass(inline, AccessInline)
        }
        return [
            change
            for formset in formsets
            if isinstance(formset, BaseInlineFormSet) and formset.model in labels
            for change in formset_changes(formset, labels[formset.model])
        ]

    def access_changes(
        self, form: ModelForm[M], formsets: Iterable[BaseInlineFormSet[Any, Any, Any]], change: bool
    ) -> dict[Model, list[str]]:
        """What a saved change did to whose access: affected user (or group) → descriptions."""
        raise NotImplementedError

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        why = self.access_refusal(request, form.instance if change else None)
        touched = set(form.changed_data) & set(self.access_fields) or any(
            formset.has_changed() for formset in formsets if isinstance(formset, BaseInlineFormSet)
        )
        if why and touched:
            # Not reached through the pages (the fields are read-only to this actor); kept so that no later
            # change to the page can let such a change through.
            raise PermissionDenied(why)
        super().save_related(request, form, formsets, change)
        for subject, changes in self.access_changes(form, formsets, change).items():
            access_change_alert(actor=request.user, subject=subject, changes=changes)
