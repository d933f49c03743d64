"""Whole runs: idempotent bulk upserts, version order, relationships, counts, failure, and the command around them."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import records.ingest.ingestion as ingestion
import records.ingest.pipeline as pipeline
from consent.models import LegitimateRelationship
from records.ingest.pipeline import IngestFailed, ingest_path
from records.models import Feed, IngestRun, QuarantinedRecord, RecordEntry
from tests.builders import NHS, condition, ingest


def about(patient) -> dict:
    return {"identifier": {"system": NHS, "value": patient.nhs_number}}


def test_the_same_input_twice_writes_nothing_the_second_time(cast):
    resources = [condition(f"c{n}", cast.patient_a, f"Problem {n}") for n in range(5)]
    first = ingest(cast.cuh_feed, *resources)
    stamps = dict(RecordEntry.objects.values_list("pk", "updated_at"))

    second = ingest(cast.cuh_feed, *resources)

    assert (first.created, first.updated, first.unchanged) == (5, 0, 0)
    assert (second.created, second.updated, second.unchanged, second.quarantined) == (0, 0, 5, 0)
    assert dict(RecordEntry.objects.values_list("pk", "updated_at")) == stamps
    written = RecordEntry.objects.filter(source_id__in=[r["id"] for r in resources])
    assert set(written.values_list("ingest_run", flat=True)) == {first.pk}


def test_a_changed_resource_is_updated_in_place(cast):
    first = ingest(cast.cuh_feed, condition("c1", cast.patient_a, "Asthma"))
    entry = RecordEntry.objects.get(ingest_run=first)

    second = ingest(cast.cuh_feed, condition("c1", cast.patient_a, "Severe asthma"))

    assert (second.created, second.updated, second.unchanged) == (0, 1, 0)
    entry.refresh_from_db()
    assert (entry.summary, entry.ingest_run_id) == ("Severe asthma", second.pk)
    assert entry.resource["code"]["coding"][0]["display"] == "Severe asthma"
    assert entry.updated_at > entry.created_at


@pytest.mark.parametrize(
    ("newer_meta", "older_meta"),
    [
        ({"lastUpdated": "2024-06-01T00:00:00Z"}, {"lastUpdated": "2024-01-01T00:00:00Z"}),
        ({"versionId": "10"}, {"versionId": "9"}),
    ],
    ids=["last-updated", "version-id"],
)
def test_an_older_version_never_overwrites_a_newer_one(cast, newer_meta, older_meta):
    ingest(cast.cuh_feed, condition("c1", cast.patient_a, "Newer", meta=newer_meta))

    late = ingest(cast.cuh_feed, condition("c1", cast.patient_a, "Older", meta=older_meta))

    assert (late.created, late.updated, late.unchanged) == (0, 0, 1)
    assert RecordEntry.objects.get(source_id="c1").summary == "Newer"


def test_copies_of_one_resource_in_a_run_keep_the_newest_whatever_the_order(cast):
    older = condition("c1", cast.patient_a, "Older", meta={"lastUpdated": "2024-01-01T00:00:00Z"})
    newer = condition("c1", cast.patient_a, "Newer", meta={"lastUpdated": "2024-06-01T00:00:00Z"})

    first = ingest(cast.cuh_feed, newer, older)
    second = ingest(cast.cuh_feed, older, newer)

    assert (first.created, first.unchanged) == (1, 1)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)
    assert RecordEntry.objects.get(source_id="c1").summary == "Newer"


def test_unversioned_copies_in_one_run_keep_the_last_and_a_rerun_changes_nothing(cast, monkeypatch):
    # One resource per batch, so the copies meet in the database rather than inside one batch.
    monkeypatch.setattr(ingestion, "BATCH_SIZE", 1)
    first_copy, last_copy = condition("c1", cast.patient_a, "First"), condition("c1", cast.patient_a, "Last")

    first = ingest(cast.cuh_feed, first_copy, last_copy)
    second = ingest(cast.cuh_feed, first_copy, last_copy)

    assert RecordEntry.objects.get(source_id="c1").summary == "Last"
    assert (first.created, first.updated, first.unchanged) == (1, 0, 1)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)


def test_an_attendance_gives_the_hospital_a_relationship_and_a_registration_gives_the_practice_one(cast):
    patient = cast.patient_b
    assert not LegitimateRelationship.objects.filter(
        content_object_id=patient.pk, group=cast.cuh.group
    ).exists()
    ended = timezone.now() - timedelta(days=10)
    attendance = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "type": [{"text": "Emergency department attendance"}],
        "subject": about(patient),
        "period": {"start": (ended - timedelta(hours=4)).isoformat(), "end": ended.isoformat()},
    }

    ingest(cast.cuh_feed, attendance)

    relationship = LegitimateRelationship.objects.get(content_object_id=patient.pk, group=cast.cuh.group)
    assert relationship.basis == LegitimateRelationship.Basis.CARE_EVENT
    # An acute trust's window after an attendance (RELATIONSHIP_ENCOUNTER_DAYS_BY_KIND).
    assert relationship.valid_until == ended + timedelta(days=30)
    assert LegitimateRelationship.objects.filter(
        content_object_id=patient.pk,
        group=cast.practice_b.group,
        basis=LegitimateRelationship.Basis.REGISTERED_PRACTICE,
    ).exists()


def test_a_run_that_fails_part_way_writes_nothing_and_says_so(cast, monkeypatch):
    real_map = ingestion.map_resource

    def map_or_fail(resource):
        if resource.get("id") == "c3":
            raise RuntimeError("disk on fire")
        return real_map(resource)

    monkeypatch.setattr(ingestion, "map_resource", map_or_fail)
    entries_before = RecordEntry.objects.count()
    resources = [condition(f"c{n}", cast.patient_a) for n in range(5)] + [{"resourceType": "Organization"}]

    with pytest.raises(IngestFailed) as failure:
        ingest(cast.cuh_feed, *resources)

    run = IngestRun.objects.get(pk=failure.value.run.pk)
    assert run.status == IngestRun.Status.FAILED
    assert "disk on fire" in run.error
    assert run.finished_at is not None
    assert (run.resources_read, run.created, run.quarantined) == (0, 0, 0)
    assert RecordEntry.objects.count() == entries_before
    assert not QuarantinedRecord.objects.filter(ingest_run=run).exists()
    cast.cuh_feed.refresh_from_db()
    assert cast.cuh_feed.last_success_at is None


def test_the_command_reports_a_failed_run_as_an_error(cast, monkeypatch, tmp_path):
    monkeypatch.setattr(ingestion, "relationships_refresh", lambda ids: 1 / 0)
    (tmp_path / "c.json").write_text(json.dumps(condition("c1", cast.patient_a)))

    with pytest.raises(CommandError, match="failed and wrote nothing: ZeroDivisionError"):
        call_command(
            "ingest", str(tmp_path), "--feed", cast.cuh_feed.code, stdout=StringIO(), stderr=StringIO()
        )

    assert IngestRun.objects.filter(feed=cast.cuh_feed).latest("pk").status == IngestRun.Status.FAILED


def test_a_successful_run_records_itself_and_the_feed_knows(cast):
    before = timezone.now()

    run = ingest(cast.cuh_feed, condition("c1", cast.patient_a), {"resourceType": "Location", "id": "l1"})

    run.refresh_from_db()
    assert run.status == IngestRun.Status.SUCCEEDED
    assert run.started_at >= before and run.finished_at >= run.started_at
    assert (run.resources_read, run.created, run.quarantined) == (2, 1, 1)
    assert run.error == ""
    assert len(run.checksum) == 64
    cast.cuh_feed.refresh_from_db()
    assert cast.cuh_feed.last_success_at == run.finished_at
    rejected = QuarantinedRecord.objects.get(ingest_run=run)
    assert (rejected.feed, rejected.location, rejected.source_id) == (cast.cuh_feed, "batch.ndjson:2", "l1")


def queries_to_ingest(feed, patient, how_many: int) -> int:
    resources = [condition(f"q{how_many}-{n}", patient) for n in range(how_many)]
    with CaptureQueriesContext(connection) as queries:
        ingest(feed, *resources)
    return len(queries)


def test_a_batch_costs_the_same_queries_whatever_its_size(cast):
    # No per-resource queries in the hot loop: 5 resources and 400 resources cost the same round trips.
    assert queries_to_ingest(cast.cuh_feed, cast.patient_a, 5) == queries_to_ingest(
        cast.cuh_feed, cast.patient_a, 400
    )


def test_a_second_batch_is_written_when_the_first_is_full(cast, monkeypatch):
    monkeypatch.setattr(ingestion, "BATCH_SIZE", 3)
    resources = [condition(f"b{n}", cast.patient_a) for n in range(8)]

    first = ingest(cast.cuh_feed, *resources)
    second = ingest(cast.cuh_feed, *resources)

    assert (first.created, second.unchanged) == (8, 8)


def test_an_unknown_feed_code_is_refused_with_the_codes_that_exist(cast, tmp_path):
    with pytest.raises(CommandError) as error:
        call_command("ingest", str(tmp_path), "--feed", "no-such-feed", stdout=StringIO())

    message = str(error.value)
    assert "no-such-feed" in message
    assert all(code in message for code in Feed.objects.values_list("code", flat=True))


def test_a_missing_path_is_refused_before_a_run_starts(cast, tmp_path):
    runs = IngestRun.objects.count()

    with pytest.raises(CommandError, match="There is no file or folder"):
        call_command("ingest", str(tmp_path / "absent"), "--feed", cast.cuh_feed.code, stdout=StringIO())
    with pytest.raises(FileNotFoundError):
        ingest_path(cast.cuh_feed, tmp_path / "absent")

    assert IngestRun.objects.count() == runs


def test_the_command_ends_with_counts_that_add_up_and_the_reasons(cast, tmp_path):
    lines = [json.dumps(condition("c1", cast.patient_a)), json.dumps({"resourceType": "Location"}), "{oops"]
    (tmp_path / "feed.ndjson").write_text("\n".join(lines))
    out = StringIO()

    call_command("ingest", str(tmp_path), "--feed", cast.cuh_feed.code, stdout=out, stderr=StringIO())

    output = out.getvalue()
    assert (
        "read 3 = created 1 + updated 0 + unchanged 0 + quarantined 2 (patients created 0, updated 0)"
        in output
    )
    assert "unreadable" in output and "unsupported-type" in output


def _estimated_entries() -> float:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [RecordEntry._meta.db_table]
        )
        return cursor.fetchone()[0]


def test_a_large_first_load_refreshes_the_planners_statistics_once_it_commits(
    cast, monkeypatch, django_capture_on_commit_callbacks
):
    """So that the next run's lookups of what is held use the unique index, not a scan of the partner's entries."""
    resources = [condition(f"c{n}", cast.patient_a) for n in range(6)]
    monkeypatch.setattr(pipeline, "ANALYZE_AFTER_CREATED", 6)

    with django_capture_on_commit_callbacks(execute=True) as small:
        ingest(cast.cuh_feed, *resources[:5])
    assert pipeline.entries_analyze not in small
    with django_capture_on_commit_callbacks(execute=True) as large:
        ingest(cast.gp_a_feed, *resources)

    assert pipeline.entries_analyze in large
    # ANALYZE counts the rows this (test) transaction wrote as live: the estimate is now the table's size.
    assert _estimated_entries() == RecordEntry.objects.count()
    # Only the columns the lookups filter on: sampling each resource's JSON would be most of the ANALYZE's time.
    analysed = _analysed_columns()
    assert {"organisation_id", "resource_type", "source_id", "patient_id", "section"} <= analysed
    assert "resource" not in analysed


def _analysed_columns() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_stats WHERE schemaname = current_schema() AND tablename = %s",
            [RecordEntry._meta.db_table],
        )
        return {name for (name,) in cursor.fetchall()}


def test_a_run_validates_in_as_many_processes_as_other_runs_leave_cores(cast, settings):
    """A validation worker takes a core; with every core busy with other runs it would only slow the machine."""
    mine = IngestRun.objects.create(feed=cast.cuh_feed)
    cores = pipeline.usable_cores()

    assert pipeline.validation_processes(2, mine) == min(2, cores)
    assert pipeline.validation_processes(1, mine) == 1
    # Runs going on elsewhere take their cores; one left marked running by a dead worker long ago does not.
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    IngestRun.objects.create(feed=cast.gp_a_feed, started_at=long_ago)
    IngestRun.objects.create(
        feed=cast.gp_a_feed, status=IngestRun.Status.SUCCEEDED, finished_at=timezone.now()
    )
    assert pipeline.validation_processes(2, mine) == min(2, cores)
    IngestRun.objects.bulk_create([IngestRun(feed=cast.gp_a_feed) for _ in range(cores - 1)])
    assert pipeline.validation_processes(2, mine) == 1
    assert pipeline.validation_processes(cores + 1, mine) == 1
    IngestRun.objects.create(feed=cast.gp_a_feed)
    assert pipeline.validation_processes(2, mine) == 1
