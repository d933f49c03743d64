"""Feed support in the back office: every admin page that shows what a partner sent goes through the door.

`FeedSupportAdmin` is the one way an admin class shows a partner's payloads or error texts, which can quote patient
data. Always holds, for every admin built on it:
- opening an object's page asks `records.access.feed_support_open` (action view-document, purpose feed-support),
  which writes an `AccessEvent` allowed or denied; a denied user is answered as if the object did not exist;
- the fields in `masked_fields` are masked on that page; the unmasked text is shown only on the reveal page, reached
  by a POST button, and each reveal asks the door again and writes its own `AccessEvent` (action reveal).
"""

from typing import Any, ClassVar, Generic, TypeVar

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from audit.models import AccessEvent
from records.access import feed_support_open
from records.models import Organisation

M = TypeVar("M", bound=Model)

REVEAL_BUTTON = "Reveal (this is audited)"
# The change form's context that leaves out every Save button (Django's submit_row then shows Close).
READ_ONLY_PAGE = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}


def signed_in_user(request: HttpRequest) -> AbstractBaseUser:
    """The request's user, for a service that records who acted; the admin site lets only signed-in staff this far,
    so an anonymous user here is a bug and is refused."""
    if not isinstance(request.user, AbstractBaseUser):
        raise PermissionDenied
    return request.user


class MaskedField:
    """A read-only field shown masked, with the button that reveals it; the admin lists it in `fields`."""

    def __init__(self, name: str, label: str, reveal_url_name: str) -> None:
        self.name = name
        self.__name__ = f"{name}_masked"
        self.short_description = label
        self.reveal_url_name = reveal_url_name

    def __call__(self, obj: Model) -> str:
        text = str(getattr(obj, self.name) or "")
        if not text:
            return "—"
        return format_html(
            '<span class="masked">Masked: {} characters sent by the partner.</span> '
            '<button type="submit" formmethod="post" formaction="{}" name="reveal" value="{}">{}</button>',
            len(text),
            reverse(self.reveal_url_name, args=[obj.pk]),
            self.name,
            REVEAL_BUTTON,
        )


class FeedSupportAdmin(admin.ModelAdmin[M], Generic[M]):
    """An admin whose objects came from one partner's feed and may quote patient data."""

    # The fields that quote what the partner sent: masked until revealed.
    masked_fields: ClassVar[tuple[str, ...]] = ()

    def feed_partner(self, obj: M) -> Organisation | None:
        """The partner whose feed sent this object."""
        raise NotImplementedError

    def nhs_number_of(self, obj: M) -> str:
        """The NHS number this object names, if any, so the patient's access report shows this access."""
        return ""

    def _reveal_url_name(self) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_reveal"

    def get_urls(self) -> list[URLPattern]:
        reveal = path(
            "<path:object_id>/reveal/",
            self.admin_site.admin_view(self.reveal_view),
            name=self._reveal_url_name(),
        )
        return [reveal, *super().get_urls()]

    def __init__(self, model: type[M], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        # Each masked field is shown by its own display callable, `<name>_masked`, in the field's place.
        for name in self.masked_fields:
            setattr(
                self,
                f"{name}_masked",
                MaskedField(name, self._label(name), f"admin:{self._reveal_url_name()}"),
            )

    def get_fields(self, request: HttpRequest, obj: M | None = None) -> Any:
        return [
            f"{name}_masked" if name in self.masked_fields else name
            for name in super().get_fields(request, obj)
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: M | None = None) -> Any:
        return self.get_fields(request, obj)

    def _label(self, name: str) -> str:
        field = self.opts.get_field(name)
        return str(getattr(field, "verbose_name", name)).capitalize()

    def _unfiltered(self, object_id: str) -> M | None:
        # The door, not the list's filter, decides: a denial must be audited before it looks like a missing object.
        try:
            return self.model._default_manager.filter(pk=unquote(object_id)).first()
        except (ValueError, ValidationError):
            return None

    def _open(self, request: HttpRequest, obj: M, action: str) -> bool:
        decision = feed_support_open(
            user=request.user,
            request=request,
            organisation=self.feed_partner(obj),
            action=action,
            what=f"{self.opts.verbose_name} {obj.pk}",
            nhs_number_text=self.nhs_number_of(obj),
        )
        return decision.allowed

    def _as_missing(self, request: HttpRequest, object_id: str) -> HttpResponse:
        # Django's own answer for an object that does not exist: a denial must not look any different.
        response: HttpResponse = self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
            request, self.opts, object_id
        )
        return response

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            # Not this admin's user at all: Django's own refusal, before anything is looked up.
            raise PermissionDenied
        obj = self._unfiltered(object_id)
        if obj is not None and not self._open(request, obj, AccessEvent.Action.VIEW_DOCUMENT):
            return self._as_missing(request, object_id)
        # Every field is read-only, so the page offers no Save: only what the admin class adds, and Close.
        context = {**READ_ONLY_PAGE, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    def reveal_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = self._unfiltered(object_id)
        if obj is None:
            return self._as_missing(request, object_id)
        if not self._open(request, obj, AccessEvent.Action.REVEAL):
            return self._as_missing(request, object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"What the partner sent: {self.opts.verbose_name} {obj.pk}",
            "original": obj,
            "fields": [(self._label(name), str(getattr(obj, name) or "")) for name in self.masked_fields],
            "back_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]),
        }
        return TemplateResponse(request, "admin/feed_support_reveal.html", context)
