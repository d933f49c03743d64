"""One entry's words and source, as every row and item of the record page, its summary and its printout show them.

Built in Python with `format_html`, which escapes every value it is given: they are on every row of the page, and
two template includes a row cost more than the rest of its rendering.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from django import template
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import capfirst

from records.clinical import EntryDetail, Fact
from records.models import RecordEntry

register = template.Library()


class EntryRow(Protocol):
    """What these tags read of a row (`records.portal.summary.EntryRow`, which this side of the portal may not
    import)."""

    @property
    def entry(self) -> RecordEntry: ...
    @property
    def detail(self) -> EntryDetail: ...
    @property
    def is_source_hidden(self) -> bool: ...
    @property
    def is_document(self) -> bool: ...
    @property
    def brief_facts(self) -> list[Fact]: ...


# A restricted patient's GP practice is part of their whereabouts: a role without B1611 is told only this.
_HIDDEN_SOURCE = format_html(
    'The patient\'s GP practice <span class="text-body-secondary">({})</span>', "not shown: restricted record"
)


@register.simple_tag
def entry_source(row: EntryRow) -> SafeString:
    """The partner that sent the entry, with its ODS code, or the words standing for a hidden GP practice."""
    if row.is_source_hidden:
        return _HIDDEN_SOURCE
    organisation = row.entry.organisation
    return format_html('{} <span class="ods">({})</span>', organisation.name, organisation.ods_code)


@register.simple_tag
def entry_detail(row: EntryRow, public_id: uuid.UUID | str = "", *, brief: bool = False) -> SafeString:
    """The entry in words (`records.clinical.describe`): its title (a document's opens it when `public_id` is
    given), a flag in words (never colour alone), and its facts (on a summary item, `brief`: the first few)."""
    detail = row.detail
    if public_id and row.is_document:
        url = reverse("records:document-view", args=[public_id, row.entry.pk])
        html = format_html('<a class="entry-title" href="{}">{}</a>', url, detail.title)
    else:
        html = format_html('<span class="entry-title">{}</span>', detail.title)
    if detail.flag:
        html += format_html(
            ' <span class="badge record-flag record-flag-{}">{}</span>',
            detail.flag,
            capfirst(detail.flag_text or detail.flag),
        )
    facts = row.brief_facts if brief else detail.facts
    if facts:
        items = format_html_join(
            "",
            '<li><span class="record-fact-label">{}</span> {}</li>',
            ((fact.label, fact.value) for fact in facts),
        )
        html += format_html('\n<ul class="record-facts">{}</ul>', items)
    return html
