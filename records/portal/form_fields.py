"""Form fields the portal's forms share."""

from django import forms


def optional_date_field(label: str) -> forms.DateField:
    """A date a filter may leave out, typed in the browser's own date box (sent as YYYY-MM-DD whatever the locale
    shows), with an error that names the field."""
    return forms.DateField(
        label=label,
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": f"Enter the date {label.lower()} as a real date, for example 2026-01-31."},
    )
