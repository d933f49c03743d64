"""The access events table, range-partitioned by month on `occurred_at`: converting it, adding months, and finding
the months a purge may drop whole.

What always holds, once converted:
- `audit_accessevent` is a partitioned table keyed (id, occurred_at), with one partition per calendar month (UTC)
  named `audit_accessevent_yYYYYmMM` and a default partition, so an append never fails for want of a month;
- ids keep coming from one sequence, going on after the last event copied, so the chain's order is unchanged;
- every trigger the table had is on the parent; row triggers (append-only) are cloned by PostgreSQL to every
  partition, now and later, and statement triggers (no TRUNCATE) are put on each partition by whatever creates it,
  named `partition_<the parent's trigger>`;
- every index the table had that backs no constraint is rebuilt on the parent; the hash stays unique together with
  `occurred_at` (PostgreSQL's rule for a partitioned table), and the chain's check finds any repeated hash;
- foreign keys to the events (the alerts') are dropped, since they may only reference the whole key: the purge,
  which stops before open alerts and removes reviewed ones with their events, keeps what they kept.

Tables are named unqualified in the purge and qualified by `schema` in the conversion, so both work on another
schema (the tests convert a scratch copy).
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connection
from psycopg import sql

EVENTS = "audit_accessevent"
MONTH_NAME = re.compile(rf"^{EVENTS}_y(\d{{4}})m(\d{{2}})$")
PARTITION_TRIGGER_PREFIX = "partition_"
_ON_TABLE = re.compile(rf" ON (?:\S+\.)?\"?{EVENTS}\"? ")


class PartitionRefused(Exception):
    """The conversion or extension cannot run as asked; nothing was changed."""


@dataclass(frozen=True)
class _Trigger:
    name: str
    definition: str
    is_row: bool


def _quoted(*parts: str) -> str:
    connection.ensure_connection()
    return sql.Identifier(*parts).as_string(connection.connection)


def _fetch(query: str, params: list[int | str] | None = None) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return list(cursor.fetchall())


def _oid(schema: str, table: str) -> int | None:
    [(oid,)] = _fetch("SELECT to_regclass(%s)::oid", [f"{_quoted(schema)}.{_quoted(table)}"])
    return int(str(oid)) if oid is not None else None


def events_table_is_partitioned(schema: str) -> bool:
    [(kind,)] = _fetch(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [f"{_quoted(schema)}.{_quoted(EVENTS)}"]
    ) or [(None,)]
    return kind == "p"


def _triggers(table_oid: int) -> list[_Trigger]:
    rows = _fetch(
        "SELECT tgname, pg_get_triggerdef(oid), (tgtype & 1) = 1 FROM pg_trigger "
        "WHERE tgrelid = %s AND NOT tgisinternal AND tgparentid = 0 ORDER BY tgname",
        [table_oid],
    )
    return [_Trigger(str(name), str(definition), bool(is_row)) for name, definition, is_row in rows]


def _trigger_on(trigger: _Trigger, schema: str, table: str) -> str:
    """The trigger's definition, put on another table."""
    return _ON_TABLE.sub(f" ON {_quoted(schema, table)} ", trigger.definition, count=1)


def _partition_trigger(trigger: _Trigger, schema: str, partition: str) -> str:
    """A statement trigger of the parent, put on a partition under a name pgtrigger does not own, so that its
    pruning of triggers no model declares never removes it."""
    renamed = trigger.definition.replace(
        f"CREATE TRIGGER {trigger.name} ", f"CREATE TRIGGER {PARTITION_TRIGGER_PREFIX}{trigger.name} ", 1
    )
    return _trigger_on(_Trigger(trigger.name, renamed, trigger.is_row), schema, partition)


def _month_name(month: date) -> str:
    return f"{EVENTS}_y{month.year:04d}m{month.month:02d}"


def _next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def _months(first: date, last: date) -> list[date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = _next_month(month)
    return months


def _add_months(day: date, count: int) -> date:
    month = day.replace(day=1)
    for _ in range(count):
        month = _next_month(month)
    return month


def _partition_create(schema: str, parent: str, month: date, statement_triggers: list[_Trigger]) -> list[str]:
    name = _month_name(month)
    statements = [
        f"CREATE TABLE {_quoted(schema, name)} PARTITION OF {_quoted(schema, parent)} "
        f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') TO ('{_next_month(month).isoformat()} 00:00:00+00')"
    ]
    return statements + [_partition_trigger(trigger, schema, name) for trigger in statement_triggers]


def partition_conversion_plan(*, schema: str, months_ahead: int, today: date | None = None) -> list[str]:
    """The SQL that converts the events table in `schema` to monthly partitions, from the month of its oldest event
    to `months_ahead` months after `today` (UTC), read from the table as it is now. Run it in one transaction,
    after `LOCK TABLE ... IN ACCESS EXCLUSIVE MODE` (`partition_conversion_apply` does).

    Raises `PartitionRefused` if there is no such table or it is partitioned already.
    """
    events_oid = _oid(schema, EVENTS)
    if events_oid is None:
        raise PartitionRefused(f"There is no table {schema}.{EVENTS}.")
    if events_table_is_partitioned(schema):
        raise PartitionRefused(f"{schema}.{EVENTS} is partitioned already: use --extend to add months.")
    now = today or datetime.now(UTC).date()
    utc_day = "(occurred_at AT TIME ZONE 'UTC')::date"
    [(oldest, newest)] = _fetch(
        f"SELECT min({utc_day}), max({utc_day}) FROM {_quoted(schema, EVENTS)}"  # noqa: S608 - quoted by psycopg
    )
    first = oldest if isinstance(oldest, date) else now
    last = _add_months(max(now, newest if isinstance(newest, date) else now), months_ahead)
    triggers = _triggers(events_oid)
    statement_triggers = [trigger for trigger in triggers if not trigger.is_row]
    indexes = _fetch(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid) ORDER BY indexrelid",
        [events_oid],
    )
    foreign_keys = _fetch(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE confrelid = %s AND contype = 'f' "
        "ORDER BY conname",
        [events_oid],
    )
    events = _quoted(schema, EVENTS)
    staged_name = f"{EVENTS}_partitioned"
    staged = _quoted(schema, staged_name)
    sequence = _quoted(schema, f"{EVENTS}_id_seq")

    plan = [
        f"CREATE TABLE {staged} (LIKE {events} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE) "
        f"PARTITION BY RANGE (occurred_at)",
        f"ALTER TABLE {staged} ADD CONSTRAINT {_quoted(staged_name + '_pkey')} PRIMARY KEY (id, occurred_at)",
        f"ALTER TABLE {staged} ADD CONSTRAINT {_quoted(EVENTS + '_hash_occurred_at_key')} "
        f"UNIQUE (hash, occurred_at)",
    ]
    for month in _months(first, last):
        plan += _partition_create(schema, staged_name, month, [])
    plan.append(f"CREATE TABLE {_quoted(schema, EVENTS + '_default')} PARTITION OF {staged} DEFAULT")
    # Every name in the plan is quoted by psycopg or printed by PostgreSQL itself.
    plan += [
        f"INSERT INTO {staged} SELECT * FROM {events} ORDER BY id",  # noqa: S608
        f"DO $$ BEGIN IF (SELECT count(*) FROM {staged}) <> (SELECT count(*) FROM {events}) THEN "  # noqa: S608
        "RAISE EXCEPTION 'not every access event was copied'; END IF; END $$",
    ]
    plan += [f"ALTER TABLE {table} DROP CONSTRAINT {_quoted(str(name))}" for table, name in foreign_keys]
    plan += [
        f"DROP TABLE {events}",
        f"ALTER TABLE {staged} RENAME TO {_quoted(EVENTS)}",
        f"ALTER TABLE {events} RENAME CONSTRAINT {_quoted(staged_name + '_pkey')} TO {_quoted(EVENTS + '_pkey')}",
        f"CREATE SEQUENCE {sequence} OWNED BY {events}.id",
        f"SELECT setval('{sequence}', (SELECT COALESCE(max(id), 0) + 1 FROM {events}), false)",  # noqa: S608
        f"ALTER TABLE {events} ALTER COLUMN id SET DEFAULT nextval('{sequence}')",
    ]
    plan += [str(definition) for (definition,) in indexes]
    plan += [trigger.definition for trigger in triggers]
    for month in _months(first, last):
        plan += [_partition_trigger(trigger, schema, _month_name(month)) for trigger in statement_triggers]
    plan += [_partition_trigger(trigger, schema, EVENTS + "_default") for trigger in statement_triggers]
    return plan


def _existing_months(schema: str) -> list[date]:
    rows = _fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        [f"{_quoted(schema)}.{_quoted(EVENTS)}"],
    )
    months = []
    for (name,) in rows:
        if matched := MONTH_NAME.match(str(name)):
            months.append(date(int(matched[1]), int(matched[2]), 1))
    return sorted(months)


def partition_extension_plan(*, schema: str, months_ahead: int, today: date | None = None) -> list[str]:
    """The SQL that adds the months missing from after the newest month partition to `months_ahead` months after
    `today` (UTC), each with the parent's statement triggers. Empty when none are missing.

    Raises `PartitionRefused` if the table is not partitioned.
    """
    if not events_table_is_partitioned(schema):
        raise PartitionRefused(f"{schema}.{EVENTS} is not partitioned: convert it first (--apply).")
    now = today or datetime.now(UTC).date()
    existing = _existing_months(schema)
    first = _next_month(existing[-1]) if existing else now.replace(day=1)
    events_oid = _oid(schema, EVENTS)
    if events_oid is None:
        raise RuntimeError("invariant: events_oid is not None")
    statement_triggers = [trigger for trigger in _triggers(events_oid) if not trigger.is_row]
    plan: list[str] = []
    for month in _months(first, _add_months(now, months_ahead)):
        plan += _partition_create(schema, EVENTS, month, statement_triggers)
    return plan


def partition_plan_apply(plan: list[str], *, schema: str) -> None:
    """Run a plan under an exclusive lock on the events table, in the caller's transaction."""
    with connection.cursor() as cursor:
        # Checks the caller's deferred constraints now: a foreign key with pending checks cannot be dropped.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"LOCK TABLE {_quoted(schema, EVENTS)} IN ACCESS EXCLUSIVE MODE")
        for statement in plan:
            cursor.execute(statement)


def partitions_wholly_up_to(cut_id: int) -> list[str]:
    """The month partitions of the events table (as found on the search path) that hold events, every one of them
    at or before event `cut_id`: a purge drops these whole. None when the table is not partitioned."""
    rows = _fetch(
        "SELECT i.inhrelid::regclass::text, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
        [EVENTS],
    )
    wholly = []
    for qualified, name in rows:
        if not MONTH_NAME.match(str(name)):
            continue
        [(holds, later)] = _fetch(
            # PostgreSQL prints the partition's name, quoted as it needs.
            f"SELECT EXISTS (SELECT 1 FROM {qualified}), EXISTS (SELECT 1 FROM {qualified} WHERE id > %s)",  # noqa: S608
            [cut_id],
        )
        if holds and not later:
            wholly.append(str(qualified))
    return wholly


def partition_drop_sql(partition: str) -> str:
    """Detach a month partition (as `partitions_wholly_up_to` names it) and drop it."""
    return f"ALTER TABLE {_quoted(EVENTS)} DETACH PARTITION {partition}; DROP TABLE {partition}"
