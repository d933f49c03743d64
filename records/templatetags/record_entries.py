"""The record page's rows and items, and when each partner's data last arrived, as every part of the record page,
its summary and its printout show them.

Built here rather than in templates because they repeat (a row per entry, a row per live dataset of every
partner): a template's nodes cost far more a row than the same markup written in Python. Every value is escaped
(`html.escape`, as Django's `escape` does) as it is put into the markup, and the tags mark only that markup safe.
Each function's docstring shows the markup it writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Protocol

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst

from records.clinical import EntryDetail, Fact
from records.models import Organisation, RecordEntry

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
    @property
    def status_note(self) -> str: ...
    @property
    def when_iso(self) -> str: ...
    @property
    def when_text(self) -> str: ...


class FeedShown(Protocol):
    """What these tags read of a live dataset (`records.portal.availability.FeedAvailability`)."""

    @property
    def name(self) -> str: ...
    @property
    def last_success_at(self) -> datetime | None: ...
    @property
    def is_stale(self) -> bool: ...


class PartnerShown(Protocol):
    """What these tags read of a partner sharing data (`records.portal.availability.PartnerData`)."""

    @property
    def organisation(self) -> Organisation: ...
    @property
    def feeds(self) -> list[FeedShown]: ...


# A restricted patient's GP practice is part of their whereabouts: a role without B1611 is told only this.
_HIDDEN_SOURCE = (
    'The patient\'s GP practice <span class="text-body-secondary">(not shown: restricted record)</span>'
)


def _source(row: EntryRow) -> str:
    """`Name <span class="ods">(ODS)</span>`, or the words standing for a hidden GP practice."""
    if row.is_source_hidden:
        return _HIDDEN_SOURCE
    organisation = row.entry.organisation
    return f'{escape(str(organisation.name))} <span class="ods">({escape(str(organisation.ods_code))})</span>'


def _document_url(row: EntryRow, public_id: uuid.UUID | str) -> str:
    """Where a document's title and its Open link go; "" when the row opens nothing (no record id, not a document)."""
    if not public_id or not row.is_document:
        return ""
    return reverse("records:document-view", args=[public_id, row.entry.pk])


def _detail(row: EntryRow, url: str, *, brief: bool) -> str:
    """The entry in words (`records.clinical.describe`): its title (a link when `url` is given), a flag in words
    (never colour alone), and its facts (on a summary item, `brief`: the first few):

    <span class="entry-title">Title</span> <span class="badge record-flag record-flag-high">High</span>
    <ul class="record-facts"><li><span class="record-fact-label">Label</span> value</li></ul>
    """
    detail = row.detail
    title = escape(str(detail.title))
    html = (
        f'<a class="entry-title" href="{escape(url)}">{title}</a>'
        if url
        else f'<span class="entry-title">{title}</span>'
    )
    if detail.flag:
        flag = escape(str(detail.flag))
        words = escape(capfirst(detail.flag_text or detail.flag))
        html += f' <span class="badge record-flag record-flag-{flag}">{words}</span>'
    facts = row.brief_facts if brief else detail.facts
    if facts:
        items = "".join(
            f'<li><span class="record-fact-label">{escape(str(fact.label))}</span> {escape(str(fact.value))}</li>'
            for fact in facts
        )
        html += f'\n<ul class="record-facts">{items}</ul>'
    return html


def _when(row: EntryRow, missing: str) -> str:
    if row.entry.effective_at is None:
        return missing
    return f'<time datetime="{escape(row.when_iso)}">{escape(row.when_text)}</time>'


@register.simple_tag
def entry_source(row: EntryRow) -> SafeString:
    """The partner that sent the entry, with its ODS code, or the words standing for a hidden GP practice."""
    return mark_safe(_source(row))  # noqa: S308 - every value in it is escaped


@register.simple_tag
def entry_rows(rows: Iterable[EntryRow], public_id: uuid.UUID | str = "") -> SafeString:
    """Entries as rows of a section's table, each in words with its source; `public_id` makes a document's title
    and its Open link open it. A row:

    <tr>
      <td class="text-nowrap" data-label="Date"><time datetime="…">6 Dec 2026</time></td>
      <td data-label="Entry">[_detail] <a class="record-open" href="…">Open<span …> Title</span></a></td>
      <td data-label="Status">Active</td>
      <td class="source" data-label="Source">[_source]</td>
    </tr>
    """
    html = []
    for row in rows:
        url = _document_url(row, public_id)
        opens = (
            f' <a class="record-open" href="{escape(url)}">Open'
            f'<span class="visually-hidden"> {escape(str(row.detail.title))}</span></a>'
            if url
            else ""
        )
        html.append(
            f'<tr>\n  <td class="text-nowrap" data-label="Date">{_when(row, "Not recorded")}</td>\n'
            f'  <td data-label="Entry">{_detail(row, url, brief=False)}{opens}</td>\n'
            f'  <td data-label="Status">{escape(capfirst(row.entry.status or "Not recorded"))}</td>\n'
            f'  <td class="source" data-label="Source">{_source(row)}</td>\n</tr>\n'
        )
    return mark_safe("".join(html))  # noqa: S308 - every value in it is escaped


@register.simple_tag
def entry_items(rows: Iterable[EntryRow], public_id: uuid.UUID | str = "") -> SafeString:
    """Entries as items of the summary: what each is, its first facts, then its source, its status (when not what
    one expects) and its date on one line. An item:

    <li class="record-item">
      [_detail, brief]
      <span class="record-item-source">[_source], refuted, <time datetime="…">6 Dec 2026</time></span>
    </li>
    """
    html = []
    for row in rows:
        note = row.status_note
        html.append(
            f'<li class="record-item">\n  {_detail(row, _document_url(row, public_id), brief=True)}\n'
            f'  <span class="record-item-source">{_source(row)}{", " + escape(note) if note else ""}, '
            f"{_when(row, 'date not recorded')}</span>\n</li>\n"
        )
    return mark_safe("".join(html))  # noqa: S308 - every value in it is escaped


def _received(feed: FeedShown) -> str:
    """`<time datetime="…">6 Dec 2026, 14:05</time>` (as `date:"j M Y, H:i"` writes it, in local time), or `never`;
    when stale, `<span class="badge text-bg-warning stale-badge">Stale</span> no data since <time …>…</time>` (or
    `never received`)."""
    received = ""
    if feed.last_success_at is not None:
        local = feed.last_success_at
        if settings.USE_TZ and timezone.is_aware(local):
            local = timezone.localtime(local)
        words = f"{local.day} {str(MONTHS_3[local.month]).title()} {local.year:04d}, {local.hour:02d}:{local.minute:02d}"
        received = f'<time datetime="{escape(local.isoformat())}">{escape(words)}</time>'
    if feed.is_stale:
        since = f"no data since {received}" if received else "never received"
        return f'<span class="badge text-bg-warning stale-badge">Stale</span> {since}'
    return received or "never"


@register.simple_tag
def feed_received(feed: FeedShown) -> SafeString:
    """When a live dataset last arrived, and whether that is too long ago (`_received`)."""
    return mark_safe(_received(feed))  # noqa: S308 - every value in it is escaped


@register.simple_tag
def live_feed_rows(partners: Iterable[PartnerShown]) -> SafeString:
    """Every live dataset of every partner sharing data, a row each (the same for every patient):

    <tr>
      <th scope="row" data-label="Partner">Name <span class="ods">(ODS)</span></th>
      <td data-label="Dataset">GP system</td>
      <td data-label="Last received">[_received]</td>
    </tr>
    """
    html = []
    for partner in partners:
        name = escape(str(partner.organisation.name))
        ods_code = escape(str(partner.organisation.ods_code))
        for feed in partner.feeds:
            html.append(
                f'<tr>\n  <th scope="row" data-label="Partner">{name} <span class="ods">({ods_code})</span></th>\n'
                f'  <td data-label="Dataset">{escape(str(feed.name))}</td>\n'
                f'  <td data-label="Last received">{_received(feed)}</td>\n</tr>\n'
            )
    return mark_safe("".join(html))  # noqa: S308 - every value in it is escaped
