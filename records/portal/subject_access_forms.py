"""Forms for the IG team's subject access register and national data opt-outs. They check the shape of the input
only; whether a user may act, and whether a step is possible, is for the door."""

from datetime import date, datetime, time
from typing import Any

from django import forms
from django.core.validators import validate_email
from django.utils import timezone

from consent.models import Objection
from records import nhs_number

NOTE_MAX = 2000
_PHONE_CHARACTERS = frozenset("0123456789 +()-")


def _nhs_number_checked(value: str, *, required: bool) -> str:
    if not value and not required:
        return ""
    problem = nhs_number.explain_invalid(value)
    if problem:
        raise forms.ValidationError(problem, code="invalid_nhs_number")
    return nhs_number.normalise(value)


def _nhs_number_field(*, required: bool) -> forms.CharField:
    return forms.CharField(
        label="NHS number" if required else "NHS number (if known)",
        max_length=20,
        required=required,
        error_messages={"required": "Enter an NHS number."},
        help_text="10 digits. Spaces are fine, for example 943 476 5919.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric", "spellcheck": "false"}),
    )


def _past_date_field(label: str, *, required: bool, help_text: str = "") -> forms.DateField:
    return forms.DateField(
        label=label,
        required=required,
        help_text=help_text,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"required": f"Enter the {label.lower()}.", "invalid": "Enter a real date."},
    )


def _not_future(value: date | None, what: str) -> date | None:
    if value is not None and value > timezone.localdate():
        raise forms.ValidationError(f"The {what} cannot be in the future.", code="future_date")
    return value


def _note_field(label: str, *, required: bool = False, message: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        max_length=NOTE_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": message} if message else {},
    )


class SubjectAccessEnterForm(forms.Form):
    """A request taken by phone, letter, in person or online, as the person asking gave it."""

    channel = forms.ChoiceField(
        label="How it came in",
        choices=Objection.Channel.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose how the request came in.",
            "invalid_choice": "Choose from the list.",
        },
    )
    received_on = _past_date_field(
        "Date received", required=False, help_text="Leave empty for today. The request is due a month later."
    )
    requester_name = forms.CharField(
        label="Name of the person asking",
        max_length=200,
        error_messages={"required": "Enter the name of the person asking."},
    )
    contact_by = forms.ChoiceField(
        label="How to reply",
        choices=Objection.ContactBy.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose how to reply.", "invalid_choice": "Choose from the list."},
    )
    contact_detail = forms.CharField(
        label="Email address, phone number or postal address",
        max_length=300,
        error_messages={"required": "Enter where to reply."},
    )
    nhs_number = _nhs_number_field(required=False)
    birth_date = _past_date_field("Date of birth", required=False, help_text="If they gave it.")

    def clean_nhs_number(self) -> str:
        return _nhs_number_checked(self.cleaned_data.get("nhs_number") or "", required=False)

    def clean_birth_date(self) -> date | None:
        return _not_future(self.cleaned_data.get("birth_date"), "date of birth")

    def clean_received_on(self) -> date | None:
        return _not_future(self.cleaned_data.get("received_on"), "date received")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        contact_by = cleaned.get("contact_by")
        detail = (cleaned.get("contact_detail") or "").strip()
        if contact_by == Objection.ContactBy.EMAIL and detail:
            try:
                validate_email(detail)
            except forms.ValidationError:
                self.add_error("contact_detail", "Enter an email address, like name@example.org.")
        if contact_by == Objection.ContactBy.PHONE and detail and not set(detail) <= _PHONE_CHARACTERS:
            self.add_error(
                "contact_detail", "A phone number has digits, spaces, +, brackets and hyphens only."
            )
        return cleaned

    def received_at(self) -> datetime | None:
        """When it was received: now for today (or no date), the start of the day for an earlier date."""
        received_on: date | None = self.cleaned_data.get("received_on")
        if received_on is None or received_on == timezone.localdate():
            return None
        return timezone.make_aware(datetime.combine(received_on, time.min))


class IdentityForm(forms.Form):
    """The NHS number and date of birth the team checked against the person's proof of identity."""

    nhs_number = _nhs_number_field(required=True)
    birth_date = _past_date_field("Date of birth", required=True)

    def clean_nhs_number(self) -> str:
        return _nhs_number_checked(self.cleaned_data.get("nhs_number") or "", required=True)

    def clean_birth_date(self) -> date | None:
        return _not_future(self.cleaned_data.get("birth_date"), "date of birth")


class ExtendForm(forms.Form):
    due_on = forms.DateField(
        label="New due date",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"required": "Enter the new due date.", "invalid": "Enter a real date."},
    )
    reason = _note_field("Why it needs longer", required=True, message="Say why the request needs longer.")


class WithdrawForm(forms.Form):
    note = _note_field("Note (optional)")


class OptOutRecordForm(IdentityForm):
    """A national data opt-out the patient told the team of: whose, by NHS number and date of birth."""

    note = _note_field("Note (optional)")


class OptOutRemoveForm(forms.Form):
    """Why one opt-out is removed; each row of the list has its own, with ids of its own."""

    reason = _note_field("Why it is removed", required=True, message="Say why the opt-out is removed.")

    def __init__(self, *args: Any, opt_out_id: int, **kwargs: Any) -> None:
        kwargs["auto_id"] = f"id_remove_{opt_out_id}_%s"
        super().__init__(*args, **kwargs)
        self.opt_out_id = opt_out_id
