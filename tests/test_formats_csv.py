"""Council social-care CSV extracts: the declared mapping, rows into PRSB sections, and bad rows kept apart."""

import csv
import io

import pytest

from consent.models import LegitimateRelationship
from records.ingest.formats.csv_mapping import CsvMappingError, csv_mapping_check
from records.ingest.pipeline import IngestFailed, ingest_texts
from records.models import Feed, IngestRun, QuarantinedRecord, RecordEntry
from records.sections import Section

Reason = QuarantinedRecord.Reason

MAPPING = {
    "nhs_number": "NHS Number",
    "family_name": "Surname",
    "birth_date": "DOB",
    "birth_date_format": "%d/%m/%Y",
    "record_type": "Record Type",
    "record_id": "Case Ref",
    "date": "Start Date",
    "date_format": "%d/%m/%Y",
    "end_date": "End Date",
    "status": "Status",
    "description": "Description",
    "code": "Code",
    "types": {
        "assessment": "QuestionnaireResponse|Observation-survey",
        "care-plan": "CarePlan",
        "case": "EpisodeOfCare",
        "social-context": "Observation-social-history",
        "safeguarding": "Flag-safeguarding",
    },
}
HEADER = [
    "NHS Number",
    "Surname",
    "DOB",
    "Record Type",
    "Case Ref",
    "Start Date",
    "End Date",
    "Status",
    "Description",
    "Code",
]
ALICE = ["999 000 0018", "Ashby", "14/03/1950"]


@pytest.fixture
def council_feed(cast) -> Feed:
    return Feed.objects.create(
        code="county-extract",
        organisation=cast.county,
        name="Adult social care extract",
        format=Feed.Format.CSV,
        csv_mapping=MAPPING,
    )


def extract(*rows: list[str], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def row(
    record_type: str, ref: str, description: str, *, status: str = "Open", end: str = "", code: str = ""
) -> list[str]:
    return [*ALICE, record_type, ref, "02/01/2024", end, status, description, code]


def ingest(feed: Feed, data: bytes, name: str = "extract.csv") -> IngestRun:
    return ingest_texts(feed, [(name, data)])


def test_each_record_type_lands_in_its_prsb_section(council_feed, cast):
    data = extract(
        row("assessment", "A-1", "Care Act needs assessment"),
        row("care-plan", "CP-1", "Home care four calls a day"),
        row("Case", "C-1", "Adult social care case"),
        row("social-context", "S-1", "Lives alone", code="105529008"),
        row("safeguarding", "SG-1", "Section 42 enquiry"),
    )

    run = ingest(council_feed, data)

    assert (run.resources_read, run.created, run.quarantined) == (5, 5, 0)
    entries = {
        entry.source_id: entry
        for entry in RecordEntry.objects.filter(ingest_run=run).select_related("patient")
    }
    assert {ref: (e.resource_type, e.section) for ref, e in entries.items()} == {
        "A-1": ("Observation", Section.ASSESSMENTS),
        "CP-1": ("CarePlan", Section.PLANS),
        "C-1": ("EpisodeOfCare", Section.ENCOUNTERS),
        "S-1": ("Observation", Section.SOCIAL_CONTEXT),
        "SG-1": ("Flag", Section.SAFEGUARDING),
    }
    assert all(entry.patient == cast.patient_a for entry in entries.values())
    assert entries["S-1"].summary == "Lives alone"
    assert (entries["S-1"].code_system, entries["S-1"].code) == ("http://snomed.info/sct", "105529008")
    assert entries["C-1"].resource["managingOrganization"]["identifier"]["value"] == "CCC01"
    assert entries["C-1"].effective_at.date().isoformat() == "2024-01-02"
    assert entries["CP-1"].summary == "Home care four calls a day"
    # An open case gives the council an open-ended care-event relationship.
    relationship = LegitimateRelationship.objects.get(
        content_object_id=cast.patient_a.pk, group=cast.county.group
    )
    assert relationship.valid_until is None


def test_an_assessment_naming_its_form_becomes_a_questionnaire_response(council_feed):
    council_feed.csv_mapping = {**MAPPING, "questionnaire": "Form"}
    council_feed.save()
    data = extract(
        [*row("assessment", "A-1", "Carer's assessment", status="Completed"), "https://forms.example/carers"],
        [*row("assessment", "A-2", "Review"), ""],
        header=[*HEADER, "Form"],
    )

    run = ingest(council_feed, data)

    assert run.created == 2
    response = RecordEntry.objects.get(source_id="A-1")
    assert (response.resource_type, response.section, response.status) == (
        "QuestionnaireResponse",
        Section.ASSESSMENTS,
        "completed",
    )
    assert response.summary == "Questionnaire response: carers"
    assert RecordEntry.objects.get(source_id="A-2").resource_type == "Observation"


def test_the_same_extract_twice_changes_nothing_and_a_closed_case_updates_in_place(council_feed, cast):
    brian = ["9990000026", "Barton", "01/07/1962"]
    opened = [*brian, "case", "C-1", "02/01/2024", "", "Open", "Adult social care case", ""]
    shut = [*brian, "case", "C-1", "02/01/2024", "31/03/2024", "Closed", "Adult social care case", ""]

    first = ingest(council_feed, extract(opened))
    assert (
        LegitimateRelationship.objects.get(
            content_object_id=cast.patient_b.pk, group=cast.county.group
        ).valid_until
        is None
    )
    again = ingest(council_feed, extract(opened))
    closed = ingest(council_feed, extract(shut))

    assert (first.created, again.unchanged, closed.updated) == (1, 1, 1)
    entry = RecordEntry.objects.get(source_id="C-1")
    assert (entry.status, entry.effective_end.date().isoformat()) == ("finished", "2024-03-31")
    relationship = LegitimateRelationship.objects.get(
        content_object_id=cast.patient_b.pk, group=cast.county.group
    )
    assert relationship.valid_until is not None


def test_an_older_row_never_overwrites_a_newer_one(council_feed):
    council_feed.csv_mapping = {**MAPPING, "last_updated": "Modified"}
    council_feed.save()
    header = [*HEADER, "Modified"]
    newer = extract([*row("case", "C-1", "Newer"), "2024-06-01T09:00:00"], header=header)
    older = extract([*row("case", "C-1", "Older"), "2024-01-01T09:00:00"], header=header)

    ingest(council_feed, newer)
    late = ingest(council_feed, older)

    assert (late.updated, late.unchanged) == (0, 1)
    assert RecordEntry.objects.get(source_id="C-1").summary == "Newer"


@pytest.mark.parametrize(
    ("bad_row", "reason", "detail"),
    [
        (
            ["", "Ashby", "14/03/1950", "case", "C-9", "", "", "Open", "Case", ""],
            Reason.NO_NHS_NUMBER,
            "is empty",
        ),
        (
            ["9876544321", "Ashby", "", "case", "C-9", "", "", "Open", "Case", ""],
            Reason.INVALID_NHS_NUMBER,
            "Modulus 11",
        ),
        (
            [*ALICE, "case", "C-9", "31/02/2024", "", "Open", "Case", ""],
            Reason.INVALID_RESOURCE,
            "Start Date is not a date",
        ),
        (
            ["9990000018", "Ashby", "1950-03-14", "case", "C-9", "", "", "", "Case", ""],
            Reason.INVALID_RESOURCE,
            "DOB is not",
        ),
        (
            [*ALICE, "housing", "H-9", "", "", "Open", "Tenancy", ""],
            Reason.UNSUPPORTED_TYPE,
            "'housing' is not in",
        ),
        ([*ALICE, "case", "C-9", "", "", "Open"], Reason.UNREADABLE, "has 8 fields; the header has 10"),
        (
            [*ALICE, "case", "", "", "", "Open", "Case", ""],
            Reason.INVALID_RESOURCE,
            "Case Ref column is empty",
        ),
        ([*ALICE, "case", "C-9", "", "", "Pending", "Case", ""], Reason.INVALID_RESOURCE, "status 'Pending'"),
        ([*ALICE, "social-context", "S-9", "", "", "Open", "", ""], Reason.INVALID_RESOURCE, "needs a value"),
        (
            ["9990000026", "Ashby", "14/03/1950", "case", "C-9", "", "", "Open", "Case", ""],
            Reason.DEMOGRAPHIC_MISMATCH,
            "differ",
        ),
        (
            ["9990000034", "Cole", "", "case", "C-9", "", "", "Open", "Case", ""],
            Reason.UNKNOWN_PATIENT,
            "No patient is held",
        ),
    ],
)
def test_a_bad_row_is_quarantined_with_its_line_and_raw_text_and_the_others_go_in(
    council_feed, bad_row, reason, detail
):
    data = extract(row("case", "C-1", "First"), bad_row, row("case", "C-2", "Last"))

    run = ingest(council_feed, data)

    assert (run.resources_read, run.created, run.quarantined) == (3, 2, 1)
    bad = QuarantinedRecord.objects.get(ingest_run=run)
    assert (bad.reason, bad.location) == (reason, "extract.csv:3")
    assert detail in bad.detail
    header_line, raw_line = bad.raw_payload.split("\n")
    assert header_line == ",".join(HEADER)
    assert list(csv.reader([raw_line])) == [bad_row]
    number = bad_row[0].replace(" ", "")
    assert bad.nhs_number == (number if len(number) == 10 else "")


def test_a_quarantined_row_replays_through_the_same_feed(council_feed):
    data = extract(["9990000026", "Barton", "01/07/1962", "case", "C-9", "", "", "Pending", "Case", ""])
    bad = QuarantinedRecord.objects.get(ingest_run=ingest(council_feed, data))
    council_feed.csv_mapping = {**MAPPING, "statuses": {"Pending": "open"}}
    council_feed.save()

    replay = ingest_texts(
        council_feed, [(bad.location, bad.raw_payload.encode())], trigger=IngestRun.Trigger.REPLAY
    )

    assert (replay.created, replay.quarantined, replay.trigger) == (1, 0, IngestRun.Trigger.REPLAY)
    assert RecordEntry.objects.get(source_id="C-9").status == "active"


def test_a_record_id_that_is_not_a_fhir_id_is_kept_as_an_identifier(council_feed):
    run = ingest(council_feed, extract(row("case", "CASE/2024 7", "Case")))

    entry = RecordEntry.objects.get(ingest_run=run)
    assert entry.source_id.startswith("CASE-2024-7-")
    assert entry.resource["identifier"][0]["value"] == "CASE/2024 7"
    assert ingest(council_feed, extract(row("case", "CASE/2024 7", "Case"))).unchanged == 1


def test_a_byte_order_mark_is_read_and_other_encodings_are_refused_with_the_reason(council_feed):
    text = extract(row("case", "C-1", "Café visit")).decode()

    with_bom = ingest(council_feed, b"\xef\xbb\xbf" + text.encode())
    windows = ingest(council_feed, text.replace("C-1", "C-2").encode("cp1252"), "windows.csv")
    utf16 = ingest(council_feed, text.replace("C-1", "C-3").encode("utf-16"), "utf16.csv")

    assert (with_bom.created, with_bom.quarantined) == (1, 0)
    assert RecordEntry.objects.get(source_id="C-1").summary == "Café visit"
    for run, extra in ((windows, "byte 0xe9"), (utf16, "UTF-16")):
        rejected = QuarantinedRecord.objects.get(ingest_run=run)
        assert (rejected.reason, run.created) == (Reason.UNREADABLE, 0)
        assert "not valid UTF-8" in rejected.detail and extra in rejected.detail


def test_a_header_without_a_mapped_column_is_refused_whole_naming_it(council_feed):
    header = [name if name != "DOB" else "Date of Birth" for name in HEADER]

    run = ingest(council_feed, extract(row("case", "C-1", "Case"), header=header))

    rejected = QuarantinedRecord.objects.get(ingest_run=run)
    assert (run.resources_read, rejected.reason) == (1, Reason.UNREADABLE)
    assert "no column 'DOB' (for birth_date)" in rejected.detail
    assert "'Date of Birth'" in rejected.detail


def test_headings_match_without_case_or_spaces_and_blank_lines_are_skipped(council_feed):
    header = [f"  {name.upper()} " for name in HEADER]
    data = extract(row("case", "C-1", "Case"), header=header) + b"\r\n,,,,,,,,,\r\n"

    run = ingest(council_feed, data)

    assert (run.resources_read, run.created) == (1, 1)


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        ({}, "the feed has no CSV mapping"),
        ({**MAPPING, "nhs_numbr": "NHS"}, "unknown key 'nhs_numbr'"),
        (
            {key: value for key, value in MAPPING.items() if key != "record_id"},
            "record_id must name a column",
        ),
        ({**MAPPING, "types": {}}, "types must map each record type"),
        ({**MAPPING, "types": {"case": "Episode"}}, "Episode is not one of"),
        (
            {**MAPPING, "types": {"case": {"resource": "CarePlan", "section": "nowhere"}}},
            "not a clinical PRSB heading",
        ),
        ({**MAPPING, "types": {"form": "QuestionnaireResponse"}}, "needs the questionnaire column mapped"),
        ({**MAPPING, "birth_date_format": "%d/%m"}, "cannot read back the dates"),
        ({**MAPPING, "delimiter": ";;"}, "delimiter must be one character"),
        ({**MAPPING, "statuses": {"Pending": "waiting"}}, "statuses['Pending'] must be one of"),
    ],
)
def test_a_bad_mapping_fails_the_run_with_the_problem_named_and_writes_nothing(
    council_feed, mapping, problem
):
    council_feed.csv_mapping = mapping
    council_feed.save()
    entries = RecordEntry.objects.count()

    with pytest.raises(IngestFailed) as failure:
        ingest(council_feed, extract(row("case", "C-1", "Case")))

    run = failure.value.run
    assert run.status == IngestRun.Status.FAILED
    assert "CsvMappingError" in run.error and problem in run.error
    assert RecordEntry.objects.count() == entries
    assert not QuarantinedRecord.objects.filter(ingest_run=run).exists()


def test_a_mapping_check_names_every_problem_at_once():
    with pytest.raises(CsvMappingError) as error:
        csv_mapping_check({"nhs_number": "", "record_type": "Type", "types": {"case": "Nope"}, "extra": 1})

    assert len(error.value.problems) == 4


def test_a_section_override_and_a_semicolon_delimiter_are_honoured(council_feed):
    council_feed.csv_mapping = {
        **MAPPING,
        "delimiter": ";",
        "types": {"case": {"resource": "EpisodeOfCare", "section": "social-context"}},
    }
    council_feed.save()
    data = ";".join(HEADER) + "\n" + ";".join(row("case", "C-1", "Adult social care case")) + "\n"

    run = ingest(council_feed, data.encode())

    assert run.created == 1
    assert RecordEntry.objects.get(source_id="C-1").section == Section.SOCIAL_CONTEXT


def test_a_row_marked_deleted_deletes_the_entry_held_and_a_later_row_brings_it_back(council_feed, cast):
    brian = ["9990000026", "Barton", "01/07/1962"]
    opened = [*brian, "case", "C-1", "02/01/2024", "", "Open", "Adult social care case", ""]
    gone = [*brian, "case", "C-1", "02/01/2024", "", "Deleted", "Adult social care case", ""]
    never = row("care-plan", "P-404", "A plan we never held", status="removed")

    ingest(council_feed, extract(opened))
    assert LegitimateRelationship.objects.filter(
        content_object_id=cast.patient_b.pk, group=cast.county.group
    ).exists()
    deleting = ingest(council_feed, extract(gone, never))

    entry = RecordEntry.objects.get(source_id="C-1")
    assert entry.is_deleted_at_source
    assert (deleting.resources_read, deleting.updated, deleting.unchanged, deleting.quarantined) == (
        2,
        1,
        1,
        0,
    )
    assert not RecordEntry.objects.filter(source_id="P-404").exists()
    # The deleted case no longer gives the council a care-event relationship with the patient.
    assert not LegitimateRelationship.objects.filter(
        content_object_id=cast.patient_b.pk, group=cast.county.group
    ).exists()
    again = ingest(council_feed, extract(gone))
    assert (again.updated, again.unchanged) == (0, 1)

    back = ingest(council_feed, extract(opened))
    entry.refresh_from_db()
    assert (back.updated, entry.is_deleted_at_source) == (1, False)
