"""Job roles in words on the pages that name one, e.g. the privacy officer's alert queue."""

from django import template

from consent.roles import JobRole

register = template.Library()


@register.filter
def role_name(code: str) -> str:
    """`R8000` → "Clinical practitioner (R8000)"; a code sharedcare does not know is shown as it is."""
    try:
        return f"{JobRole(code).label} ({code})"
    except ValueError:
        return code
