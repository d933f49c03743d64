"""The floor: a plain PostgreSQL COPY of the record-entry rows a run wrote, into an empty twin of their table."""

from __future__ import annotations

import time

from django.db import connection, transaction

from records.bench.rows import Row
from records.models import RecordEntry

_FLOOR_TABLE = "bench_copy_floor"


def _columns() -> list[str]:
    return [str(field.column) for field in RecordEntry._meta.concrete_fields if not field.primary_key]


def floor_table_create() -> None:
    """An empty table like record entries: same columns, defaults, indexes, constraints and foreign keys."""
    table = RecordEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {_FLOOR_TABLE} (LIKE {table} INCLUDING ALL)")
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [table],
        )
        for number, (definition,) in enumerate(cursor.fetchall()):
            cursor.execute(
                f"ALTER TABLE {_FLOOR_TABLE} ADD CONSTRAINT {_FLOOR_TABLE}_fk{number} {definition}"
            )


def copy_floor(name: str, feed_ids: list[int]) -> Row:
    """COPY the entries of `feed_ids` (binary, as PostgreSQL sent them) into the empty twin table; time the load.

    The rows are fetched first and not timed, so the floor is the server's own cost of storing them: parsing
    JSONB, writing the heap and both indexes, checking the unique key and the foreign keys, and committing.
    """
    columns = ", ".join(_columns())
    select = f"SELECT {columns} FROM {RecordEntry._meta.db_table} WHERE feed_id = ANY(%s)"  # noqa: S608
    buffer = bytearray()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {_FLOOR_TABLE}")
        with cursor.copy(f"COPY ({select}) TO STDOUT (FORMAT BINARY)", [feed_ids]) as copy:
            for chunk in copy:
                buffer += chunk
        data = bytes(buffer)
        rows = RecordEntry.objects.filter(feed_id__in=feed_ids).count()
        started = time.perf_counter()
        with (
            transaction.atomic(),
            cursor.copy(f"COPY {_FLOOR_TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.write(data)
        seconds = time.perf_counter() - started
    return Row(f"COPY floor: {name} entries", rows, rows, seconds)
