"""The codes whose presence makes a record entry sensitive (DESIGN.md §9, sensitive exclusions).

England withholds four kinds of information from shared records unless the viewer is entitled to it: assisted
fertilisation, gender reassignment, sexually transmitted infection and termination of pregnancy. Each set is a list
of `SensitiveCode` rows that the back office can extend, seeded with a curated default (the CSV files in
`sensitive_data/`, every SNOMED CT id checked against public value sets; docs/sensitive-data.md says what they cover).

What always holds:
- a SNOMED CT code matches itself and, where its row says so, every concept below it in `ConceptIsA` (curated
  is-a edges, plus a SNOMED CT release's relationships once `manage.py snomed_hierarchy_load` has run);
- an ICD-10 code matches as a prefix, with or without its dot (B20 matches B20.1 and B201), under either ICD-10
  system; a Read v2 or CTV3 code matches exactly (a Read v2 code sent with its two-digit term id is the same code);
- a process matches with the sets as it last loaded them (`sensitive_codes`): the curated default until the first
  `sensitive_codes_refresh`, which every ingest run calls once before it maps anything, and which reloads only when
  the codes or the hierarchy changed;
- `sensitive_flags_refresh` makes every stored entry's `is_sensitive` what ingesting it now would make it.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from consent.models import ConceptIsA, SensitiveCode
from records.models import RecordEntry

SNOMED_CT = "http://snomed.info/sct"
ICD_10 = "http://hl7.org/fhir/sid/icd-10"
ICD_10_UK = "http://hl7.org/fhir/sid/icd-10-uk"
ICD_10_SYSTEMS = frozenset({ICD_10, ICD_10_UK})
READ_V2 = "http://read.info/readv2"
CTV3 = "http://read.info/ctv3"
CURATED_SOURCE = "curated"
DATA_DIRECTORY = Path(__file__).with_name("sensitive_data")
REFRESH_BATCH = 2000

# The start of every string-valued "code" member in a resource's JSON text, up to its closing quote or its first
# backslash (the second group: an escape, which the prefilter does not decode). A Coding's code is always one of
# them, whatever else the text holds: a quote inside a string value is escaped, so no value can forge a "code" key.
_CODE_VALUE = re.compile(r'"code"\s*:\s*"([^"\\]*)(\\?)')


@dataclass(frozen=True)
class DefaultCode:
    """One code of the curated default, as `sensitive_data/` lists it."""

    sensitive_set: str
    system: str
    code: str
    display: str


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA_DIRECTORY / name).open(newline="", encoding="utf-8") as data:
        return list(csv.DictReader(data))


@functools.cache
def default_codes() -> tuple[DefaultCode, ...]:
    """The curated default: SNOMED CT concepts, ICD-10 prefixes and Read v2 codes of the four sets."""
    codes = [
        DefaultCode(row["sensitive_set"], SNOMED_CT, row["code"], row["display"])
        for row in _rows("snomed.csv")
    ]
    codes += [
        DefaultCode(row["sensitive_set"], ICD_10, row["code"], row["display"]) for row in _rows("icd10.csv")
    ]
    codes += [
        DefaultCode(row["sensitive_set"], row["system"], row["code"], row["display"])
        for row in _rows("read.csv")
    ]
    return tuple(codes)


@functools.cache
def default_is_a() -> tuple[tuple[str, str], ...]:
    """The curated SNOMED CT is-a edges, (child, parent), that reach common descendants without a release."""
    return tuple((row["child"], row["parent"]) for row in _rows("snomed_is_a.csv"))


def descendants_closure(roots: Iterable[str], edges: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The roots and every concept below them through the (child, parent) edges."""
    children: dict[str, list[str]] = {}
    for child, parent in edges:
        children.setdefault(parent, []).append(child)
    found = set(roots)
    waiting = list(found)
    while waiting:
        for child in children.get(waiting.pop(), ()):
            if child not in found:
                found.add(child)
                waiting.append(child)
    return frozenset(found)


def icd_10_normal(code: str) -> str:
    """An ICD-10 code as prefixes compare: without whitespace or dots, in capitals (B20.1 and b201 are B201)."""
    return code.strip().replace(".", "").upper()


def read_v2_concept(code: str) -> str:
    """A Read v2 code without its two-digit term id (43C3.11 is 43C3.), which names the same concept."""
    code = code.strip()
    return code[:5] if len(code) == 7 and code[5:].isdigit() else code


def codings(node: object) -> Iterator[tuple[str, str]]:
    """(system, code) of every Coding-shaped object anywhere in a resource, extensions and contained included."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            system, code = current.get("system"), current.get("code")
            if isinstance(system, str) and isinstance(code, str):
                yield system, code
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def text_may_hold(canonical: str, may_match: Callable[[str], bool]) -> bool:
    """False only when no string-valued "code" member of a resource's JSON text is one `may_match` accepts; a value
    with an escape in it always counts."""
    return any(escaped or may_match(value) for value, escaped in _CODE_VALUE.findall(canonical))


@dataclass(frozen=True)
class SensitiveCodes:
    """The sensitive sets expanded for matching: SNOMED CT with its descendants, ICD-10 prefixes, Read codes."""

    snomed: frozenset[str]
    icd_10_prefixes: frozenset[str]
    read_v2: frozenset[str]
    ctv3: frozenset[str]
    # What the database held when these were loaded (`sensitive_codes_version`); empty for the curated default.
    version: tuple[object, ...] = ()

    @functools.cached_property
    def _exact(self) -> frozenset[str]:
        return self.snomed | self.read_v2 | self.ctv3

    @functools.cached_property
    def _prefix_lengths(self) -> tuple[int, ...]:
        return tuple(sorted({len(prefix) for prefix in self.icd_10_prefixes}))

    def _icd_10_matches(self, code: str) -> bool:
        normal = icd_10_normal(code)
        return any(
            normal[:length] in self.icd_10_prefixes
            for length in self._prefix_lengths
            if len(normal) >= length
        )

    def matches(self, system: str, code: str) -> bool:
        """True when `code` of `system` is in one of the sets."""
        code = code.strip()
        if system == SNOMED_CT:
            return code in self.snomed
        if system in ICD_10_SYSTEMS:
            return self._icd_10_matches(code)
        if system == READ_V2:
            return read_v2_concept(code) in self.read_v2
        if system == CTV3:
            return code in self.ctv3
        return False

    @functools.cached_property
    def _icd_10_head_length(self) -> int:
        return min((len(prefix) for prefix in self.icd_10_prefixes), default=0)

    @functools.cached_property
    def _icd_10_heads(self) -> frozenset[str]:
        return frozenset(prefix[: self._icd_10_head_length] for prefix in self.icd_10_prefixes)

    def may_match(self, code: str) -> bool:
        """False only when `code` is in no set under any system (what `matches` accepts, this accepts)."""
        code = code.strip()
        if code in self._exact:
            return True
        if len(code) == 7 and code[:5] in self.read_v2:
            return True
        # Most codes of other systems share no head with an ICD-10 prefix and end here.
        head = icd_10_normal(code)[: self._icd_10_head_length]
        return head in self._icd_10_heads and self._icd_10_matches(code)

    def resource_is_sensitive(self, resource: Mapping[str, Any], canonical: str | None = None) -> bool:
        """True when a coding anywhere in the resource carries a code of the sets.

        Given the resource's JSON text, a resource none of whose "code" values is in any set is answered without
        walking its codings: every coding's code is one of those values.
        """
        if canonical is not None and not text_may_hold(canonical, self.may_match):
            return False
        return any(self.matches(system, code) for system, code in codings(resource))


def _expanded(
    rows: Iterable[tuple[str, str, bool]], snomed: frozenset[str], version: tuple[object, ...]
) -> SensitiveCodes:
    by_system: dict[str, set[str]] = {}
    for system, code, _include_descendants in rows:
        by_system.setdefault(system, set()).add(code.strip())
    icd_10 = set().union(*(by_system.get(system, set()) for system in ICD_10_SYSTEMS))
    return SensitiveCodes(
        snomed=snomed,
        icd_10_prefixes=frozenset(icd_10_normal(code) for code in icd_10 if icd_10_normal(code)),
        read_v2=frozenset(read_v2_concept(code) for code in by_system.get(READ_V2, set())),
        ctv3=frozenset(by_system.get(CTV3, set())),
        version=version,
    )


def default_sensitive_codes() -> SensitiveCodes:
    """The curated default, expanded through the curated is-a edges, without the database."""
    rows = [(code.system, code.code, True) for code in default_codes()]
    roots = (code.code for code in default_codes() if code.system == SNOMED_CT)
    return _expanded(rows, descendants_closure(roots, default_is_a()), ())


# The sets under the names of the four national exclusions: the curated default's SNOMED CT concepts and their
# curated descendants.
SENSITIVE_SETS: dict[str, frozenset[str]] = {
    choice.value: descendants_closure(
        (
            code.code
            for code in default_codes()
            if code.system == SNOMED_CT and code.sensitive_set == choice.value
        ),
        default_is_a(),
    )
    for choice in SensitiveCode.Set
}


def sensitive_codes_version() -> tuple[object, ...]:
    """What decides whether the loaded sets are stale, in one cheap query: a digest of every SensitiveCode (a small
    table) and the size and newest id of ConceptIsA (written only by the seed and the load command)."""
    codes, edges = SensitiveCode._meta.db_table, ConceptIsA._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT
                (SELECT md5(coalesce(string_agg(
                    system || ' ' || code || ' ' || include_descendants::text, ',' ORDER BY id), ''))
                 FROM {codes}),
                (SELECT count(*) FROM {edges}),
                (SELECT coalesce(max(id), 0) FROM {edges})
            """  # noqa: S608 - table names from the models, no input
        )
        row = cursor.fetchone()
    return tuple(row or ())


def sensitive_codes_load(version: tuple[object, ...] | None = None) -> SensitiveCodes:
    """The sets as the database holds them, SNOMED CT roots expanded through ConceptIsA by a recursive query."""
    codes, edges = SensitiveCode._meta.db_table, ConceptIsA._meta.db_table
    with connection.cursor() as cursor:
        # UNION, not UNION ALL: a concept reached twice (or a cycle in a hand-made hierarchy) is kept once.
        cursor.execute(
            f"""
            WITH RECURSIVE below(code) AS (
                SELECT btrim(code) FROM {codes} WHERE system = %(snomed)s AND include_descendants
              UNION
                SELECT edge.child FROM {edges} AS edge JOIN below ON edge.parent = below.code
            )
            SELECT code FROM below
            UNION
            SELECT btrim(code) FROM {codes} WHERE system = %(snomed)s AND NOT include_descendants
            """,  # noqa: S608 - table names from the models, no input
            {"snomed": SNOMED_CT},
        )
        snomed = frozenset(code for (code,) in cursor.fetchall())
    rows = SensitiveCode.objects.exclude(system=SNOMED_CT).values_list(
        "system", "code", "include_descendants"
    )
    return _expanded(rows, snomed, sensitive_codes_version() if version is None else version)


class _Loaded:
    codes: SensitiveCodes | None = None


def sensitive_codes() -> SensitiveCodes:
    """The sets this process matches with: as `sensitive_codes_refresh` last loaded them, or the curated default
    before it first ran. Never touches the database, so forked validation workers can call it."""
    if _Loaded.codes is None:
        _Loaded.codes = default_sensitive_codes()
    return _Loaded.codes


def sensitive_codes_refresh() -> SensitiveCodes:
    """Bring this process's sets up to date with the database: one query when nothing changed, a reload otherwise."""
    version = sensitive_codes_version()
    if _Loaded.codes is None or _Loaded.codes.version != version:
        _Loaded.codes = sensitive_codes_load(version)
    return _Loaded.codes


def sensitive_defaults_seed() -> None:
    """Add the curated default's codes and is-a edges that are missing; never change or remove a row.

    Runs after every migrate (and after a test database is flushed). A back-office row for the same code stays as
    the back office left it.
    """
    existing = set(SensitiveCode.objects.values_list("system", "code"))
    SensitiveCode.objects.bulk_create(
        [
            SensitiveCode(
                sensitive_set=code.sensitive_set,
                system=code.system,
                code=code.code,
                display=code.display,
                # Only SNOMED CT has a hierarchy; ICD-10 codes match as prefixes and Read codes exactly.
                include_descendants=code.system == SNOMED_CT,
                is_default=True,
            )
            for code in default_codes()
            if (code.system, code.code) not in existing
        ]
    )
    ConceptIsA.objects.bulk_create(
        [ConceptIsA(child=child, parent=parent, source=CURATED_SOURCE) for child, parent in default_is_a()],
        ignore_conflicts=True,
    )


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _candidate_ids(codes: SensitiveCodes, after: int, limit: int) -> list[int]:
    """Ids after `after` of entries flagged sensitive or with a "code" value anywhere that may be in the sets."""
    entries = RecordEntry._meta.db_table
    # ICD-10 prefixes are letters and digits; LIKE's own wildcards are escaped all the same.
    like = [_like_escaped(prefix) + "%" for prefix in codes.icd_10_prefixes]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT entry.id FROM {entries} AS entry
            WHERE entry.id > %(after)s AND (entry.is_sensitive OR EXISTS (
                SELECT 1 FROM (
                    SELECT btrim(found #>> '{{}}', E' \\t\\n\\r') AS code
                    FROM jsonb_path_query(entry.resource, 'lax $.**.code') AS found
                    WHERE jsonb_typeof(found) = 'string'
                ) AS value
                WHERE value.code = ANY(%(exact)s)
                   OR left(value.code, 5) = ANY(%(read_v2)s)
                   OR upper(replace(value.code, '.', '')) LIKE ANY(%(like)s)
            ))
            ORDER BY entry.id
            LIMIT %(limit)s
            """,  # noqa: S608 - table name from the model, no input
            {
                "after": after,
                "exact": sorted(codes.snomed | codes.read_v2 | codes.ctv3),
                "read_v2": sorted(codes.read_v2),
                "like": like,
                "limit": limit,
            },
        )
        return [entry_id for (entry_id,) in cursor.fetchall()]


def sensitive_flags_refresh(*, batch_size: int = REFRESH_BATCH) -> int:
    """Recompute `RecordEntry.is_sensitive` of every stored entry that mentions a code of the sets (or is flagged),
    with the sets as the database holds them now; return how many entries changed.

    Entries go in batches, each in its own transaction, found by a query over every "code" value of their resources
    and then checked exactly, coding by coding, as ingestion checks them. Safe to run twice: a second run changes
    nothing.
    """
    codes = sensitive_codes_refresh()
    changed = 0
    after = 0
    while ids := _candidate_ids(codes, after, batch_size):
        after = ids[-1]
        with transaction.atomic():
            flags = RecordEntry.objects.filter(pk__in=ids).values_list("pk", "is_sensitive", "resource")
            now_sensitive: list[int] = []
            now_not: list[int] = []
            for entry_id, was_sensitive, resource in flags:
                is_sensitive = codes.resource_is_sensitive(resource)
                if is_sensitive != was_sensitive:
                    (now_sensitive if is_sensitive else now_not).append(entry_id)
            changed += RecordEntry.objects.filter(pk__in=now_sensitive).update(is_sensitive=True)
            changed += RecordEntry.objects.filter(pk__in=now_not).update(is_sensitive=False)
    return changed
