"""Portal forms. They check the shape of the input only; whether a user may see a patient is for the door."""

import re
from datetime import date
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.utils import timezone

from audit.models import Alert
from consent.models import BreakGlassGrant, SelfClaimedRelationship, StaffProfile
from records import nhs_number
from records.models import Patient

NOT_FOUND_MESSAGE = "No patient found with that NHS number, or you do not have a care relationship with them."


class PatientSearchForm(forms.Form):
    nhs_number = forms.CharField(
        label="NHS number",
        # Long enough for 10 digits with generous spacing; the real rule is in `clean_nhs_number`.
        max_length=20,
        help_text="10 digits. Spaces and hyphens are fine, for example 943 476 5919.",
        widget=forms.TextInput(
            attrs={
                # The browser must not remember NHS numbers typed on a shared clinical workstation.
                "autocomplete": "off",
                "inputmode": "numeric",
                "spellcheck": "false",
            }
        ),
        # An empty box is one more mistake `clean_nhs_number` explains, in the same words as the others.
        required=False,
    )

    def clean_nhs_number(self) -> str:
        value: str = self.cleaned_data.get("nhs_number") or ""
        problem = nhs_number.explain_invalid(value)
        if problem:
            raise forms.ValidationError(problem, code="invalid_nhs_number")
        return nhs_number.normalise(value)

    def reject_as_not_found(self) -> None:
        """Show the form again, with the number as typed, so a slip can be corrected, and one message that is the
        same for a missing and a hidden patient: the page is identical in both cases, not just the message."""
        self.add_error("nhs_number", NOT_FOUND_MESSAGE)


# The value the name search's form posts in its `search` field, so one page and one URL serve both searches.
NAME_SEARCH = "name"
NOT_FOUND_BY_NAME_MESSAGE = (
    "No patient found with those details among the patients you have a care relationship with. Check the "
    "spelling and the date of birth, or search by NHS number."
)
EARLIEST_BIRTH_YEAR = 1880
# Every name box: the browser must not remember patients' names typed on a shared clinical workstation.
_UNREMEMBERED = {"autocomplete": "off", "spellcheck": "false"}


class PatientNameSearchForm(forms.Form):
    """A family name and a date of birth, both required; a given name, postcode and sex narrow the answer."""

    search = forms.CharField(widget=forms.HiddenInput, initial=NAME_SEARCH, required=False)
    family_name = forms.CharField(
        label="Family name",
        max_length=100,
        help_text="A close spelling is enough.",
        widget=forms.TextInput(attrs=_UNREMEMBERED),
        error_messages={"required": "Enter the family name."},
    )
    birth_date = forms.DateField(
        label="Date of birth",
        # A browser's date box sends the ISO form; the others are what people type where there is none.
        input_formats=["%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d %m %Y"],
        widget=forms.DateInput(attrs={"type": "date", "autocomplete": "off"}, format="%Y-%m-%d"),
        error_messages={
            "required": "Enter the date of birth.",
            "invalid": "Enter a real date of birth, for example 14/03/1950.",
        },
    )
    given_name = forms.CharField(
        label="Given name (optional)",
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs=_UNREMEMBERED),
    )
    postcode = forms.CharField(
        label="Postcode (optional)",
        max_length=10,
        required=False,
        help_text="The whole postcode or its first half, for example CB2 0QQ or CB2.",
        widget=forms.TextInput(attrs={**_UNREMEMBERED, "autocapitalize": "characters"}),
    )
    sex = forms.ChoiceField(
        label="Sex (optional)", required=False, choices=[("", "Any"), *Patient.Sex.choices]
    )

    def clean_family_name(self) -> str:
        value: str = self.cleaned_data["family_name"].strip()
        if sum(character.isalpha() for character in value) < 2:
            raise forms.ValidationError("Enter at least 2 letters of the family name.", code="too_short")
        return value

    def clean_given_name(self) -> str:
        return str(self.cleaned_data.get("given_name") or "").strip()

    def clean_birth_date(self) -> date:
        born: date = self.cleaned_data["birth_date"]
        if born > timezone.localdate():
            raise forms.ValidationError("Date of birth must be today or in the past.", code="future")
        if born.year < EARLIEST_BIRTH_YEAR:
            raise forms.ValidationError(
                f"Date of birth must be after {EARLIEST_BIRTH_YEAR}.", code="too_early"
            )
        return born

    def clean_postcode(self) -> str:
        value = "".join(str(self.cleaned_data.get("postcode") or "").split()).upper()
        if value and not re.fullmatch(r"[A-Z]{1,2}[0-9][A-Z0-9]?([0-9][A-Z]{2})?", value):
            raise forms.ValidationError(
                "Enter a postcode, or its first half, for example CB2 0QQ or CB2.", code="invalid_postcode"
            )
        return value


# Giving oneself access to a patient found without a relationship, and the privacy officer's review of it.

REASON_TEXT_MAX = 1000
# The lengths a self-claim may be asked for; the role's maximum is always offered too, and nothing longer.
_CLAIM_HOURS = (1, 2, 4, 8, 12, 24, 48, 72, 168)


def _hours_label(hours: int) -> str:
    if hours % 24 == 0:
        days = hours // 24
        return "1 day" if days == 1 else f"{days} days"
    return "1 hour" if hours == 1 else f"{hours} hours"


def _reason_text_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=REASON_TEXT_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Say in your own words why you need this patient's record."},
    )


class RelationshipDeclareForm(forms.Form):
    """A reason from the list, a reason in words, and a length no longer than the role's maximum."""

    reason_code = forms.ChoiceField(
        label="Reason",
        choices=[("", "Choose a reason"), *SelfClaimedRelationship.Reason.choices],
        error_messages={"required": "Choose a reason.", "invalid_choice": "Choose a reason from the list."},
    )
    reason_text = _reason_text_field("Why you need this record")
    hours = forms.TypedChoiceField(
        label="For how long",
        coerce=int,
        error_messages={"invalid_choice": "Choose a length from the list."},
    )

    def __init__(self, *args: Any, max_hours: int, **kwargs: Any) -> None:
        kwargs["prefix"] = "claim"
        super().__init__(*args, **kwargs)
        lengths = sorted({hours for hours in _CLAIM_HOURS if hours <= max_hours} | {max_hours})
        hours_field = self.fields["hours"]
        if not isinstance(hours_field, forms.TypedChoiceField):
            raise RuntimeError("invariant: isinstance(hours_field, forms.TypedChoiceField)")
        hours_field.choices = [(hours, _hours_label(hours)) for hours in lengths]
        hours_field.initial = min(settings.SELF_CLAIM_HOURS, max_hours)


class BreakGlassForm(forms.Form):
    """A coded reason, a reason in words, and the user's password typed again, checked here."""

    reason_code = forms.ChoiceField(
        label="Reason",
        choices=[("", "Choose a reason"), *BreakGlassGrant.Reason.choices],
        error_messages={"required": "Choose a reason.", "invalid_choice": "Choose a reason from the list."},
    )
    reason_text = _reason_text_field("Why you need this record now")
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        error_messages={"required": "Enter your password to confirm it is you."},
    )

    def __init__(
        self,
        *args: Any,
        user: AbstractBaseUser | AnonymousUser,
        request: HttpRequest | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["prefix"] = "glass"
        super().__init__(*args, **kwargs)
        self.user = user
        self.request = request

    def clean_password(self) -> str:
        password: str = self.cleaned_data.get("password") or ""
        # Through the authentication backends, so a wrong password here counts towards the sign-in lockout
        # (django-axes) as one on the sign-in page would: a borrowed session cannot guess its way to break-glass.
        confirmed = (
            authenticate(self.request, username=self.user.get_username(), password=password)
            if isinstance(self.user, AbstractBaseUser)
            else None
        )
        if confirmed is None or confirmed.pk != self.user.pk:
            raise forms.ValidationError("The password is not right.", code="wrong_password")
        # Not kept: the form's data after this point carries no password.
        return ""


class RoleSelectForm(forms.Form):
    profile = forms.TypedChoiceField(
        label="Role", coerce=int, widget=forms.RadioSelect, error_messages={"required": "Choose a role."}
    )

    def __init__(self, *args: Any, profiles: list[StaffProfile], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        profile_field = self.fields["profile"]
        if not isinstance(profile_field, forms.TypedChoiceField):
            raise RuntimeError("invariant: isinstance(profile_field, forms.TypedChoiceField)")
        profile_field.choices = [
            (
                profile.pk,
                f"{profile.get_job_role_display()}, {profile.organisation.name} "
                f"({profile.organisation.ods_code})",
            )
            for profile in profiles
        ]


class AlertReviewForm(forms.Form):
    outcome = forms.ChoiceField(
        label="Outcome",
        choices=Alert.Outcome.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose an outcome.",
            "invalid_choice": "Choose an outcome from the list.",
        },
    )
    note = forms.CharField(
        label="Note (optional)", required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
