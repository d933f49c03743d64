"""Volume and corrupt input in every format: one bad record among a thousand, and files that cannot be read at all."""

import csv
import io
import json

import pytest

from records.ingest.pipeline import ingest_path, ingest_texts
from records.models import Feed, IngestRun, QuarantinedRecord, RecordEntry
from tests.builders import NHS

Reason = QuarantinedRecord.Reason
CSV_MAPPING = {
    "nhs_number": "NHS Number",
    "family_name": "Surname",
    "record_type": "Record Type",
    "record_id": "Ref",
    "date": "Date",
    "description": "Description",
    "types": {"social-context": "Observation-social-history"},
}
ADT = (
    "MSH|^~\\&|PAS|RGT|SHCR|QUE|20240501101500||ADT^A01^ADT_A01|M1|P|2.4\r"
    "EVN|A01|20240501101500\r"
    "PID|1||9990000018^^^NHS^NH||ASHBY^ALICE||19500314|F\r"
    "PV1|1|I|WARD7^^^RGT||||||||||||||||V1|||||||||||||||||||||||||20240501100000\r"
)


@pytest.fixture
def feeds(cast) -> dict[str, Feed]:
    csv_feed = Feed.objects.create(
        code="county-csv",
        organisation=cast.county,
        name="Extract",
        format=Feed.Format.CSV,
        csv_mapping=CSV_MAPPING,
    )
    hl7_feed = Feed.objects.create(
        code="cuh-pas", organisation=cast.cuh, name="PAS", format=Feed.Format.HL7V2
    )
    return {"fhir": cast.cuh_feed, "csv": csv_feed, "hl7v2": hl7_feed}


def observation(n: int, note: str = "") -> dict:
    resource = {
        "resourceType": "Observation",
        "id": f"o{n}",
        "status": "final",
        "code": {"text": f"Reading {n}"},
        "subject": {"identifier": {"system": NHS, "value": "9990000018"}},
        "effectiveDateTime": "2024-01-02",
    }
    if note:
        resource["note"] = [{"text": note}]
    return resource


def ndjson(count: int, bad_at: int | None = None) -> bytes:
    lines = [json.dumps(observation(n)) for n in range(count)]
    if bad_at is not None:
        lines[bad_at] = json.dumps(observation(bad_at) | {"effectiveDateTime": "second Tuesday"})
    return "\n".join(lines).encode()


def csv_extract(count: int, bad_at: int | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["NHS Number", "Surname", "Record Type", "Ref", "Date", "Description"])
    for n in range(count):
        date = "2024-02-30" if n == bad_at else "2024-01-02"
        writer.writerow(["9990000018", "Ashby", "social-context", f"S{n}", date, f"Fact {n}"])
    return out.getvalue().encode()


def test_a_thousand_ndjson_records_with_one_bad_ingest_999_and_quarantine_that_one(feeds):
    run = ingest_texts(feeds["fhir"], [("big.ndjson", ndjson(1000, bad_at=417))])

    assert (run.resources_read, run.created, run.quarantined) == (1000, 999, 1)
    bad = QuarantinedRecord.objects.get(ingest_run=run)
    assert (bad.reason, bad.location, bad.source_id) == (Reason.INVALID_RESOURCE, "big.ndjson:418", "o417")
    assert "effectiveDateTime" in bad.detail
    assert json.loads(bad.raw_payload)["effectiveDateTime"] == "second Tuesday"


def test_a_thousand_csv_rows_with_one_bad_ingest_999_and_quarantine_that_one(feeds):
    run = ingest_texts(feeds["csv"], [("big.csv", csv_extract(1000, bad_at=417))])

    assert (run.resources_read, run.created, run.quarantined) == (1000, 999, 1)
    bad = QuarantinedRecord.objects.get(ingest_run=run)
    assert (bad.reason, bad.location) == (Reason.INVALID_RESOURCE, "big.csv:419")
    assert "Line 419: Date is not a date" in bad.detail
    assert bad.raw_payload.endswith("9990000018,Ashby,social-context,S417,2024-02-30,Fact 417")


CORRUPT = {
    "fhir": {
        "truncated": ndjson(3)[:-25],
        "wrong-encoding": json.dumps(observation(1, "Café"), ensure_ascii=False).encode("cp1252"),
        "utf-16": json.dumps(observation(1)).encode("utf-16"),
        "empty": b"",
        "entity-bomb": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Observation xmlns="http://hl7.org/fhir"/>',
        "external-entity": b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"/>',
    },
    "csv": {
        "truncated": csv_extract(3)[:-20],
        "wrong-encoding": csv_extract(1).decode().replace("Fact 0", "Café").encode("cp1252"),
        "utf-16": csv_extract(1).decode().encode("utf-16"),
        "empty": b"\n\n",
        "not-csv": b"\x00\x01\x02 binary junk \x00",
    },
    "hl7v2": {
        "truncated": ADT.encode()[:40],
        "wrong-encoding": ADT.replace("ASHBY", "ÅSHBY").encode("cp1252"),
        "utf-16": ADT.encode("utf-16"),
        "empty": b"",
        "not-hl7": b"<html>Service unavailable</html>",
    },
}
CASES = [(kind, name) for kind, cases in CORRUPT.items() for name in cases]


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{kind}-{name}" for kind, name in CASES])
def test_corrupt_input_is_quarantined_with_a_clear_reason_and_its_raw_text_and_the_run_goes_on(
    feeds, kind, name
):
    data = CORRUPT[kind][name]
    location = {"fhir": "bad.ndjson", "csv": "bad.csv", "hl7v2": "bad.hl7"}[kind]

    run = ingest_texts(feeds[kind], [(location, data)])

    assert run.status == IngestRun.Status.SUCCEEDED
    assert run.created + run.updated + run.unchanged + run.quarantined == run.resources_read
    rejected = list(QuarantinedRecord.objects.filter(ingest_run=run))
    assert rejected, "nothing was kept of the corrupt input"
    assert len(rejected) == run.quarantined
    assert all(record.detail and record.reason for record in rejected)
    kept = "".join(record.raw_payload for record in rejected)
    # Nothing is lost: what the run did not use is in the quarantine, as readable text.
    assert kept or not data.strip()
    assert not RecordEntry.objects.filter(ingest_run=run, summary__contains="Café").exists()


@pytest.mark.parametrize("kind", ["fhir", "csv", "hl7v2"])
def test_a_file_over_the_size_limit_is_quarantined_unread_in_every_format(feeds, settings, tmp_path, kind):
    settings.INGEST_MAX_FILE_BYTES = 2048
    data = {"fhir": ndjson(50), "csv": csv_extract(100), "hl7v2": (ADT * 20).encode()}[kind]
    path = tmp_path / {"fhir": "big.ndjson", "csv": "big.csv", "hl7v2": "big.hl7"}[kind]
    path.write_bytes(data)

    run = ingest_path(feeds[kind], path)

    rejected = QuarantinedRecord.objects.get(ingest_run=run)
    assert (run.resources_read, run.quarantined, run.created) == (1, 1, 0)
    assert rejected.reason == Reason.UNREADABLE
    assert f"The file is {len(data)} bytes" in rejected.detail and "INGEST_MAX_FILE_BYTES" in rejected.detail
    assert rejected.raw_payload == data[: 64 * 1024].decode()  # the first 64 kB, kept as a preview


def test_a_50_mb_ndjson_file_under_the_limit_is_read_whole(feeds, tmp_path):
    # 1,000 observations of about 50 kB each: the size of the file, not the count of records, is under test.
    note = "x" * 53_000
    path = tmp_path / "fifty.ndjson"
    with path.open("w") as handle:
        for n in range(1000):
            handle.write(json.dumps(observation(n, note)) + "\n")
    assert path.stat().st_size > 50 * 1024 * 1024

    run = ingest_path(feeds["fhir"], path)

    # How fast is for `make bench` to say, not for a test: it would fail on a busy machine.
    assert (run.resources_read, run.created, run.quarantined) == (1000, 1000, 0)
