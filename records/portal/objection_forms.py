"""Forms for the IG team's objection cases and for objections staff enter. They check the shape of the input
only: whether a case may take a step is `consent.objections`'s, and who may act is the door's."""

import re
from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.core.validators import validate_email
from django.utils import timezone

from consent.models import Objection
from records import nhs_number
from records.models import Organisation
from records.sections import CLINICAL_SECTIONS, Section

NOTE_MAX = 2000
# The shape of a UK postcode, spaces optional: "CB1 2AB", "SW1A1AA".
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")
# An objection entered long after it was received is almost always a mistyped date.
_OLDEST_RECEIPT = timedelta(days=366)
# A received date has no time of day; noon keeps the due date on the same calendar day however the clocks change.
_RECEIVED_TIME = time(12, 0)

STAFF_CHANNELS = [
    (Objection.Channel.PHONE.value, Objection.Channel.PHONE.label),
    (Objection.Channel.LETTER.value, Objection.Channel.LETTER.label),
    (Objection.Channel.IN_PERSON.value, Objection.Channel.IN_PERSON.label),
]
SECTION_CHOICES = [(section.value, section.label) for section in Section if section in CLINICAL_SECTIONS]


def partner_choices(codes: set[str] | None = None) -> list[tuple[str, str]]:
    """Active partners as ticked-box choices, "name (ODS code)"; only those in `codes` when given."""
    partners = Organisation.objects.filter(is_active=True).exclude(kind=Organisation.Kind.ICB)
    if codes is not None:
        partners = Organisation.objects.filter(ods_code__in=codes)
    return [
        (ods, f"{name} ({ods})") for ods, name in partners.order_by("name").values_list("ods_code", "name")
    ]


def _note(label: str, *, required: bool = True, rows: int = 3) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        max_length=NOTE_MAX,
        widget=forms.Textarea(attrs={"rows": rows}),
        error_messages={"max_length": f"Keep it to {NOTE_MAX} characters or fewer."},
    )


def _ticked(label: str, choices: list[tuple[str, str]]) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=label,
        required=False,
        choices=choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Choose from the list: %(value)s is not one of the choices."},
    )


class _ObjectionRequestForm(forms.Form):
    """How the objection came, how to reply, who asks, and its scope: the part every staff-entered objection has."""

    channel = forms.ChoiceField(
        label="How the patient told us",
        choices=STAFF_CHANNELS,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose how the patient told you.",
            "invalid_choice": "Choose from the list.",
        },
    )
    received_on = forms.DateField(
        label="Date received",
        help_text="The month to answer runs from this day.",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"required": "Enter the date it was received.", "invalid": "Enter a real date."},
    )
    contact_by = forms.ChoiceField(
        label="How to reply",
        choices=Objection.ContactBy.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose how to reply.", "invalid_choice": "Choose from the list."},
    )
    contact_detail = forms.CharField(
        label="Email address, phone number or postal address to reply to",
        max_length=300,
        error_messages={
            "required": "Enter where to reply.",
            "max_length": "Keep it to 300 characters or fewer.",
        },
    )
    on_behalf = forms.ChoiceField(
        label="Who is asking",
        choices=Objection.OnBehalf.choices,
        initial=Objection.OnBehalf.SELF,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose from the list."},
    )
    requester_name = forms.CharField(
        label="Name of the person asking, if not the patient",
        max_length=200,
        required=False,
        error_messages={"max_length": "Keep it to 200 characters or fewer."},
    )
    reason_text = _note("The patient's reason, in their words (optional)", required=False)
    scope_whole_record = forms.BooleanField(label="The whole record", required=False)
    scope_sections = _ticked("Particular parts of the record", SECTION_CHOICES)
    scope_from_partners = _ticked("Data these partners sent is not to be shared with anyone else", [])
    scope_to_partners = _ticked("These partners' staff are not to see the record", [])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = partner_choices()
        for name in ("scope_from_partners", "scope_to_partners"):
            field = self.fields[name]
            if not isinstance(field, forms.MultipleChoiceField):
                raise RuntimeError("invariant: isinstance(field, forms.MultipleChoiceField)")
            field.choices = choices

    def clean_received_on(self) -> date:
        received: date = self.cleaned_data["received_on"]
        today = timezone.localdate()
        if received > today:
            raise forms.ValidationError("The date received cannot be in the future.")
        if received < today - _OLDEST_RECEIPT:
            raise forms.ValidationError("The date received is more than a year ago: check it.")
        return received

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        parts = data.get("scope_sections") or data.get("scope_from_partners") or data.get("scope_to_partners")
        if not data.get("scope_whole_record") and not parts:
            self.add_error(None, "Say what the patient objects to: the whole record, or some parts of it.")
        if data.get("scope_whole_record") and parts:
            self.add_error(None, "Choose the whole record, or parts of it, not both.")
        if data.get("on_behalf", Objection.OnBehalf.SELF) != Objection.OnBehalf.SELF and not data.get(
            "requester_name", ""
        ):
            self.add_error("requester_name", "Enter the name of the person asking for the patient.")
        if data.get("contact_by") == Objection.ContactBy.EMAIL and data.get("contact_detail"):
            try:
                validate_email(data["contact_detail"])
            except forms.ValidationError:
                self.add_error("contact_detail", "Enter an email address like name@example.org.")
        return data

    def received_at(self) -> datetime | None:
        received: date = self.cleaned_data["received_on"]
        if received == timezone.localdate():
            return None
        return timezone.make_aware(datetime.combine(received, _RECEIVED_TIME))

    def receive_fields(self) -> dict[str, Any]:
        """The cleaned input as `consent.objections.objection_receive`'s arguments."""
        data = self.cleaned_data
        return {
            "channel": data["channel"],
            "received_at": self.received_at(),
            "contact_by": data["contact_by"],
            "contact_detail": data["contact_detail"],
            "on_behalf": data["on_behalf"] or Objection.OnBehalf.SELF,
            "requester_name": data["requester_name"],
            "reason_text": data["reason_text"],
            "scope_whole_record": data["scope_whole_record"],
            "scope_sections": data["scope_sections"],
            "scope_from_partners": data["scope_from_partners"],
            "scope_to_partners": data["scope_to_partners"],
        }


class ObjectionEntryForm(_ObjectionRequestForm):
    """An objection the IG team enters: who the requester says the patient is, as well as the request."""

    given_name = forms.CharField(label="Patient's first name", max_length=100)
    family_name = forms.CharField(label="Patient's last name", max_length=100)
    birth_date = forms.DateField(
        label="Patient's date of birth",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"required": "Enter the patient's date of birth.", "invalid": "Enter a real date."},
    )
    nhs_number = forms.CharField(
        label="NHS number, if known",
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric", "spellcheck": "false"}),
    )
    address = forms.CharField(label="Patient's address", max_length=300, required=False)
    postcode = forms.CharField(label="Postcode", max_length=10, required=False)
    match_now = forms.BooleanField(
        label="I have checked who the patient is: match the case to the patient with this NHS number now",
        required=False,
    )

    field_order = [
        "channel",
        "received_on",
        "given_name",
        "family_name",
        "birth_date",
        "nhs_number",
        "address",
        "postcode",
        "match_now",
    ]

    def clean_birth_date(self) -> date:
        born: date = self.cleaned_data["birth_date"]
        if born > timezone.localdate():
            raise forms.ValidationError("The date of birth cannot be in the future.")
        if born.year < 1900:
            raise forms.ValidationError("The date of birth is before 1900: check it.")
        return born

    def clean_nhs_number(self) -> str:
        value: str = self.cleaned_data.get("nhs_number") or ""
        if not value.strip():
            return ""
        problem = nhs_number.explain_invalid(value)
        if problem:
            raise forms.ValidationError(problem)
        return nhs_number.normalise(value)

    def clean_postcode(self) -> str:
        value = " ".join((self.cleaned_data.get("postcode") or "").upper().split())
        if value and not _POSTCODE.match(value):
            raise forms.ValidationError("Enter a UK postcode, like CB1 2AB.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("nhs_number") and "nhs_number" not in self.errors:
            if not data.get("address") or not data.get("postcode"):
                self.add_error("address", "Without an NHS number, enter the patient's address and postcode.")
            if data.get("match_now"):
                self.add_error("match_now", "A case is matched by NHS number: enter it, or match it later.")
        return data

    def receive_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            **super().receive_fields(),
            "given_name": data["given_name"],
            "family_name": data["family_name"],
            "birth_date": data["birth_date"],
            "nhs_number": data["nhs_number"],
            "address": data["address"],
            "postcode": data["postcode"],
        }


class ObjectionForPatientForm(_ObjectionRequestForm):
    """An objection a patient made to their own GP practice, entered from their record: who they are is known."""


class CaseFilterForm(forms.Form):
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("", "All"), *Objection.Status.choices],
        error_messages={"invalid_choice": "Choose a status from the list."},
    )
    overdue = forms.BooleanField(label="Overdue only", required=False)


class IdentityLookupForm(forms.Form):
    nhs_number = forms.CharField(
        label="NHS number to look up",
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "identity")
        super().__init__(*args, **kwargs)

    def clean_nhs_number(self) -> str:
        value: str = self.cleaned_data.get("nhs_number") or ""
        problem = nhs_number.explain_invalid(value)
        if problem:
            raise forms.ValidationError(problem)
        return nhs_number.normalise(value)


class IdentityVerifyForm(IdentityLookupForm):
    note = _note("How identity was checked (optional)", required=False, rows=2)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "verify")
        super().__init__(*args, **kwargs)
        self.fields["nhs_number"].widget = forms.HiddenInput()


class IdentityNotFoundForm(forms.Form):
    note = _note("What was tried")
    prefix = "not-found"


class ClinicalInputForm(forms.Form):
    clinician = forms.CharField(label="Clinician consulted (name and role)", max_length=200)
    text = _note("What they advised", rows=4)
    prefix = "clinical"


class DecisionForm(forms.Form):
    """The outcome, and for a partly upheld case the parts upheld, as ticked boxes from what was asked."""

    outcome = forms.ChoiceField(
        label="Outcome",
        widget=forms.RadioSelect,
        choices=[
            (Objection.Status.UPHELD.value, "Upheld: everything that was asked"),
            (Objection.Status.PARTLY_UPHELD.value, "Partly upheld: only the parts ticked below"),
            (Objection.Status.NOT_UPHELD.value, "Not upheld"),
        ],
        error_messages={
            "required": "Choose an outcome.",
            "invalid_choice": "Choose an outcome from the list.",
        },
    )
    sections = _ticked("Parts of the record upheld", SECTION_CHOICES)
    from_partners = _ticked("Partners whose data is not shared", [])
    to_partners = _ticked("Partners whose staff do not see the record", [])
    refusal_reason = forms.ChoiceField(
        label="Reason for refusing (needed when not upheld; for a partly upheld case, for the part refused)",
        required=False,
        choices=[("", "None"), *Objection.RefusalReason.choices],
        error_messages={"invalid_choice": "Choose a reason from the list."},
    )
    note = _note("Decision note (optional, not in the letter)", required=False)
    break_glass_may_override = forms.BooleanField(
        label="A break-glass for safeguarding or overriding public interest may set this objection aside",
        required=False,
    )
    prefix = "decision"

    def __init__(self, *args: Any, objection: Objection, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sections = self.fields["sections"]
        from_partners = self.fields["from_partners"]
        to_partners = self.fields["to_partners"]
        if not isinstance(sections, forms.MultipleChoiceField):
            raise RuntimeError("invariant: isinstance(sections, forms.MultipleChoiceField)")
        if not isinstance(from_partners, forms.MultipleChoiceField):
            raise RuntimeError("invariant: isinstance(from_partners, forms.MultipleChoiceField)")
        if not isinstance(to_partners, forms.MultipleChoiceField):
            raise RuntimeError("invariant: isinstance(to_partners, forms.MultipleChoiceField)")
        if objection.scope_whole_record:
            # Any part of the whole record is within what was asked.
            from_partners.choices = to_partners.choices = partner_choices()
            return
        sections.choices = [(key, label) for key, label in SECTION_CHOICES if key in objection.scope_sections]
        from_partners.choices = partner_choices(set(objection.scope_from_partners))
        to_partners.choices = partner_choices(set(objection.scope_to_partners))
        for name, field in (
            ("sections", sections),
            ("from_partners", from_partners),
            ("to_partners", to_partners),
        ):
            if not field.choices:
                del self.fields[name]

    def decision(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "outcome": data["outcome"],
            # Upholding the whole record is upholding all that was asked: the outcome "upheld", not a part.
            "whole_record": False,
            "sections": data.get("sections", []),
            "from_partners": data.get("from_partners", []),
            "to_partners": data.get("to_partners", []),
            "refusal_reason": data["refusal_reason"],
            "note": data["note"],
            "break_glass_may_override": data["break_glass_may_override"],
        }


class ExtendForm(forms.Form):
    due_on = forms.DateField(
        label="New due date",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"required": "Enter the new due date.", "invalid": "Enter a real date."},
    )
    reason = _note("Why the case needs longer")
    prefix = "extend"

    def __init__(self, *args: Any, objection: Objection, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.objection = objection

    def due_at(self) -> datetime:
        """The new due date at the case's own time of day, so only the day moves."""
        current = timezone.localtime(self.objection.due_at)
        return timezone.make_aware(
            datetime.combine(self.cleaned_data["due_on"], current.time().replace(tzinfo=None))
        )


class WithdrawForm(forms.Form):
    note = _note("How the patient withdrew (for example: phoned on 3 March)")
    prefix = "withdraw"
