"""The access events table converted to monthly partitions, on a scratch copy in a schema of its own (the tables
the other tests use stay as they are): every row moves with its id and hash, the chain still verifies, appends go on
into the right month or the default partition, UPDATE, DELETE and TRUNCATE are refused on the parent and on every
partition, months are added ahead, and a purge drops whole months."""

import re
import secrets
from datetime import UTC, date, datetime, timedelta

import pgtrigger.installation
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AccessEvent, Alert
from audit.partitions import (
    EVENTS,
    PartitionRefused,
    partition_conversion_plan,
    partition_extension_plan,
    partition_plan_apply,
)
from audit.retention import audit_purge
from audit.selectors import audit_trail_verify
from audit.services import GENESIS_HASH, event_hash

KEY = "a key the database never sees"
TODAY = date(2031, 1, 10)


def rows(query: str, params: list[object] | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


@pytest.fixture
def scratch(db, settings) -> str:
    """A schema holding copies of the events and alerts tables, with the events' triggers and the alerts' foreign
    key, first on the search path so the models read and write them; gone when the test's transaction rolls back."""
    settings.AUDIT_ANCHOR_KEY = KEY
    schema = f"scratch_{secrets.token_hex(4)}"
    triggers = rows(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'public.audit_accessevent'::regclass "
        "AND NOT tgisinternal"
    )
    [(foreign_key,)] = rows(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.audit_alert'::regclass "
        "AND confrelid = 'public.audit_accessevent'::regclass"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
        cursor.execute(f"CREATE TABLE {schema}.{EVENTS} (LIKE public.{EVENTS} INCLUDING ALL)")
        cursor.execute(f"CREATE TABLE {schema}.audit_alert (LIKE public.audit_alert INCLUDING ALL)")
        cursor.execute(
            f"ALTER TABLE {schema}.audit_alert ADD CONSTRAINT alert_event_fk "
            + foreign_key.replace("public.audit_accessevent", f"{schema}.{EVENTS}").replace(
                "REFERENCES audit_accessevent", f"REFERENCES {schema}.{EVENTS}"
            )
        )
        for (definition,) in triggers:
            cursor.execute(re.sub(r" ON \S+ ", f" ON {schema}.{EVENTS} ", definition, count=1))
        cursor.execute(f"SET LOCAL search_path TO {schema}, public")
    return schema


def event_at(moment: datetime, n: int = 1) -> AccessEvent:
    previous = AccessEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
    event = AccessEvent(
        occurred_at=moment,
        user_id=n,
        username=f"user{n}",
        patient_id=n,
        action=AccessEvent.Action.VIEW_RECORD,
        outcome=AccessEvent.Outcome.ALLOWED,
        previous_hash=previous,
    )
    event.hash = event_hash(event, previous)
    event.save(force_insert=True)
    return event


def three_months() -> list[AccessEvent]:
    moments = [
        datetime(2030, 11, 3, 9, tzinfo=UTC),
        datetime(2030, 11, 30, 23, 59, 59, tzinfo=UTC),
        datetime(2030, 12, 20, tzinfo=UTC),
        datetime(2031, 1, 1, tzinfo=UTC),
        datetime(2031, 1, 5, 16, tzinfo=UTC),
    ]
    return [event_at(moment, n) for n, moment in enumerate(moments)]


def convert(schema: str) -> None:
    partition_plan_apply(partition_conversion_plan(schema=schema, months_ahead=2, today=TODAY), schema=schema)


def partitions(schema: str) -> dict[str, int]:
    found = rows(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
        [f"{schema}.{EVENTS}"],
    )
    return {name: rows(f"SELECT count(*) FROM {schema}.{name}")[0][0] for (name,) in found}  # noqa: S608


def refused(statement: str) -> None:
    with (
        pytest.raises(DatabaseError, match=r"Cannot (update or delete|truncate)"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)


def test_the_plan_prints_the_conversion_and_changes_nothing(scratch, capsys):
    three_months()
    call_command("audit_partition", schema=scratch)
    out = capsys.readouterr().out
    assert (
        f"PARTITION OF {scratch}.audit_accessevent_partitioned FOR VALUES FROM ('2030-11-01"
        in out.replace('"', "")
    )
    assert "PARTITION BY RANGE (occurred_at)" in out
    assert rows("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [f"{scratch}.{EVENTS}"]) == [
        ("r",)
    ]


def test_conversion_moves_every_row_into_its_month_and_the_chain_still_verifies(scratch):
    events = three_months()
    before = list(
        AccessEvent.objects.order_by("id").values_list("id", "occurred_at", "previous_hash", "hash")
    )

    convert(scratch)

    assert rows("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [f"{scratch}.{EVENTS}"]) == [
        ("p",)
    ]
    assert partitions(scratch) == {
        "audit_accessevent_default": 0,
        "audit_accessevent_y2030m11": 2,
        "audit_accessevent_y2030m12": 1,
        "audit_accessevent_y2031m01": 2,
        "audit_accessevent_y2031m02": 0,
        "audit_accessevent_y2031m03": 0,
    }
    assert (
        list(AccessEvent.objects.order_by("id").values_list("id", "occurred_at", "previous_hash", "hash"))
        == before
    )
    for event in AccessEvent.objects.order_by("id"):
        assert event_hash(event, event.previous_hash) == event.hash
    assert list(audit_trail_verify(KEY)) == []
    [(key_columns,)] = rows(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
        [f"{scratch}.{EVENTS}"],
    )
    assert key_columns == "PRIMARY KEY (id, occurred_at)"
    assert events[0].pk in {event.pk for event in AccessEvent.objects.filter(occurred_at__month=11)}


def test_appends_after_conversion_go_on_numbering_into_their_month_or_the_default(scratch):
    events = three_months()
    convert(scratch)

    february = event_at(datetime(2031, 2, 14, tzinfo=UTC), 7)
    far_ahead = event_at(datetime(2035, 6, 1, tzinfo=UTC), 8)

    assert february.pk > events[-1].pk and far_ahead.pk > february.pk
    placed = dict(
        rows(
            f"SELECT e.id, c.relname FROM {scratch}.{EVENTS} e JOIN pg_class c ON c.oid = e.tableoid "  # noqa: S608
            "WHERE e.id >= %s",
            [february.pk],
        )
    )
    assert placed == {
        february.pk: "audit_accessevent_y2031m02",
        far_ahead.pk: "audit_accessevent_default",
    }
    assert list(audit_trail_verify(KEY)) == []


def test_the_parent_and_every_partition_refuse_update_delete_and_truncate(scratch):
    three_months()
    convert(scratch)
    # Row triggers fire only on rows, so UPDATE and DELETE are tried where there are some; TRUNCATE everywhere.
    for table, count in [(EVENTS, 5), *partitions(scratch).items()]:
        if count:
            refused(f"UPDATE {scratch}.{table} SET username = 'someone-else'")  # noqa: S608
            refused(f"DELETE FROM {scratch}.{table}")  # noqa: S608
        refused(f"TRUNCATE {scratch}.{table}")
    assert AccessEvent.objects.count() == 5


def test_months_added_ahead_refuse_change_too(scratch):
    three_months()
    convert(scratch)

    partition_plan_apply(
        partition_extension_plan(schema=scratch, months_ahead=4, today=TODAY), schema=scratch
    )

    assert {"audit_accessevent_y2031m04", "audit_accessevent_y2031m05"} <= set(partitions(scratch))
    assert partition_extension_plan(schema=scratch, months_ahead=4, today=TODAY) == []
    event = event_at(datetime(2031, 5, 2, tzinfo=UTC), 9)
    refused(f"TRUNCATE {scratch}.audit_accessevent_y2031m05")
    refused(f"DELETE FROM {scratch}.audit_accessevent_y2031m05 WHERE id = {event.pk}")  # noqa: S608


def test_conversion_refuses_a_table_partitioned_already(scratch):
    convert(scratch)
    with pytest.raises(PartitionRefused, match="partitioned already"):
        partition_conversion_plan(schema=scratch, months_ahead=2, today=TODAY)


def test_a_purge_drops_whole_months_and_the_trail_still_verifies(scratch):
    events = three_months()
    reviewed = Alert.objects.create(
        kind=Alert.Kind.SELF_CLAIM,
        reference="SC-1",
        event=events[0],
        raised_at=events[0].occurred_at,
        reviewed_at=events[1].occurred_at,
        outcome=Alert.Outcome.APPROPRIATE,
    )
    convert(scratch)

    # Retention ends at the start of 2031: November and December go whole, January stays.
    outcome = audit_purge(now=datetime(2031, 1, 1, tzinfo=UTC) + timedelta(days=2922))

    assert (outcome.events_removed, outcome.partitions_dropped, outcome.alerts_removed) == (3, 2, 1)
    assert not Alert.objects.filter(pk=reviewed.pk).exists()
    assert "audit_accessevent_y2030m11" not in partitions(scratch)
    assert "audit_accessevent_y2030m12" not in partitions(scratch)
    assert list(AccessEvent.objects.order_by("id").values_list("id", flat=True)) == [e.pk for e in events[3:]]
    assert list(audit_trail_verify(KEY)) == []


def test_pgtrigger_would_prune_none_of_the_partitions_triggers(scratch):
    three_months()
    convert(scratch)
    partition_plan_apply(
        partition_extension_plan(schema=scratch, months_ahead=4, today=TODAY), schema=scratch
    )
    assert [found for found in pgtrigger.installation.prunable() if EVENTS in str(found[0])] == []


def test_the_restricted_application_role_reaches_the_events_only_through_the_parent(scratch):
    three_months()
    convert(scratch)
    role = f"sharedcare_app_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        cursor.execute(f"GRANT USAGE ON SCHEMA {scratch} TO {role}")
        # What default privileges give the application's role on every table the owner creates.
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {scratch} TO {role}")

    call_command("audit_role_restrict", role=role)

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        cursor.execute(f"SELECT count(*) FROM {scratch}.{EVENTS}")  # noqa: S608
        assert cursor.fetchone() == (5,)
    for statement in (
        f"SELECT count(*) FROM {scratch}.audit_accessevent_y2030m11",  # noqa: S608
        f"DELETE FROM {scratch}.{EVENTS}",  # noqa: S608
    ):
        with (
            pytest.raises(DatabaseError, match="permission denied"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"SET LOCAL ROLE {role}")
            cursor.execute(statement)
