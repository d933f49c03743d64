"""The COPY upsert: the same rows and counts as Django's bulk_create wrote, and the version rules held in SQL too."""

import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from records.ingest import upsert
from records.ingest.mapping import MappedEntry, map_resource
from records.ingest.upsert import QUARANTINE_COLUMNS, entries_upsert, quarantined_insert
from records.models import IngestRun, QuarantinedRecord, RecordEntry
from tests.builders import SNOMED, make_run

# Everything COPY's text format must escape, and text that is not ASCII.
AWKWARD = 'Café "quoted" back\\slash\ttab\nnew line\r return \u2013 ü 🩺'
# Written by the database or by the run, so different between two writes of the same resource.
NOT_CONTENT = {"id", "organisation", "feed", "ingest_run", "created_at", "updated_at"}


def condition(source_id: str | None, display: str = "Asthma", **extra: object) -> MappedEntry:
    resource = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": SNOMED, "code": "195967001", "display": display}], "text": display},
        "subject": {"reference": "Patient/p1"},
        **extra,
    }
    if source_id is not None:
        resource["id"] = source_id
    return map_resource(resource)


def content(entry: RecordEntry) -> dict:
    return {
        field.name: getattr(entry, field.attname)
        for field in RecordEntry._meta.concrete_fields
        if field.name not in NOT_CONTENT
    }


def orm_row(mapped: MappedEntry, patient_id: int, feed, run: IngestRun) -> RecordEntry:
    """The row as the bulk_create upsert this module replaced built it."""
    return RecordEntry(
        patient_id=patient_id,
        organisation_id=feed.organisation_id,
        feed=feed,
        ingest_run=run,
        **{name: getattr(mapped, name) for name in MappedEntry.__dataclass_fields__},
    )


def counts(result: upsert.BatchResult) -> tuple[int, int, int]:
    return result.created, result.updated, result.unchanged


def test_new_resources_are_written_exactly_as_the_orm_wrote_them(cast):
    batch = [
        (condition("c1", AWKWARD, onsetDateTime="2024-02-03T10:00:00+01:00"), cast.patient_a.pk),
        (condition("c2", "Chlamydia infection", meta={"versionId": "3"}), cast.patient_a.pk),
        (condition("c3", recordedDate="2024-05-06", note=[{"text": AWKWARD}]), cast.patient_b.pk),
    ]
    run = make_run(cast.cuh_feed)

    result = entries_upsert(cast.cuh_feed, run, batch)

    assert counts(result) == (3, 0, 0)
    assert result.touched_patient_ids == {cast.patient_a.pk, cast.patient_b.pk}
    reference_run = make_run(cast.cpft_feed)
    RecordEntry.objects.bulk_create(
        [orm_row(mapped, patient_id, cast.cpft_feed, reference_run) for mapped, patient_id in batch]
    )
    for source_id in ("c1", "c2", "c3"):
        written = RecordEntry.objects.get(organisation=cast.cuh, source_id=source_id)
        reference = RecordEntry.objects.get(organisation=cast.cpft, source_id=source_id)
        assert content(written) == content(reference)
        assert (written.feed, written.ingest_run, written.created_at) == (
            cast.cuh_feed,
            run,
            written.updated_at,
        )
    assert RecordEntry.objects.get(organisation=cast.cuh, source_id="c1").display == AWKWARD


def test_the_same_batch_again_writes_nothing_and_touches_no_one(cast):
    batch = [(condition(f"c{n}"), cast.patient_a.pk) for n in range(3)]
    entries_upsert(cast.cuh_feed, make_run(cast.cuh_feed), batch)
    before = {entry.pk: (entry.updated_at, entry.ingest_run_id) for entry in RecordEntry.objects.all()}

    again = entries_upsert(cast.cuh_feed, make_run(cast.cuh_feed), batch)

    assert counts(again) == (0, 0, 3)
    assert again.touched_patient_ids == set()
    assert {
        entry.pk: (entry.updated_at, entry.ingest_run_id) for entry in RecordEntry.objects.all()
    } == before


def test_a_changed_resource_is_updated_in_place_and_both_patients_are_touched(cast):
    first_run, second_run = make_run(cast.cuh_feed), make_run(cast.cuh_feed)
    entries_upsert(cast.cuh_feed, first_run, [(condition("c1", "Asthma"), cast.patient_a.pk)])
    entry = RecordEntry.objects.get(organisation=cast.cuh, source_id="c1")

    result = entries_upsert(
        cast.cuh_feed, second_run, [(condition("c1", "Severe asthma"), cast.patient_b.pk)]
    )

    assert counts(result) == (0, 1, 0)
    assert result.touched_patient_ids == {cast.patient_a.pk, cast.patient_b.pk}
    updated = RecordEntry.objects.get(pk=entry.pk)
    assert (updated.summary, updated.patient, updated.ingest_run) == (
        "Severe asthma",
        cast.patient_b,
        second_run,
    )
    assert updated.created_at == entry.created_at < updated.updated_at
    assert updated.resource["code"]["text"] == "Severe asthma"


OLDER_AND_NEWER = [
    ({"lastUpdated": "2024-06-01T00:00:00Z"}, {"lastUpdated": "2024-01-01T00:00:00Z"}),
    ({"versionId": "10"}, {"versionId": "9"}),
    (
        {"versionId": "2", "lastUpdated": "2024-06-01T00:00:00Z"},
        {"versionId": "3", "lastUpdated": "2024-01-01T00:00:00Z"},
    ),
]
OLDER_AND_NEWER_IDS = ["last-updated", "version-id", "last-updated-wins-over-version-id"]


@pytest.mark.parametrize(("newer_meta", "older_meta"), OLDER_AND_NEWER, ids=OLDER_AND_NEWER_IDS)
def test_an_older_copy_is_counted_unchanged_and_never_overwrites(cast, newer_meta, older_meta):
    entries_upsert(
        cast.cuh_feed,
        make_run(cast.cuh_feed),
        [(condition("c1", "Newer", meta=newer_meta), cast.patient_a.pk)],
    )

    late = entries_upsert(
        cast.cuh_feed,
        make_run(cast.cuh_feed),
        [(condition("c1", "Older", meta=older_meta), cast.patient_a.pk)],
    )

    assert counts(late) == (0, 0, 1)
    assert late.touched_patient_ids == set()
    assert RecordEntry.objects.get(organisation=cast.cuh, source_id="c1").summary == "Newer"


def test_the_same_content_twice_in_a_batch_is_one_entry_counted_once_each(cast):
    # No id: the content decides the source id, so both copies are the same entry.
    twice = condition(None, "Hay fever")

    result = entries_upsert(
        cast.cuh_feed, make_run(cast.cuh_feed), [(twice, cast.patient_a.pk), (twice, cast.patient_a.pk)]
    )

    assert counts(result) == (1, 0, 1)
    assert RecordEntry.objects.filter(organisation=cast.cuh, source_id=twice.source_id).count() == 1


@pytest.mark.parametrize(
    ("stored", "incoming", "expected", "summary"),
    [
        (
            condition("c1", "Newer", meta={"versionId": "10"}),
            condition("c1", "Older", meta={"versionId": "9"}),
            (0, 0, 1),
            "Newer",
        ),
        (condition("c1", "Asthma"), condition("c1", "Asthma"), (0, 0, 1), "Asthma"),
        (
            condition("c1", "Older", meta={"versionId": "9"}),
            condition("c1", "Newer", meta={"versionId": "10"}),
            (0, 1, 0),
            "Newer",
        ),
    ],
    ids=["older", "same", "newer"],
)
def test_a_row_written_after_the_batch_read_what_was_held_still_follows_the_rules(
    cast, monkeypatch, stored, incoming, expected, summary
):
    # As if another run of the same partner wrote the row between this batch's read and its write.
    entries_upsert(cast.cuh_feed, make_run(cast.cuh_feed), [(stored, cast.patient_a.pk)])
    monkeypatch.setattr(upsert, "_held", lambda feed, batch: {})

    result = entries_upsert(cast.cuh_feed, make_run(cast.cuh_feed), [(incoming, cast.patient_a.pk)])

    assert counts(result) == expected
    assert RecordEntry.objects.get(organisation=cast.cuh, source_id="c1").summary == summary


def test_a_batch_costs_the_same_statements_whatever_its_size(cast):
    statements = []
    for size in (2, 300):
        batch = [(condition(f"s{size}-{n}"), cast.patient_a.pk) for n in range(size)]
        run = make_run(cast.cuh_feed)
        with CaptureQueriesContext(connection) as queries:
            entries_upsert(cast.cuh_feed, run, batch)
        statements.append([query["sql"].split()[0] for query in queries.captured_queries])

    # Read what is held, create the staging table, empty it, copy the rows in, move them into place.
    assert statements[0] == statements[1] == ["SELECT", "CREATE", "TRUNCATE", "COPY", "INSERT"]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_batch_is_written_and_no_staging_table_is_left(cast):
    result = entries_upsert(cast.cuh_feed, make_run(cast.cuh_feed), [(condition("c1"), cast.patient_a.pk)])

    assert counts(result) == (1, 0, 0)
    assert RecordEntry.objects.filter(organisation=cast.cuh, source_id="c1").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.ingest_staging_records_recordentry')")
        assert cursor.fetchone() == (None,)


def quarantine_row(payload: str) -> tuple:
    """A record the pipeline quarantines, as the QUARANTINE_COLUMNS values it hands to `quarantined_insert`."""
    return (
        QuarantinedRecord.Reason.INVALID_RESOURCE,
        f"1 validation error(s): {AWKWARD}",
        "Condition",
        "c1",
        "batch.ndjson:1",
        payload,
        hashlib.sha256(payload.encode()).hexdigest(),
        "9990000018",
        "",
        timezone.now(),
    )


def test_quarantined_records_are_written_as_bulk_create_wrote_them_and_a_pending_one_only_once(cast):
    run, reference_run = make_run(cast.cuh_feed), make_run(cast.cpft_feed)
    payloads = [f'{{"resourceType": "Condition", "note": "{AWKWARD}"}}', "{not json at all\\"]
    rows = [quarantine_row(payload) for payload in payloads]

    quarantined_insert(cast.cuh_feed, run, rows)
    quarantined_insert(cast.cuh_feed, make_run(cast.cuh_feed), rows[:1])
    QuarantinedRecord.objects.bulk_create(
        [
            QuarantinedRecord(
                feed=cast.cpft_feed,
                ingest_run=reference_run,
                **dict(zip(QUARANTINE_COLUMNS, row, strict=True)),
            )
            for row in rows
        ]
    )

    written = QuarantinedRecord.objects.filter(feed=cast.cuh_feed).order_by("payload_hash")
    reference = QuarantinedRecord.objects.filter(feed=cast.cpft_feed).order_by("payload_hash")
    assert [record.ingest_run for record in written] == [run, run]
    skip = {"id", "feed", "ingest_run", "created_at"}
    fields = [field.attname for field in QuarantinedRecord._meta.concrete_fields if field.name not in skip]
    assert [[getattr(r, f) for f in fields] for r in written] == [
        [getattr(r, f) for f in fields] for r in reference
    ]
