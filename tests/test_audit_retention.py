"""Retention of the access trail: the purge removes only the oldest events past retention, never one an open alert
points at, writes a signed record of what it removed, and leaves a trail that verifies; removing events any other
way, or forging the record, is still found. The application's role may not purge."""

import hmac
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit.alerts import Reviewer, alert_review
from audit.models import AccessEvent, Alert, AlertScan, AuditCheckpoint, AuditPurge
from audit.retention import PurgeRefused, audit_purge
from audit.selectors import audit_trail_verify
from audit.services import (
    GENESIS_HASH,
    AccessFacts,
    Actor,
    RequestContext,
    access_event_record,
    audit_checkpoint_write,
    event_hash,
    purge_signature,
)

KEY = "a key the database never sees"
NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
RETAINED_FROM = NOW - timedelta(days=2922)


@pytest.fixture(autouse=True)
def _retention(settings) -> None:
    settings.AUDIT_ANCHOR_KEY = KEY
    settings.AUDIT_RETENTION_DAYS = 2922


def event_at(moment: datetime, n: int = 1) -> AccessEvent:
    """An event chained to the head as the service chains it, but at a moment of the test's choosing."""
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


def trail() -> dict[str, AccessEvent]:
    """Three events past retention, one at the line, one a second inside it and one well inside, with checkpoints."""
    events = {
        "old": event_at(RETAINED_FROM - timedelta(days=30), 1),
        "older-middle": event_at(RETAINED_FROM - timedelta(days=2), 2),
        "just-past": event_at(RETAINED_FROM - timedelta(seconds=1), 3),
    }
    audit_checkpoint_write()
    events["at-the-line"] = event_at(RETAINED_FROM, 4)
    events["second-inside"] = event_at(RETAINED_FROM + timedelta(seconds=1), 5)
    events["inside"] = event_at(RETAINED_FROM + timedelta(days=10), 6)
    audit_checkpoint_write()
    return events


def owner_runs(sql: str, params: list[object]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # a purge's deferred checks, before ALTER TABLE
        cursor.execute("ALTER TABLE audit_accessevent DISABLE TRIGGER ALL")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_accessevent ENABLE TRIGGER ALL")


def first_break() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")
    return str(failure.value)


def test_a_purge_removes_only_events_past_retention_and_records_them(db):
    events = trail()

    outcome = audit_purge(now=NOW)

    kept = ["at-the-line", "second-inside", "inside"]
    assert list(AccessEvent.objects.order_by("id").values_list("id", flat=True)) == [
        events[k].pk for k in kept
    ]
    purge = AuditPurge.objects.get()
    assert (purge.last_event_id, purge.head_hash, purge.event_count, purge.removed_count) == (
        events["just-past"].pk,
        events["just-past"].hash,
        3,
        3,
    )
    assert purge.retained_from == RETAINED_FROM
    assert hmac.compare_digest(purge.signature, purge_signature(purge, KEY))
    assert (outcome.events_removed, outcome.last_event_id, outcome.purge_id) == (
        3,
        purge.last_event_id,
        purge.pk,
    )
    assert list(audit_trail_verify(KEY)) == []


def test_the_trail_verifies_after_a_purge_with_its_checkpoints(db, capsys):
    trail()
    audit_purge(now=NOW)
    audit_checkpoint_write()

    call_command("audit_verify")

    out = capsys.readouterr().out
    assert "Audit chain intact: 3 events verified against 3 checkpoints, signatures verified" in out
    assert "going on from purge" in out


def test_a_second_purge_later_goes_on_from_the_first_and_still_verifies(db):
    events = trail()
    audit_purge(now=NOW)
    checkpoint = audit_checkpoint_write()

    audit_purge(now=NOW + timedelta(days=5))

    _, second = AuditPurge.objects.order_by("id")
    assert (second.last_event_id, second.event_count, second.removed_count) == (
        events["second-inside"].pk,
        5,
        2,
    )
    assert list(AccessEvent.objects.values_list("id", flat=True)) == [events["inside"].pk]
    assert checkpoint.event_count == 6
    assert list(audit_trail_verify(KEY)) == []


def test_a_purge_of_every_event_leaves_the_next_append_linked_to_its_head(db, capsys):
    old = [event_at(RETAINED_FROM - timedelta(days=n), n) for n in (3, 2, 1)]
    audit_purge(now=NOW)
    assert not AccessEvent.objects.exists()
    empty_checkpoint = audit_checkpoint_write()

    appended = access_event_record(
        Actor(user_id=9, username="user9"),
        AccessFacts(action=AccessEvent.Action.SEARCH, outcome=AccessEvent.Outcome.NOT_FOUND),
        RequestContext(),
    )

    assert (empty_checkpoint.last_event_id, empty_checkpoint.event_count) == (old[-1].pk, 3)
    assert appended.previous_hash == old[-1].hash
    assert audit_checkpoint_write().event_count == 4
    call_command("audit_verify")
    assert "1 events verified against 2 checkpoints" in capsys.readouterr().out


def test_a_dry_run_says_what_would_go_and_changes_nothing(db):
    trail()
    before = list(AccessEvent.objects.values_list("id", "hash"))

    outcome = audit_purge(now=NOW, dry_run=True)

    assert (outcome.events_removed, outcome.dry_run, outcome.purge_id) == (3, True, None)
    assert list(AccessEvent.objects.values_list("id", "hash")) == before
    assert not AuditPurge.objects.exists()


def test_nothing_past_retention_writes_no_purge_record(db):
    event_at(RETAINED_FROM, 1)
    outcome = audit_purge(now=NOW)
    assert (outcome.events_removed, outcome.purge_id) == (0, None)
    assert AccessEvent.objects.count() == 1
    assert not AuditPurge.objects.exists()


def test_an_event_inside_retention_stops_the_purge_though_older_ones_follow(db):
    # Ids, not clocks, order the chain: an event in retention keeps every event after it.
    first = event_at(RETAINED_FROM - timedelta(days=3), 1)
    event_at(RETAINED_FROM + timedelta(hours=1), 2)
    event_at(RETAINED_FROM - timedelta(days=1), 3)
    audit_purge(now=NOW)
    assert AuditPurge.objects.get().last_event_id == first.pk
    assert AccessEvent.objects.count() == 2


def test_an_open_alert_stops_the_purge_before_its_event_and_reviewed_alerts_go_with_theirs(db, cast):
    events = trail()
    alert = Alert.objects.create(
        kind=Alert.Kind.SELF_CLAIM,
        reference="SC-1",
        event=events["older-middle"],
        raised_at=events["older-middle"].occurred_at,
    )

    stopped = audit_purge(now=NOW)

    assert (stopped.events_removed, stopped.stopped_by_alert_id) == (1, alert.pk)
    assert AccessEvent.objects.filter(pk=events["older-middle"].pk).exists()
    alert_review(
        alert_id=alert.pk,
        reviewer=Reviewer(user_id=cast.privacy_fay.pk, username="privacy.fay"),
        outcome=Alert.Outcome.APPROPRIATE,
        note="Referred by the GP",
    )
    assert LogEntry.objects.get_for_object(alert).exists()

    finished = audit_purge(now=NOW)

    assert (finished.events_removed, finished.alerts_removed, finished.stopped_by_alert_id) == (2, 1, None)
    assert not Alert.objects.filter(pk=alert.pk).exists()
    assert not LogEntry.objects.get_for_object(alert).exists()
    assert list(audit_trail_verify(KEY)) == []


def test_open_alerts_and_recent_reviewed_alerts_about_no_event_stay(db):
    trail()
    moment = RETAINED_FROM - timedelta(days=1)
    reviewed = {"reviewed_at": moment, "outcome": Alert.Outcome.APPROPRIATE}
    old_reviewed = Alert.objects.create(
        kind=Alert.Kind.CASE_OVERDUE, reference="OBJ-1", raised_at=moment, **reviewed
    )
    old_open = Alert.objects.create(kind=Alert.Kind.CASE_OVERDUE, reference="OBJ-2", raised_at=moment)
    recent = Alert.objects.create(
        kind=Alert.Kind.CASE_OVERDUE, reference="OBJ-3", raised_at=RETAINED_FROM, **reviewed
    )

    assert audit_purge(now=NOW).alerts_removed == 1

    assert set(Alert.objects.values_list("pk", flat=True)) == {old_open.pk, recent.pk}
    assert not Alert.objects.filter(pk=old_reviewed.pk).exists()


def test_a_removed_middle_event_after_a_purge_is_found(db):
    events = trail()
    audit_purge(now=NOW)
    owner_runs("DELETE FROM audit_accessevent WHERE id = %s", [events["second-inside"].pk])
    assert (
        f"the first: chain broken at event {events['inside'].pk}: link to the previous row does not match"
        in first_break()
    )


def test_a_removed_newest_event_after_a_purge_is_found(db):
    events = trail()
    audit_purge(now=NOW)
    checkpoint = AuditCheckpoint.objects.order_by("id").last()
    owner_runs("DELETE FROM audit_accessevent WHERE id = %s", [events["inside"].pk])
    assert (
        f"the first: event {events['inside'].pk} removed: checkpoint {checkpoint.pk} recorded head "
        f"{events['inside'].pk} of 6 events" in first_break()
    )


def test_the_first_event_removed_right_after_a_purge_is_found(db):
    events = trail()
    audit_purge(now=NOW)
    owner_runs("DELETE FROM audit_accessevent WHERE id = %s", [events["at-the-line"].pk])
    assert (
        f"the first: chain broken at event {events['second-inside'].pk}: link to the previous row does not match"
        in first_break()
    )


def test_events_removed_without_a_purge_record_are_found_by_their_checkpoint(db):
    events = trail()
    checkpoint = AuditCheckpoint.objects.order_by("id").first()
    owner_runs("DELETE FROM audit_accessevent WHERE id <= %s", [events["just-past"].pk])
    assert (
        f"the first: event {events['just-past'].pk} removed: checkpoint {checkpoint.pk} recorded head "
        f"{events['just-past'].pk} of 3 events" in first_break()
    )


def test_the_oldest_events_removed_without_a_purge_record_break_the_first_link(db):
    events = [event_at(RETAINED_FROM - timedelta(days=n), n) for n in (3, 2, 1)]
    owner_runs("DELETE FROM audit_accessevent WHERE id = %s", [events[0].pk])
    assert (
        f"the first: chain broken at event {events[1].pk}: link to the previous row does not match"
        in first_break()
    )


def test_a_purge_record_forged_without_the_key_is_found(db):
    events = trail()
    head = events["older-middle"]
    owner_runs("DELETE FROM audit_accessevent WHERE id <= %s", [head.pk])
    forged = AuditPurge.objects.create(
        created_at=NOW,
        retained_from=RETAINED_FROM,
        last_event_id=head.pk,
        event_count=2,
        head_hash=head.hash,
        removed_count=2,
        signature=secrets.token_hex(32),
    )
    assert f"the first: purge {forged.pk}'s signature does not verify" in first_break()


def test_an_unsigned_purge_record_is_found(db):
    events = trail()
    head = events["old"]
    owner_runs("DELETE FROM audit_accessevent WHERE id <= %s", [head.pk])
    forged = AuditPurge.objects.create(
        created_at=NOW,
        retained_from=RETAINED_FROM,
        last_event_id=head.pk,
        event_count=1,
        head_hash=head.hash,
        removed_count=1,
    )
    assert f"the first: purge {forged.pk}'s signature does not verify" in first_break()


def test_a_purge_record_that_claims_events_still_held_is_found(db, settings):
    events = trail()
    settings.AUDIT_ANCHOR_KEY = ""
    head = events["older-middle"]
    AuditPurge.objects.create(
        created_at=NOW,
        retained_from=RETAINED_FROM,
        last_event_id=head.pk,
        event_count=2,
        head_hash=head.hash,
        removed_count=2,
    )
    message = first_break()
    assert f"the first: chain broken at event {events['old'].pk}: still held" in message


def test_checkpoints_before_the_purge_must_agree_with_its_counts(db, settings):
    events = trail()
    audit_purge(now=NOW)
    settings.AUDIT_ANCHOR_KEY = ""
    # A checkpoint the owner adds below the purge point, claiming more events than the ids leave room for.
    forged = AuditCheckpoint.objects.create(
        created_at=NOW, last_event_id=events["old"].pk, event_count=5, head_hash=events["old"].hash
    )
    assert f"the first: the counts do not agree with the purge's: checkpoint {forged.pk}" in first_break()


def test_purge_refuses_a_broken_chain_and_removes_nothing(db):
    events = trail()
    owner_runs("UPDATE audit_accessevent SET outcome = 'denied' WHERE id = %s", [events["old"].pk])
    with pytest.raises(PurgeRefused, match=f"chain broken at event {events['old'].pk}"):
        audit_purge(now=NOW)
    assert AccessEvent.objects.count() == 6
    assert not AuditPurge.objects.exists()


def test_purge_refuses_without_the_key(db, settings):
    trail()
    settings.AUDIT_ANCHOR_KEY = ""
    with pytest.raises(PurgeRefused, match="AUDIT_ANCHOR_KEY"):
        audit_purge(now=NOW)
    assert AccessEvent.objects.count() == 6


def test_a_purge_is_written_to_the_anchor_log(db, caplog):
    events = trail()
    with caplog.at_level("INFO", logger="sharedcare.audit.anchor"):
        audit_purge(now=NOW)
    purge = AuditPurge.objects.get()
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit purge")]
    assert (
        f"audit purge {purge.pk} at {NOW.isoformat()}: 3 events before {RETAINED_FROM.isoformat()} removed; head "
        f"event {events['just-past'].pk}, 3 events, head hash {purge.head_hash}, signature {purge.signature}"
    ) == line


def test_purge_records_cannot_be_changed_or_deleted(db):
    trail()
    audit_purge(now=NOW)
    for statement in ("UPDATE audit_auditpurge SET event_count = 9", "DELETE FROM audit_auditpurge"):
        with (
            pytest.raises(DatabaseError, match="Cannot update or delete"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert AuditPurge.objects.get().event_count == 3


def test_the_command_purges_and_its_dry_run_does_not(db, capsys):
    # Events in 2000: past eight years by any clock this runs under.
    old = [event_at(datetime(2000, 1, day, tzinfo=UTC), day) for day in (1, 2)]

    call_command("audit_purge", dry_run=True)
    assert "Would remove 2 events before" in capsys.readouterr().out
    assert AccessEvent.objects.count() == 2

    call_command("audit_purge")
    purge = AuditPurge.objects.get()
    assert (
        f"up to event {old[-1].pk}, and 0 reviewed alerts; purge record {purge.pk}."
        in capsys.readouterr().out
    )
    assert not AccessEvent.objects.exists()


def test_the_command_says_why_it_refuses(db, settings):
    settings.AUDIT_ANCHOR_KEY = ""
    with pytest.raises(CommandError, match="AUDIT_ANCHOR_KEY is not set"):
        call_command("audit_purge")


@pytest.mark.parametrize("days", ["364", "0", "eight years"])
def test_settings_refuse_a_retention_under_a_year(days):
    environment = {**os.environ, "AUDIT_RETENTION_DAYS": days}
    result = subprocess.run(
        [sys.executable, "-c", "import sharedcare.settings"], env=environment, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "AUDIT_RETENTION_DAYS must" in result.stderr


@pytest.fixture
def application_role(transactional_db):
    """A NOLOGIN role holding every privilege on the audit tables, as default privileges would give it."""
    role = f"sharedcare_app_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        cursor.execute(
            f"GRANT ALL ON audit_accessevent, audit_auditcheckpoint, audit_auditpurge, audit_alert, "
            f"audit_alertscan TO {role}"
        )
    yield role
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {role}")
        cursor.execute(f"DROP ROLE {role}")


def as_role(role: str, sql: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        cursor.execute(sql)


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_accessevent",
        "UPDATE audit_auditpurge SET event_count = 0",
        "DELETE FROM audit_auditpurge",
        "TRUNCATE audit_auditpurge",
        "DELETE FROM audit_alert",
        "TRUNCATE audit_alert CASCADE",
        "DELETE FROM audit_alertscan",
        "TRUNCATE audit_alertscan",
    ],
)
def test_the_restricted_application_role_can_neither_purge_nor_rewrite_purges(application_role, statement):
    trail()
    audit_purge(now=NOW)
    call_command("audit_role_restrict", role=application_role)
    with pytest.raises(DatabaseError, match="permission denied"):
        as_role(application_role, statement)
    assert AuditPurge.objects.get().event_count == 3


def test_the_restricted_application_role_reads_purges_and_moves_the_scan_on(application_role):
    trail()
    audit_purge(now=NOW)
    AlertScan.objects.create(rule="own-record")
    call_command("audit_role_restrict", role=application_role)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {application_role}")
        cursor.execute("UPDATE audit_alertscan SET last_event_id = 5")
        cursor.execute("UPDATE audit_alert SET review_note = ''")
        checkpoint = audit_checkpoint_write()
    assert checkpoint.event_count == 6
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"SET LOCAL ROLE {application_role}")
        audit_purge(now=NOW + timedelta(days=20))
