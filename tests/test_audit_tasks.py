import pytest
from django.db import connection

from audit.models import AccessEvent
from audit.services import AccessFacts, Actor, RequestContext, access_event_record
from audit.tasks import AuditChainBroken, access_chain_verify_task
from sharedcare.celery import app


def _event(n: int) -> AccessEvent:
    return access_event_record(
        Actor(user_id=n, username=f"user{n}"),
        AccessFacts(action=AccessEvent.Action.SEARCH, outcome=AccessEvent.Outcome.NOT_FOUND, query=str(n)),
        RequestContext(),
    )


def test_nightly_chain_check_is_on_the_beat_schedule():
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "audit.access_chain_verify_task" in tasks
    assert "audit.access_chain_verify_task" in app.tasks


def test_chain_check_task_passes_on_an_intact_chain_and_logs_no_error(db, caplog):
    for n in range(3):
        _event(n)

    with caplog.at_level("INFO", logger="audit.tasks"):
        result = access_chain_verify_task.apply()

    assert result.successful()
    assert [record.getMessage() for record in caplog.records if record.name == "audit.tasks"] == [
        "audit chain intact"
    ]


def test_chain_check_task_fails_loudly_on_a_broken_chain_naming_the_altered_event(db, caplog):
    events = [_event(n) for n in range(3)]
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_accessevent DISABLE TRIGGER ALL")
        cursor.execute("UPDATE audit_accessevent SET query = 'x' WHERE id = %s", [events[1].pk])
        cursor.execute("ALTER TABLE audit_accessevent ENABLE TRIGGER ALL")

    with caplog.at_level("INFO", logger="audit.tasks"), pytest.raises(AuditChainBroken, match="in 1 place"):
        access_chain_verify_task.apply().get()

    logged = [
        (record.levelname, record.getMessage()) for record in caplog.records if record.name == "audit.tasks"
    ]
    assert logged == [("ERROR", f"access event {events[1].pk}: content does not match its hash")]
