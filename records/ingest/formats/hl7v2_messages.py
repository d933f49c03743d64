"""HL7 v2 on the wire: decoding a file, splitting it into messages, and tolerant access to a parsed message.

Parsing is python-hl7's (`hl7`); what the segments mean is `hl7v2`'s business. Nothing here knows about ADT.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import hl7

from records.ingest.items import Rejection, undecodable_detail, unreadable

# Character sets MSH-18 may declare that are read as Latin-1 when the bytes are not UTF-8.
LATIN_1_NAMES = frozenset({"8859/1", "8859/15", "ISO IR100", "ISO-8859-1", "ISO_8859-1", "LATIN1"})
_SEGMENT_BREAK = re.compile(r"\r\n|\n|\r|\x1c")
_BATCH_SEGMENTS = frozenset({"FHS", "BHS", "BTS", "FTS"})


# A field as plain values: its repetitions, each a list of components, each a list of subcomponents.
Field = list[list[list[str]]]


class Message:
    """One parsed message with tolerant access by position: absent fields, components and repetitions are ""."""

    def __init__(self, text: str) -> None:
        parsed = hl7.parse(text)
        self.segments: dict[str, list[list[Field]]] = {}
        for segment in parsed:
            name = str(segment[0]).strip().upper()
            # MSH-1 and MSH-2 are the separators themselves: there is nothing in them to unescape.
            first = 3 if name == "MSH" else 1
            fields = [[[[str(segment[index])]]] for index in range(min(first, len(segment)))]
            fields += [self._plain(parsed, segment[index]) for index in range(first, len(segment))]
            self.segments.setdefault(name, []).append(fields)
        if "MSH" not in self.segments:
            raise ValueError("the message has no MSH segment")

    @staticmethod
    def _plain(parsed: Any, field: Any) -> Field:
        repetitions: Field = []
        for repetition in field:
            if isinstance(repetition, str):
                repetitions.append([[str(parsed.unescape(repetition))]])
                continue
            components = []
            for component in repetition:
                if isinstance(component, str):
                    components.append([str(parsed.unescape(component))])
                else:
                    components.append([str(parsed.unescape(str(part))) for part in component])
            repetitions.append(components)
        return repetitions

    def has(self, segment: str) -> bool:
        return segment in self.segments

    def field(self, segment: str, number: int) -> Field:
        found = self.segments.get(segment)
        if not found or number >= len(found[0]):
            return []
        return found[0][number]

    def value(self, segment: str, number: int, component: int = 1, subcomponent: int = 1) -> str:
        repetitions = self.field(segment, number)
        return part(repetitions[0], component, subcomponent) if repetitions else ""


def part(repetition: list[list[str]], component: int, subcomponent: int = 1) -> str:
    """One component (or subcomponent) of one repetition, trimmed; "" when absent."""
    if component > len(repetition) or subcomponent > len(repetition[component - 1]):
        return ""
    return repetition[component - 1][subcomponent - 1].strip()


def whole(repetition: list[list[str]], component: int) -> str:
    """A component with its subcomponents joined, e.g. SAD street address parts."""
    if component > len(repetition):
        return ""
    return " ".join(part.strip() for part in repetition[component - 1] if part.strip())


def decode(location: str, data: bytes) -> str | Rejection:
    """The file as text: UTF-8 (a byte order mark allowed), or Latin-1 when MSH-18 declares it; else a rejection."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        declared = _declared_character_set(data)
        if declared.upper() in LATIN_1_NAMES:
            return data.decode("latin-1")
        said = f" MSH-18 declares {declared!r}." if declared else ""
        return unreadable(
            location, undecodable_detail(data, error) + said, data.decode("utf-8", errors="replace")
        )


def _declared_character_set(data: bytes) -> str:
    start = data.find(b"MSH")
    if start < 0 or len(data) < start + 4:
        return ""
    header = _SEGMENT_BREAK.split(data[start:].decode("latin-1"), maxsplit=1)[0]
    fields = header.split(header[3])
    return fields[17].split(header[4:5] or "^")[0].strip() if len(fields) > 17 else ""


def split_messages(text: str) -> Iterator[tuple[int, str]]:
    """(line of its MSH, message text with CR segment breaks) for each message; text before any MSH is line 0.

    MLLP framing (0x0b before a message, 0x1c 0x0d after it) and batch envelope segments are dropped.
    """
    current: list[str] = []
    first_line = 0
    for number, line in enumerate(_SEGMENT_BREAK.split(text.replace("\x0b", "")), start=1):
        segment = line.strip("\x00 \t")
        if not segment or segment[:3] in _BATCH_SEGMENTS:
            continue
        if segment.startswith("MSH"):
            if current:
                yield first_line, "\r".join(current)
            current, first_line = [segment], number
        elif current or first_line == 0:
            current.append(segment)
    if current:
        yield first_line, "\r".join(current)
