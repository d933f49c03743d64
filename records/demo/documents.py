"""The demo's documents: letters as partners send them, in the three forms the document page reads.

A `DocumentReference` carries its letter inline, base64 in `content[].attachment.data`: as plain text, as HTML
(with headings, a list and a table, as a trust's letter template makes them), or as a PDF made here with fpdf2.
Every PDF is a function of its text and its date alone, so the demo's files stay byte-identical from one build to
the next. Nothing here is a `url` to fetch: the demo holds what it shows.
"""

from __future__ import annotations

import base64
from datetime import datetime
from html import escape
from typing import Any

from fpdf import FPDF

from records.demo.resources import ResourceBuilder, instant

TEXT = "text"
HTML = "html"
PDF = "pdf"


def _attachment(content_type: str, title: str, written: datetime, data: bytes) -> dict[str, Any]:
    return {
        "attachment": {
            "contentType": content_type,
            "language": "en-GB",
            "title": title,
            "creation": instant(written),
            "data": base64.b64encode(data).decode("ascii"),
        }
    }


def letter_html(title: str, paragraphs: list[str], actions: list[str]) -> str:
    """A letter as a trust's template writes it: a heading, the narrative, and the actions as a list."""
    body = "".join(f"<p>{escape(paragraph)}</p>" for paragraph in paragraphs)
    items = "".join(f"<li>{escape(action)}</li>" for action in actions)
    return (
        f'<!DOCTYPE html><html lang="en-GB"><head><title>{escape(title)}</title></head><body>'
        f"<h3>{escape(title)}</h3>{body}<h4>Actions for the GP</h4><ul>{items}</ul></body></html>"
    )


def letter_pdf(title: str, paragraphs: list[str], written: datetime) -> bytes:
    """A one-page PDF of the letter, in a core font (no font files needed), dated by the letter itself."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(written)
    pdf.set_title(title)
    pdf.set_author("sharedcare demo")
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=14)
    pdf.multi_cell(0, 8, _latin(title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", size=11)
    for paragraph in paragraphs:
        pdf.multi_cell(0, 6, _latin(paragraph), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    return bytes(pdf.output())


def _latin(text: str) -> str:
    # The core fonts know Latin-1 only; the demo's letters are plain English, so nothing is lost in practice.
    return text.encode("latin-1", errors="replace").decode("latin-1")


def attachments(
    forms: tuple[str, ...], title: str, paragraphs: list[str], actions: list[str], written: datetime
) -> list[dict[str, Any]]:
    """The letter in each of `forms`, in that order: `TEXT`, `HTML`, `PDF`."""
    made: list[dict[str, Any]] = []
    for form in forms:
        if form == TEXT:
            text = "\n\n".join([*paragraphs, *actions])
            made.append(_attachment("text/plain", title, written, text.encode()))
        elif form == HTML:
            html = letter_html(title, paragraphs, actions)
            made.append(_attachment("text/html; charset=utf-8", title, written, html.encode()))
        elif form == PDF:
            made.append(
                _attachment("application/pdf", title, written, letter_pdf(title, paragraphs, written))
            )
        else:
            raise ValueError(f"unknown letter form {form!r}")
    return made


def document_reference(
    builder: ResourceBuilder,
    key: str,
    *,
    type_: dict[str, Any],
    title: str,
    written: datetime,
    encounter: str,
    period: dict[str, str],
    content: list[dict[str, Any]],
) -> str:
    """Add one letter, with its content in every form given, and return its fullUrl."""
    return builder.add(
        "DocumentReference",
        key,
        {
            "status": "current",
            "docStatus": "final",
            "type": type_,
            "subject": builder.subject,
            "date": instant(written),
            "author": [builder.organisation],
            "description": title,
            "content": content,
            "context": {"encounter": [{"reference": encounter}], "period": period},
        },
        updated=written,
    )
