"""Links between pages of one record section, keeping the other sections where they were."""

from django import template
from django.http import QueryDict

from records.sections import Section

register = template.Library()

# Only section keys are carried from one page link to the next, so nothing else in a query string survives.
_SECTION_KEYS = frozenset(section.value for section in Section)


@register.simple_tag
def section_page_query(current: QueryDict, section: str, number: int) -> str:
    """`?<section>=<number>` plus the other sections' pages, e.g. `?problems-and-issues=2&referrals=3`."""
    query = QueryDict(mutable=True)
    for key in sorted(_SECTION_KEYS & set(current)):
        value = current.get(key)
        if value:
            query[key] = value
    if number > 1:
        query[section] = str(number)
    else:
        query.pop(section, None)
    return f"?{query.urlencode()}" if query else ""
