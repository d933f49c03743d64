"""What a document in the record says, made safe to show: the text of a letter, a partner's HTML or XHTML made
harmless, or a PDF handed to the browser as it came.

Pure functions of the stored FHIR resource (a DocumentReference, a Composition, or any resource filed under
Documents): nothing is fetched, not even an attachment's `url`. What always holds:
- markup from a partner (an HTML attachment, a Composition section's or a resource's narrative `text.div`) passes
  through nh3 (the ammonia sanitiser) with an allow-list of text and structure elements: no script or style and
  nothing inside them, no event or style attribute, no class or id, no image or form, and links keep only an http,
  https or mailto address (a `javascript:` link keeps its words and loses its address), so nothing in a letter can
  run, load anything or restyle the page; headings start at level 3, under the page's own;
- plain text is returned as text, for the template to escape;
- a PDF is offered only when its bytes begin as a PDF does, under a file name of letters, digits and hyphens.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import nh3
from django.utils.text import slugify

# Text, lists, tables and emphasis: what letters are made of. h1 and h2 belong to the page around the letter.
_TAGS = frozenset(
    {
        "p", "br", "div", "span", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd",
        "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "strong", "em", "b", "i", "u", "s",
        "sub", "sup", "small", "blockquote", "pre", "code", "hr", "a", "abbr",
    }
)  # fmt: skip
_ATTRIBUTES = {"a": {"href"}, "th": {"colspan", "rowspan", "scope"}, "td": {"colspan", "rowspan"}}
_URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Dropped with everything inside them, not unwrapped to their text.
_DROPPED_WITH_CONTENT = frozenset({"script", "style", "template", "title", "head"})
_PDF_MAGIC = b"%PDF-"


def markup_clean(markup: str) -> str:
    """A partner's HTML or XHTML fragment with everything but text and structure removed."""
    return nh3.clean(
        markup,
        tags=set(_TAGS),
        clean_content_tags=set(_DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
        url_schemes=set(_URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


@dataclass(frozen=True)
class Pdf:
    filename: str
    data: bytes


@dataclass(frozen=True)
class Part:
    """One part of the document, in reading order: a heading, and either plain text or cleaned markup."""

    title: str = ""
    text: str = ""
    markup: str = ""
    level: int = 2


@dataclass(frozen=True)
class DocumentContent:
    """What the page shows of the document, and the PDF it may offer."""

    parts: list[Part] = field(default_factory=list)
    pdf: Pdf | None = None
    # The document's content is an address at the partner (a Binary we do not hold): said, never fetched.
    held_by_partner: bool = False


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _media_type(attachment: dict[str, Any]) -> tuple[str, str]:
    """The attachment's media type, lower case, and its charset (UTF-8 unless it says otherwise)."""
    main, _, parameters = str(attachment.get("contentType") or "").partition(";")
    charset = "utf-8"
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip().strip('"')
    return main.strip().lower(), charset


def _decoded(attachment: dict[str, Any]) -> bytes | None:
    data = attachment.get("data")
    if not isinstance(data, str) or not data:
        return None
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None


def _text_of(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def pdf_filename(title: str) -> str:
    return f"{slugify(title)[:80].strip('-') or 'document'}.pdf"


def _narrative(resource: dict[str, Any]) -> str:
    div = _object(resource.get("text")).get("div")
    return markup_clean(div) if isinstance(div, str) else ""


def _composition_parts(sections: list[Any], level: int) -> list[Part]:
    parts: list[Part] = []
    for section in sections:
        section = _object(section)
        title = str(section.get("title") or "")
        markup = _narrative(section)
        if title or markup:
            parts.append(Part(title=title, markup=markup, level=min(level, 6)))
        parts += _composition_parts(_list(section.get("section")), level + 1)
    return parts


def _attachments_read(resource: dict[str, Any], title: str) -> DocumentContent:
    """A DocumentReference's attachments: the first readable one shown, a PDF offered, an address only said."""
    parts: list[Part] = []
    pdf: Pdf | None = None
    addressed = False
    for content in _list(resource.get("content")):
        attachment = _object(_object(content).get("attachment"))
        media_type, charset = _media_type(attachment)
        data = _decoded(attachment)
        if data is None:
            addressed = addressed or bool(attachment.get("url"))
            continue
        if media_type == "application/pdf" and pdf is None and data.startswith(_PDF_MAGIC):
            pdf = Pdf(filename=pdf_filename(str(attachment.get("title") or title)), data=data)
        elif media_type in ("text/html", "application/xhtml+xml") and not parts:
            parts.append(Part(markup=markup_clean(_text_of(data, charset))))
        elif media_type == "text/plain" and not parts:
            parts.append(Part(text=_text_of(data, charset)))
    if not parts and pdf is None and (narrative := _narrative(resource)):
        parts.append(Part(markup=narrative))
    return DocumentContent(parts=parts, pdf=pdf, held_by_partner=addressed and not parts and pdf is None)


def document_read(resource: dict[str, Any], title: str) -> DocumentContent:
    """What a stored document says, ready for the page: see the module's docstring for what always holds."""
    if resource.get("resourceType") == "DocumentReference":
        return _attachments_read(resource, title)
    parts = []
    if narrative := _narrative(resource):
        parts.append(Part(markup=narrative))
    if resource.get("resourceType") == "Composition":
        parts += _composition_parts(_list(resource.get("section")), 2)
    return DocumentContent(parts=parts)
