"""Writing one batch of mapped entries: one read of what is held, then COPY and one INSERT ... ON CONFLICT.

What always holds: a resource is one row per (partner, resource type, source id); a resource whose content hash
(and patient) matches the stored one is not written at all; a copy known to be older than the stored one
(meta.lastUpdated, then meta.versionId) never overwrites it and is counted as unchanged, because the record already
holds something newer from the same partner and nothing about it is wrong. Every entry of a batch is counted once,
as created, updated or unchanged.

Why COPY: an INSERT with parameters makes the driver quote every value into the SQL text, and a FHIR resource is
mostly characters that need quoting; that was most of the cost of a batch. The rows that need writing are copied
into a temporary staging table instead (COPY sends them as they are), and one INSERT ... SELECT moves them into
place. The older-copy and same-content rules are applied twice: in Python, so that unchanged resources are never
sent at all, and again in the ON CONFLICT clause, so that a row another run wrote after this batch read what was
held is still never overwritten by an older copy; the counts come from what the INSERT reports it did.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from records.ingest.fhir import is_older
from records.ingest.mapping import MappedEntry, MappedJson
from records.models import Feed, IngestRun, QuarantinedRecord, RecordEntry

_ENTRIES = RecordEntry._meta.db_table
# Written on insert, in this order; `_values` gives them in the same order.
_ENTRY_COLUMNS = (
    "patient_id",
    "organisation_id",
    "feed_id",
    "ingest_run_id",
    "section",
    "resource_type",
    "source_id",
    "source_version",
    "source_last_updated",
    "effective_at",
    "effective_end",
    "recorded_at",
    "code_system",
    "code",
    "display",
    "status",
    "summary",
    "resource",
    "content_hash",
    "is_sensitive",
    "is_confidential",
    "is_entered_in_error",
    "is_deleted_at_source",
    "created_at",
    "updated_at",
)
# Replaced when a newer or different copy arrives; the key and created_at are kept. A copy sent again after the
# source deleted the resource brings it back (is_deleted_at_source is written false).
_ENTRY_UPDATED = tuple(
    column
    for column in _ENTRY_COLUMNS
    if column not in {"organisation_id", "resource_type", "source_id", "created_at"}
)

# One lookup in the unique index per resource of the batch. The LIMIT keeps the planner from turning this into a
# join that reads every entry the partner holds, which it otherwise does while the table's statistics are stale
# (as they are during a first, large ingest), making each batch cost as much as the whole table. The organisation
# comes in with each key rather than as a constant: given a constant the statistics have not seen (a partner added
# since the table was last analysed), the planner takes it to hold about one entry and looks each key up in the
# organisation-only index, reading every entry of the partner once per key; measured by `make bench` on a table
# autovacuum had analysed, that made each batch of a first run slower than the one before (80 ms a batch at 5,000
# held). A per-key organisation is estimated at the average partner's share, so only the unique index is cheap.
_READ_HELD = f"""
SELECT wanted.resource_type, wanted.source_id, held.patient_id, held.content_hash, held.source_version,
    held.source_last_updated, held.is_deleted_at_source
FROM unnest(%s::text[], %s::text[], array_fill(%s::bigint, ARRAY[%s]))
    AS wanted (resource_type, source_id, organisation_id)
CROSS JOIN LATERAL (
    SELECT patient_id, content_hash, source_version, source_last_updated, is_deleted_at_source FROM {_ENTRIES}
    WHERE organisation_id = wanted.organisation_id AND resource_type = wanted.resource_type
        AND source_id = wanted.source_id
    LIMIT 1
) AS held
"""  # noqa: S608 - the table name is the model's

# The WHERE is the same-content rule and `fhir.is_older`, in SQL. RETURNING (xmax = 0) is true for a row the
# statement inserted and false for one it updated; a row the WHERE left as it was is not returned at all.
_ENTRY_CONFLICT = f"""
ON CONFLICT (organisation_id, resource_type, source_id) DO UPDATE
SET {", ".join(f"{column} = EXCLUDED.{column}" for column in _ENTRY_UPDATED)}
WHERE (held.content_hash, held.patient_id, held.is_deleted_at_source)
    IS DISTINCT FROM (EXCLUDED.content_hash, EXCLUDED.patient_id, EXCLUDED.is_deleted_at_source)
AND NOT CASE
    WHEN held.source_last_updated IS NOT NULL AND EXCLUDED.source_last_updated IS NOT NULL
        AND held.source_last_updated <> EXCLUDED.source_last_updated
        THEN EXCLUDED.source_last_updated < held.source_last_updated
    WHEN held.source_version ~ '^[0-9]+$' AND EXCLUDED.source_version ~ '^[0-9]+$'
        THEN EXCLUDED.source_version::numeric < held.source_version::numeric
    ELSE FALSE
END
RETURNING (xmax = 0)
"""


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # Patients whose record changed: their derived relationships must be worked out again.
    touched_patient_ids: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Held:
    patient_id: int
    content_hash: str
    source_version: str
    source_last_updated: datetime | None
    is_deleted_at_source: bool


def entries_upsert(
    feed: Feed,
    run: IngestRun,
    batch: Sequence[tuple[MappedEntry, int]],
    *,
    absent: Collection[tuple[str, str]] = (),
) -> BatchResult:
    """Create or update the entries of one batch of (mapped resource, patient id) pairs; count each one once.

    `absent` names (resource type, source id) keys the caller found no entry for earlier in the same run: they
    are not looked up again. Should another run have stored one since, the INSERT's conflict rules still apply.
    """
    result = BatchResult()
    if not batch:
        return result
    held = _held(feed, [pair for pair in batch if (pair[0].resource_type, pair[0].source_id) not in absent])
    now = timezone.now()
    rows: list[tuple[Any, ...]] = []
    seen: set[tuple[str, str]] = set()
    is_new = True  # every row to write is for a key found absent earlier in the run
    for mapped, patient_id in batch:
        key = (mapped.resource_type, mapped.source_id)
        stored = held.get(key)
        if key in seen:
            # Only content-derived ids repeat within a batch (named ids are de-duplicated by the pipeline), and
            # the same id means the same content.
            result.unchanged += 1
            continue
        seen.add(key)
        if stored is not None and (
            (
                stored.content_hash == mapped.content_hash
                and stored.patient_id == patient_id
                and not stored.is_deleted_at_source
            )
            or is_older(
                mapped.source_version,
                mapped.source_last_updated,
                stored.source_version,
                stored.source_last_updated,
            )
        ):
            result.unchanged += 1
            continue
        if stored is not None:
            result.touched_patient_ids.add(stored.patient_id)
        result.touched_patient_ids.add(patient_id)
        rows.append(_values(mapped, patient_id, feed, run, now))
        is_new = is_new and key in absent
    if rows:
        inserted, updated = (
            (len(rows), 0)
            if is_new and _copy_new(_ENTRIES, _ENTRY_COLUMNS, rows, binary=True)
            else _write(rows)
        )
        result.created += inserted
        result.updated += updated
        result.unchanged += len(rows) - inserted - updated
    return result


def _held(feed: Feed, batch: Sequence[tuple[MappedEntry, int]]) -> dict[tuple[str, str], _Held]:
    """What this partner already holds for the resources of the batch, by (resource type, source id)."""
    return entries_held(feed, {(mapped.resource_type, mapped.source_id) for mapped, _ in batch})


def entries_held(feed: Feed, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], _Held]:
    """What this partner holds for these (resource type, source id) keys, by key; one query."""
    if not wanted:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            _READ_HELD,
            [
                [resource_type for resource_type, _ in wanted],
                [source_id for _, source_id in wanted],
                feed.organisation_id,
                len(wanted),
            ],
        )
        return {
            (resource_type, source_id): _Held(patient_id, digest, version, last_updated, deleted)
            for resource_type, source_id, patient_id, digest, version, last_updated, deleted in cursor.fetchall()
        }


def _write(rows: list[tuple[Any, ...]]) -> tuple[int, int]:
    """Stage the rows and move them into place; (inserted, updated), as the database did it."""
    outcomes = [inserted for (inserted,) in _copy_insert(_ENTRIES, _ENTRY_COLUMNS, rows, _ENTRY_CONFLICT)]
    inserted = sum(outcomes)
    return inserted, len(outcomes) - inserted


def _copy_new(
    table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]], *, binary: bool = False
) -> bool:
    """COPY rows believed new straight into `table`; False, with nothing written, if one is not (a conflict).

    A first load is mostly batches in which nothing is held: COPY into the table itself saves staging them (for
    large values, storing them twice) and the INSERT ... SELECT. Another run of the same partner may have stored
    one of them since the run looked (the lock is per feed, the key per organisation); then the COPY fails under
    its savepoint, and the caller takes the path with the conflict rules.

    `binary` sends the rows in COPY's binary format, typed as the table's columns are now: no escaping of the
    large JSON text: the same values stored, 0.03 to 0.05 s less a Synthea first run (in means over six runs).
    """
    column_list = ", ".join(columns)
    copy_in = f"COPY {table} ({column_list}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            types = _column_types(cursor, table, columns) if binary else []
            with cursor.copy(copy_in) as copy:
                if types:
                    copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
    except (IntegrityError, psycopg.IntegrityError):
        return False
    return True


def _column_types(cursor: Any, table: str, columns: tuple[str, ...]) -> list[str]:
    """The PostgreSQL type of each of `columns` of `table`, as the catalog has it now."""
    cursor.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        [table],
    )
    types = dict(cursor.fetchall())
    return [types[column] for column in columns]


def _as_is(text: str) -> str:
    return text


# What the pipeline knows of each record it quarantines, in this order (`quarantined_insert`); every other column
# takes the model's default.
QUARANTINE_COLUMNS = (
    "reason",
    "detail",
    "resource_type",
    "source_id",
    "location",
    "raw_payload",
    "payload_hash",
    "nhs_number",
    "patient_reference",
    "created_at",
)
QuarantineRow = tuple[str, str, str, str, str, str, str, str, str, datetime]


def quarantined_insert(feed: Feed, run: IngestRun, rows: Sequence[QuarantineRow]) -> None:
    """Insert records quarantined by `run` of `feed`, given as QUARANTINE_COLUMNS values, as
    `bulk_create(..., ignore_conflicts=True)` inserts the same records made into model instances: the same rows, and
    a payload already pending for the same reason and feed skipped (the partial unique constraint), so that the one
    pending row stays the one to fix and replay.

    A run quarantines thousands of records (Synthea: 1,708 of unsupported types); a model instance each, and
    Django preparing every field of it, was most of the Python time of writing them. The columns the pipeline does
    not fill are prepared once, by Django, from one instance with the model's defaults (pending, among them).

    The skip that ON CONFLICT DO NOTHING makes is made first, here: a payload pending for the same reason, in the
    table or earlier in `rows`, is left out. The rest is copied straight into the table, without staging (a
    quarantined payload is often large, and staging stores it twice); should one conflict after all (written by
    something else since), the whole batch goes through staging and ON CONFLICT DO NOTHING instead.
    """
    if not rows:
        return
    template = QuarantinedRecord(feed=feed, ingest_run=run)
    columns, (defaults,) = _model_rows(QuarantinedRecord, [template])
    rest = [
        (column, value)
        for column, value in zip(columns, defaults, strict=True)
        if column not in QUARANTINE_COLUMNS
    ]
    names = (*QUARANTINE_COLUMNS, *(column for column, _ in rest))
    tail = tuple(value for _, value in rest)
    skipped = _pending(feed, {(row[0], row[6]) for row in rows}) if template.status == _PENDING else set()
    fresh = []
    for row in rows:
        key = (row[0], row[6])  # reason, payload hash
        if key not in skipped:
            skipped.add(key)
            fresh.append(row + tail)
    table = QuarantinedRecord._meta.db_table
    if fresh and not _copy_new(table, names, fresh):
        _copy_insert(table, names, fresh, "ON CONFLICT DO NOTHING")


_PENDING = QuarantinedRecord.Status.PENDING
# The (reason, payload hash) pairs pending for a feed, one lookup each in the unique index that makes them pending
# once (quarantine_pending_once).
_READ_PENDING = f"""
SELECT wanted.reason, wanted.payload_hash
FROM unnest(%s::text[], %s::text[]) AS wanted (reason, payload_hash)
WHERE EXISTS (
    SELECT 1 FROM {QuarantinedRecord._meta.db_table} AS held
    WHERE held.feed_id = %s AND held.reason = wanted.reason AND held.payload_hash = wanted.payload_hash
        AND held.status = '{_PENDING}'
)
"""  # noqa: S608 - the table name is the model's, the status a constant


def _pending(feed: Feed, wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (reason, payload hash) pairs are pending for `feed`; one query."""
    with connection.cursor() as cursor:
        cursor.execute(
            _READ_PENDING, [[reason for reason, _ in wanted], [digest for _, digest in wanted], feed.pk]
        )
        return {(reason, digest) for reason, digest in cursor.fetchall()}


def _model_rows(
    model: type[models.Model], objects: Iterable[models.Model]
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Every concrete column but the primary key, and each object's values prepared as Django would save them."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    rows = [
        tuple(f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields) for obj in objects
    ]
    return tuple(str(f.column) for f in fields), rows


def _copy_insert(
    table: str, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]], conflict: str
) -> list[tuple[Any, ...]]:
    """COPY rows into a temporary twin of `table`, then INSERT ... SELECT them with the `conflict` clause.

    Returns what the INSERT returns (nothing unless `conflict` ends in RETURNING). The twin is emptied before
    each use and dropped when the transaction ends, so this runs in a transaction even when called outside one.
    """
    # Every name below comes from a model or a constant of this module, never from input.
    staging = f"ingest_staging_{table}"
    column_list = ", ".join(columns)
    twin = f"SELECT {column_list} FROM {table} WITH NO DATA"  # noqa: S608
    move = f"INSERT INTO {table} AS held ({column_list}) SELECT {column_list} FROM {staging} {conflict}"  # noqa: S608
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DROP AS {twin}")
        cursor.execute(f"TRUNCATE {staging}")
        with cursor.copy(f"COPY {staging} ({column_list}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(move)
        return cursor.fetchall() if cursor.description else []


def _values(
    mapped: MappedEntry, patient_id: int, feed: Feed, run: IngestRun, now: datetime
) -> tuple[Any, ...]:
    return (
        patient_id,
        feed.organisation_id,
        feed.pk,
        run.pk,
        mapped.section,
        mapped.resource_type,
        mapped.source_id,
        mapped.source_version,
        mapped.source_last_updated,
        mapped.effective_at,
        mapped.effective_end,
        mapped.recorded_at,
        mapped.code_system,
        mapped.code,
        mapped.display,
        mapped.status,
        mapped.summary,
        # The canonical JSON the content hash was taken of is the same JSONB value as what Django's JSONField
        # writes (the standard encoder, non-ASCII escaped): JSONB keeps neither key order, spacing nor escapes.
        # Jsonb, so that a binary COPY sends it as JSONB; a text COPY sends the same text.
        Jsonb(mapped.canonical, dumps=_as_is) if isinstance(mapped, MappedJson) else Jsonb(mapped.resource),
        mapped.content_hash,
        mapped.is_sensitive,
        mapped.is_confidential,
        mapped.is_entered_in_error,
        False,
        now,
        now,
    )
