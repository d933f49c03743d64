"""What a person may type into the public forms, and how it is checked: each field's size limit with its own
message, UK postcodes and phone numbers, a date of birth in three boxes, and the partners that may be named.

A value too long is refused with a sentence naming the limit, before anything else reads it; the messages never
repeat what was typed, so nothing a visitor sends comes back to them except escaped in its own box.
"""

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from consent.objections import OBJECTION_PREFIX
from records.models import Organisation

NAME_MAX = 100
REQUESTER_NAME_MAX = 200
ADDRESS_LINE_MAX = 120
TOWN_MAX = 50
POSTAL_ADDRESS_MAX = 250
EMAIL_MAX = 254
PHONE_MAX = 30
POSTCODE_MAX = 10
NHS_NUMBER_MAX = 20
REASON_MAX = 2000
REFERENCE_MAX = 20
EARLIEST_BIRTH_YEAR = 1890

_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$")
_PHONE_CHARACTERS = re.compile(r"^\+?[0-9 ()-]+$")
_REFERENCE = re.compile(r"^[A-Z0-9]{8}$")


def text_field(
    label: str, max_length: int, too_long: str, *, required: bool = False, **extra: Any
) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=max_length,
        required=required,
        error_messages={"max_length": too_long, "null_characters_not_allowed": "Remove the null character."},
        **extra,
    )


def choice_field(label: str, choices: dict[str, str], *, missing: str) -> forms.ChoiceField:
    return forms.ChoiceField(
        label=label,
        choices=list(choices.items()),
        required=False,
        error_messages={"invalid_choice": missing},
    )


def choices_field(label: str, choices: list[tuple[str, str]], *, unknown: str) -> forms.MultipleChoiceField:
    # The error names no value: a made-up code is refused without being echoed back.
    return forms.MultipleChoiceField(
        label=label,
        choices=choices,
        required=False,
        error_messages={"invalid_choice": unknown, "invalid_list": unknown},
    )


def postcode_normalise(value: str) -> str:
    """ "cb20qq" → "CB2 0QQ"; raises ValidationError for anything that is not the shape of a UK postcode."""
    squeezed = re.sub(r"\s+", "", value).upper()
    if not _POSTCODE.match(squeezed):
        raise ValidationError("Enter a real postcode, like CB2 0QQ", code="invalid_postcode")
    return f"{squeezed[:-3]} {squeezed[-3:]}"


def phone_check(value: str) -> str:
    """A UK number (0 and 10 or 11 digits) or an international one (+ and 8 to 15 digits), as typed."""
    shown = " ".join(value.split())
    digits = re.sub(r"\D", "", shown)
    problem = ValidationError(
        "Enter a phone number, like 01632 960 001, 07700 900 982 or +44 808 157 0192", code="invalid_phone"
    )
    if not _PHONE_CHARACTERS.match(shown):
        raise problem
    if shown.startswith("+"):
        if not 8 <= len(digits) <= 15:
            raise problem
    elif not (digits.startswith("0") and len(digits) in (10, 11)):
        raise problem
    return shown


def reference_normalise(value: str) -> str:
    """ "ob 7qk2-m9zd", "7QK2M9ZD" → "OB-7QK2M9ZD"; raises ValidationError for anything else."""
    squeezed = re.sub(r"[\s-]+", "", value).upper()
    squeezed = squeezed.removeprefix(OBJECTION_PREFIX.rstrip("-"))
    if not squeezed:
        raise ValidationError("Enter your reference", code="required")
    if not _REFERENCE.match(squeezed):
        raise ValidationError("Enter the reference you were given, like OB-7QK2M9ZD", code="invalid")
    return OBJECTION_PREFIX + squeezed


class DateOfBirthMixin(forms.Form):
    """Date of birth as three boxes, day, month and year, as the NHS.UK design system asks for it.

    The date's one error is kept on the day box, where the error summary links to.
    """

    birth_day = text_field("Day", 2, "Date of birth must be a real date")
    birth_month = text_field("Month", 2, "Date of birth must be a real date")
    birth_year = text_field("Year", 4, "Date of birth must be a real date")

    def birth_date_clean(self) -> date | None:
        parts = {name: self.cleaned_data.get(f"birth_{name}") for name in ("day", "month", "year")}
        if any(f"birth_{name}" in self.errors for name in parts):
            for name in ("month", "year"):
                self.errors.pop(f"birth_{name}", None)
            self.errors["birth_day"] = self.error_class(["Date of birth must be a real date"])
            return None
        missing = [name for name, value in parts.items() if not value]
        if len(missing) == len(parts):
            self.add_error("birth_day", "Enter the date of birth")
            return None
        if missing:
            self.add_error("birth_day", f"Date of birth must include a {' and '.join(missing)}")
            return None
        if not all(str(value).isascii() and str(value).isdigit() for value in parts.values()):
            self.add_error("birth_day", "Date of birth must be a real date")
            return None
        if len(str(parts["year"])) != 4:
            self.add_error("birth_day", "Year must include 4 numbers")
            return None
        try:
            born = date(int(str(parts["year"])), int(str(parts["month"])), int(str(parts["day"])))
        except ValueError:
            self.add_error("birth_day", "Date of birth must be a real date")
            return None
        if born > timezone.localdate():
            self.add_error("birth_day", "Date of birth must be today or in the past")
            return None
        if born.year < EARLIEST_BIRTH_YEAR:
            self.add_error("birth_day", f"Date of birth must be after {EARLIEST_BIRTH_YEAR}")
            return None
        return born


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    hint: str = ""


def partner_options() -> list[Option]:
    """Active partners by name; hospitals, trusts and councils first, GP practices after, each group by name."""
    partners = Organisation.objects.filter(is_active=True).order_by("name")
    ordered = sorted(partners, key=lambda partner: partner.kind == Organisation.Kind.GP_PRACTICE)
    return [Option(partner.ods_code, partner.name) for partner in ordered]
