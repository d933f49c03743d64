"""The audit trail, tried as its database owner would: TRUNCATE is refused; altering, removing a middle event and
removing the newest events are each found by audit_verify, which names the break; concurrent writers never fork the
chain; the application's role, once restricted, may only INSERT and SELECT."""

import secrets
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction
from django.test import override_settings

from audit.models import AccessEvent, AuditCheckpoint
from audit.services import GENESIS_HASH, AccessFacts, Actor, RequestContext, access_event_record, event_hash
from audit.tasks import audit_checkpoint_write_task
from sharedcare.celery import app


def _event(n: int) -> AccessEvent:
    return access_event_record(
        Actor(user_id=n, username=f"user{n}", job_role="R8000", organisation_ods="D81001"),
        AccessFacts(action=AccessEvent.Action.VIEW_RECORD, outcome=AccessEvent.Outcome.ALLOWED, patient_id=n),
        RequestContext(request_id=f"req{n}"),
    )


def _as_owner_with_triggers_off(sql: str, params: list[object]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_accessevent DISABLE TRIGGER ALL")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_accessevent ENABLE TRIGGER ALL")


def _verify_failure() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")
    return str(failure.value)


@pytest.mark.parametrize("table", ["audit_accessevent", "audit_auditcheckpoint"])
def test_truncate_is_refused_even_for_the_superuser(db, table):
    _event(1)
    call_command("audit_checkpoint")
    with (
        pytest.raises(DatabaseError, match="Cannot truncate"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"TRUNCATE {table} CASCADE")
    assert AccessEvent.objects.count() == 1
    assert AuditCheckpoint.objects.count() == 1


def test_checkpoints_cannot_be_changed_or_deleted(db):
    call_command("audit_checkpoint")
    for statement in (
        "UPDATE audit_auditcheckpoint SET event_count = 9",
        "DELETE FROM audit_auditcheckpoint",
    ):
        with (
            pytest.raises(DatabaseError, match="Cannot update or delete"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert AuditCheckpoint.objects.get().event_count == 0


def test_a_checkpoint_records_the_head_and_the_count_and_is_logged(db, caplog):
    events = [_event(n) for n in range(3)]
    with caplog.at_level("INFO", logger="sharedcare.audit.anchor"):
        call_command("audit_checkpoint")
    checkpoint = AuditCheckpoint.objects.get()
    assert (checkpoint.last_event_id, checkpoint.event_count, checkpoint.head_hash) == (
        events[-1].pk,
        3,
        events[-1].hash,
    )
    assert checkpoint.signature == ""
    [line] = [record.getMessage() for record in caplog.records if record.name == "sharedcare.audit.anchor"]
    assert f"head event {events[-1].pk}, 3 events, head hash {events[-1].hash}, signature none" in line


def test_a_checkpoint_of_an_empty_chain_holds(db, capsys):
    call_command("audit_checkpoint")
    checkpoint = AuditCheckpoint.objects.get()
    assert (checkpoint.last_event_id, checkpoint.event_count, checkpoint.head_hash) == (0, 0, GENESIS_HASH)
    _event(1)
    call_command("audit_verify")
    assert "1 events verified against 1 checkpoints" in capsys.readouterr().out


def test_the_checkpoint_task_is_on_the_beat_schedule_and_writes_one(db):
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "audit.audit_checkpoint_write_task" in tasks
    _event(1)
    checkpoint_id = audit_checkpoint_write_task.apply().get()
    assert AuditCheckpoint.objects.get().pk == checkpoint_id


def test_verify_passes_an_intact_trail_with_its_checkpoints(db, capsys):
    _event(1)
    call_command("audit_checkpoint")
    _event(2)
    call_command("audit_checkpoint")
    _event(3)
    call_command("audit_verify")
    out = capsys.readouterr().out
    assert "Audit chain intact: 3 events verified against 2 checkpoints" in out


def test_verify_names_an_altered_event(db):
    events = [_event(n) for n in range(5)]
    call_command("audit_checkpoint")
    _as_owner_with_triggers_off(
        "UPDATE audit_accessevent SET outcome = 'denied' WHERE id = %s", [events[2].pk]
    )
    message = _verify_failure()
    assert f"the first: chain broken at event {events[2].pk}: content does not match its hash" in message


def test_verify_names_a_removed_middle_event(db):
    events = [_event(n) for n in range(5)]
    call_command("audit_checkpoint")
    _as_owner_with_triggers_off("DELETE FROM audit_accessevent WHERE id = %s", [events[2].pk])
    message = _verify_failure()
    assert (
        f"the first: chain broken at event {events[3].pk}: link to the previous row does not match" in message
    )


def test_verify_names_removed_newest_events_which_leave_the_chain_intact(db, capsys):
    events = [_event(n) for n in range(5)]
    call_command("audit_checkpoint")
    head = events[-1]
    _as_owner_with_triggers_off("DELETE FROM audit_accessevent WHERE id >= %s", [events[3].pk])
    message = _verify_failure()
    checkpoint = AuditCheckpoint.objects.get()
    assert (
        f"the first: event {head.pk} removed: checkpoint {checkpoint.pk} recorded head {head.pk} of 5 events"
        in message
    )


def test_verify_finds_the_chain_rewritten_to_hide_removed_newest_events(db):
    events = [_event(n) for n in range(3)]
    call_command("audit_checkpoint")
    checkpoint = AuditCheckpoint.objects.get()
    # The owner removes the head and forges a new one with the same id and a valid link, so the chain checks out.
    _as_owner_with_triggers_off("DELETE FROM audit_accessevent WHERE id = %s", [events[-1].pk])
    forged = AccessEvent(
        id=events[-1].pk,
        occurred_at=events[-1].occurred_at,
        username="nobody",
        action=AccessEvent.Action.SEARCH,
        outcome=AccessEvent.Outcome.NOT_FOUND,
        previous_hash=events[-2].hash,
    )
    forged.hash = event_hash(forged, forged.previous_hash)
    forged.save(force_insert=True)
    message = _verify_failure()
    assert (
        f"the first: event {events[-1].pk} does not have the hash checkpoint {checkpoint.pk} recorded"
        in message
    )


@override_settings(AUDIT_ANCHOR_KEY="a key the database never sees")
def test_signed_checkpoints_verify_with_the_key(db, capsys):
    _event(1)
    call_command("audit_checkpoint")
    assert len(AuditCheckpoint.objects.get().signature) == 64
    call_command("audit_verify")
    assert "signatures verified" in capsys.readouterr().out


@override_settings(AUDIT_ANCHOR_KEY="a key the database never sees")
def test_verify_refuses_a_checkpoint_forged_without_the_key(db):
    events = [_event(n) for n in range(3)]
    call_command("audit_checkpoint")
    signed = AuditCheckpoint.objects.get()
    _as_owner_with_triggers_off("DELETE FROM audit_accessevent WHERE id = %s", [events[-1].pk])
    # The owner adds a checkpoint that agrees with the shortened chain, but cannot sign it.
    forged = AuditCheckpoint.objects.create(
        created_at=signed.created_at,
        last_event_id=events[-2].pk,
        event_count=2,
        head_hash=events[-2].hash,
    )
    message = _verify_failure()
    assert f"the first: checkpoint {forged.pk}'s signature does not verify" in message


@override_settings(AUDIT_ANCHOR_KEY="a key the database never sees")
def test_unsigned_checkpoints_from_before_the_key_was_set_still_hold(db, capsys):
    _event(1)
    with override_settings(AUDIT_ANCHOR_KEY=""):
        call_command("audit_checkpoint")
    _event(2)
    call_command("audit_checkpoint")
    call_command("audit_verify")
    assert "2 events verified against 2 checkpoints, signatures verified" in capsys.readouterr().out


def test_two_concurrent_writers_never_fork_the_chain(transactional_db, capsys):
    per_writer = 25
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            start.wait()
            for n in range(per_writer):
                _event(offset + n)
        except BaseException as error:
            failures.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 1000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    previous_hashes = list(AccessEvent.objects.values_list("previous_hash", flat=True))
    assert len(previous_hashes) == 2 * per_writer
    assert len(set(previous_hashes)) == len(previous_hashes)
    call_command("audit_verify")
    assert f"{2 * per_writer} events verified" in capsys.readouterr().out


@pytest.fixture
def application_role(transactional_db):
    """A NOLOGIN role holding every privilege on the audit tables, as default privileges would give it."""
    role = f"sharedcare_app_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        cursor.execute(f"GRANT ALL ON audit_accessevent, audit_auditcheckpoint TO {role}")
    yield role
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {role}")
        cursor.execute(f"DROP ROLE {role}")


def _as_role(role: str, sql: str, params: list[object] | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        cursor.execute(sql, params)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_accessevent SET username = 'someone-else'",
        "DELETE FROM audit_accessevent",
        "TRUNCATE audit_accessevent CASCADE",
        "UPDATE audit_auditcheckpoint SET event_count = 0",
        "DELETE FROM audit_auditcheckpoint",
        "TRUNCATE audit_auditcheckpoint",
    ],
)
def test_the_restricted_application_role_cannot_change_or_empty_the_trail(application_role, statement):
    _event(1)
    call_command("audit_role_restrict", role=application_role)
    with pytest.raises(DatabaseError, match="permission denied"):
        _as_role(application_role, statement)
    assert AccessEvent.objects.get().username == "user1"


def test_the_restricted_application_role_can_still_append_and_read(application_role):
    _event(1)
    call_command("audit_role_restrict", role=application_role)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {application_role}")
        _event(2)
        audit_checkpoint_write_task.apply().get()
        cursor.execute("SELECT count(*) FROM audit_accessevent")
        assert cursor.fetchone() == (2,)
    call_command("audit_verify")


def test_before_restriction_the_role_could_delete_so_the_test_can_fail(application_role):
    _event(1)
    with pytest.raises(DatabaseError, match="Cannot update or delete"):
        _as_role(application_role, "DELETE FROM audit_accessevent")


def test_restricting_refuses_a_missing_role_a_superuser_or_the_tables_owner(db):
    with pytest.raises(CommandError, match="no database role"):
        call_command("audit_role_restrict", role="no_such_role_here")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'audit_accessevent'"
        )
        current, owner = cursor.fetchone()
    assert current == owner
    with pytest.raises(CommandError, match="superuser"):
        call_command("audit_role_restrict", role=current)
