"""The timeline's filter: a GET form of a partner, a section and a date range.

It checks the shape of the input only. Its choices are given by the caller from what the decision lets the page
show (the sections the role opens and no objection withholds, the partners holding visible entries), so a partner
or section outside them is an error on the form, never a way to learn what exists.
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from django import forms

from records.portal.form_fields import optional_date_field

ANY_PARTNER = "Any partner"
ANY_SECTION = "Any section"
RANGE_BACKWARDS = "The date from must be on or before the date to."


class TimelineFilterForm(forms.Form):
    partner = forms.ChoiceField(
        label="Partner",
        required=False,
        error_messages={"invalid_choice": "Choose a partner from the list."},
    )
    section = forms.ChoiceField(
        label="Section",
        required=False,
        error_messages={"invalid_choice": "Choose a section from the list."},
    )
    date_from = optional_date_field("Date from")
    date_to = optional_date_field("Date to")

    def __init__(
        self,
        data: Any,
        *,
        partners: list[tuple[str, str]],
        sections: list[tuple[str, str]],
    ) -> None:
        super().__init__(data)
        cast(forms.ChoiceField, self.fields["partner"]).choices = [("", ANY_PARTNER), *partners]
        cast(forms.ChoiceField, self.fields["section"]).choices = [("", ANY_SECTION), *sections]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        date_from: date | None = cleaned.get("date_from")
        date_to: date | None = cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", RANGE_BACKWARDS)
        return cleaned
