import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit.models import AccessEvent
from audit.services import GENESIS_HASH, AccessFacts, Actor, RequestContext, access_event_record


def _event(n: int) -> AccessEvent:
    return access_event_record(
        Actor(user_id=n, username=f"user{n}", job_role="R8000", organisation_ods="D81001"),
        AccessFacts(action=AccessEvent.Action.VIEW_RECORD, outcome=AccessEvent.Outcome.ALLOWED, patient_id=n),
        RequestContext(request_id=f"req{n}", client_address="127.0.0.1"),
    )


def test_each_event_is_chained_to_the_one_before(db):
    first, second, third = _event(1), _event(2), _event(3)
    assert first.previous_hash == GENESIS_HASH
    assert second.previous_hash == first.hash
    assert third.previous_hash == second.hash
    assert len({first.hash, second.hash, third.hash}) == 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_accessevent SET username = 'someone-else'",
        "DELETE FROM audit_accessevent",
    ],
)
def test_database_refuses_update_and_delete(db, statement):
    _event(1)
    with (
        pytest.raises(DatabaseError, match="Cannot update or delete"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert AccessEvent.objects.get().username == "user1"


def test_orm_update_and_delete_are_refused(db):
    event = _event(1)
    event.outcome = AccessEvent.Outcome.DENIED
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        event.save()
    with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
        AccessEvent.objects.all().delete()
    assert AccessEvent.objects.get().outcome == AccessEvent.Outcome.ALLOWED


def test_verify_passes_on_an_intact_chain(db, capsys):
    for n in range(5):
        _event(n)
    call_command("audit_verify")
    assert "5 events verified" in capsys.readouterr().out


def _with_trigger_disabled(sql: str, params: list[object]) -> None:
    # Only the table owner can do this; the application role in production holds INSERT and SELECT only.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_accessevent DISABLE TRIGGER ALL")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_accessevent ENABLE TRIGGER ALL")


def test_verify_detects_an_altered_row(db):
    events = [_event(n) for n in range(4)]
    _with_trigger_disabled("UPDATE audit_accessevent SET outcome = 'denied' WHERE id = %s", [events[2].pk])
    with pytest.raises(CommandError, match="broken"):
        call_command("audit_verify")


def test_verify_detects_a_removed_row(db):
    events = [_event(n) for n in range(4)]
    _with_trigger_disabled("DELETE FROM audit_accessevent WHERE id = %s", [events[1].pk])
    with pytest.raises(CommandError, match="broken"):
        call_command("audit_verify")
