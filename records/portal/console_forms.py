"""The audit console's forms, and where a search is kept between its pages.

They check the shape of the input only; whether the user may read the trail is for the door
(`records.access_console`). The NHS number is taken from a POST body and kept in the session under a random token,
so the results' pages and their download are addressed by the token and the number never reaches a URL.
"""

import re
import secrets
from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib.sessions.backends.base import SessionBase
from django.utils import timezone

from audit.models import AccessEvent
from records import nhs_number
from records.access_console import EventSearch
from records.portal.form_fields import optional_date_field

DEFAULT_DAYS = 30
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,6}$")
_SESSION_KEY = "audit_console_searches"
# The searches a session keeps, newest last: enough for a few tabs, few enough to keep the session small.
_SEARCHES_KEPT = 20
NEEDS_CRITERIA = "Enter an NHS number, a username or an organisation, or both dates of a date range."
NOT_HELD = "No patient is held here with that NHS number."


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last 30 days, today included."""
    last = today or timezone.localdate()
    return last - timedelta(days=DEFAULT_DAYS - 1), last


def _range_problem(date_from: date | None, date_to: date | None) -> str:
    if date_from and date_to and date_from > date_to:
        return "The date from must be on or before the date to."
    return ""


class EventSearchForm(forms.Form):
    """A search of the trail: at least a patient, a user or an organisation, or a date range with both ends."""

    nhs_number = forms.CharField(
        label="NHS number",
        required=False,
        max_length=20,
        help_text="Optional. 10 digits; spaces and hyphens are fine.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric", "spellcheck": "false"}),
    )
    username = forms.CharField(
        label="Username",
        required=False,
        max_length=150,
        help_text="Optional. Exactly as they sign in, for example gp.ada.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    organisation_ods = forms.CharField(
        label="Organisation ODS code",
        required=False,
        max_length=6,
        help_text="Optional. For example RGT or D81001.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    date_from = optional_date_field("Date from")
    date_to = optional_date_field("Date to")
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "Any action"), *AccessEvent.Action.choices]
    )
    outcome = forms.ChoiceField(
        label="Outcome", required=False, choices=[("", "Any outcome"), *AccessEvent.Outcome.choices]
    )

    def clean_nhs_number(self) -> str:
        value: str = (self.cleaned_data.get("nhs_number") or "").strip()
        if not value:
            return ""
        problem = nhs_number.explain_invalid(value)
        if problem:
            raise forms.ValidationError(problem, code="invalid_nhs_number")
        return nhs_number.normalise(value)

    def clean_organisation_ods(self) -> str:
        value = (self.cleaned_data.get("organisation_ods") or "").strip().upper()
        if value and not _ODS_CODE.match(value):
            raise forms.ValidationError(
                "An ODS code has 3 to 6 letters and digits, for example RGT or D81001."
            )
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        problem = _range_problem(cleaned.get("date_from"), cleaned.get("date_to"))
        if problem:
            self.add_error("date_to", problem)
        names = cleaned.get("nhs_number") or cleaned.get("username") or cleaned.get("organisation_ods")
        if not names and not (cleaned.get("date_from") and cleaned.get("date_to")):
            raise forms.ValidationError(NEEDS_CRITERIA, code="needs_criteria")
        return cleaned

    def search(self) -> EventSearch:
        """The valid form as the door takes it."""
        data = self.cleaned_data
        return EventSearch(
            nhs_number=data["nhs_number"],
            username=data["username"].strip(),
            organisation_ods=data["organisation_ods"],
            date_from=data["date_from"],
            date_to=data["date_to"],
            action=data["action"],
            outcome=data["outcome"],
        )

    def reject_as_not_held(self) -> None:
        """Show the search again, its NHS number emptied, saying no patient holds it."""
        self.data = {**self.data, "nhs_number": ""}
        self.add_error("nhs_number", NOT_HELD)


def blank_search_form() -> EventSearchForm:
    date_from, date_to = default_range()
    return EventSearchForm(initial={"date_from": date_from, "date_to": date_to})


def _as_data(search: EventSearch) -> dict[str, str]:
    return {
        "nhs_number": search.nhs_number,
        "username": search.username,
        "organisation_ods": search.organisation_ods,
        "date_from": search.date_from.isoformat() if search.date_from else "",
        "date_to": search.date_to.isoformat() if search.date_to else "",
        "action": search.action,
        "outcome": search.outcome,
    }


def search_form_for(search: EventSearch) -> EventSearchForm:
    """The form filled in with a kept search, to refine it."""
    form = EventSearchForm(data=_as_data(search))
    form.is_valid()
    return form


def search_keep(session: SessionBase, search: EventSearch) -> str:
    """Keep the search in the session and return the random token that names it from now on."""
    token = secrets.token_urlsafe(12)
    kept: dict[str, dict[str, str]] = dict(session.get(_SESSION_KEY) or {})
    kept[token] = _as_data(search)
    session[_SESSION_KEY] = dict(list(kept.items())[-_SEARCHES_KEPT:])
    return token


def search_recall(session: SessionBase, token: str) -> EventSearch | None:
    """The search this session kept under `token`, or None (a token from elsewhere or one no longer kept)."""
    data = (session.get(_SESSION_KEY) or {}).get(token)
    if not isinstance(data, dict):
        return None
    form = EventSearchForm(data=data)
    return form.search() if form.is_valid() else None


class TimelineForm(forms.Form):
    """The days of a user's timeline: both optional, the last 30 days by default."""

    date_from = optional_date_field("Date from")
    date_to = optional_date_field("Date to")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors:
            default_from, default_to = default_range()
            cleaned["date_from"] = cleaned.get("date_from") or default_from
            cleaned["date_to"] = cleaned.get("date_to") or default_to
            problem = _range_problem(cleaned["date_from"], cleaned["date_to"])
            if problem:
                self.add_error("date_to", problem)
        return cleaned


def page_number(value: str | None) -> int:
    """A page number from the query string; anything that is not a positive whole number is the first page."""
    if not value or len(value) > 6 or not value.isascii() or not value.isdigit():
        return 1
    return max(int(value), 1)
