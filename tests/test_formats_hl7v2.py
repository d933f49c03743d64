"""HL7 v2 ADT feeds: the public samples, and synthetic NHS-style messages for every event the feed takes."""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from consent.models import LegitimateRelationship
from records.ingest.pipeline import ingest_path, ingest_texts
from records.models import Feed, IngestRun, Patient, QuarantinedRecord, RecordEntry
from records.sections import Section

Reason = QuarantinedRecord.Reason
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "hl7v2"
NEW_NUMBER = "9990000034"


@pytest.fixture
def pas_feed(cast) -> Feed:
    """An acute trust's PAS: it may not create patients, as is usual."""
    return Feed.objects.create(
        code="cuh-pas", organisation=cast.cuh, name="PAS ADT", format=Feed.Format.HL7V2
    )


@pytest.fixture
def spine_feed(cast) -> Feed:
    """A demographics authority sending ADT: it may create patients."""
    return Feed.objects.create(
        code="gp-adt",
        organisation=cast.practice_a,
        name="GP ADT",
        format=Feed.Format.HL7V2,
        can_create_patients=True,
    )


def segment(name: str, fields: dict[int, str]) -> str:
    return "|".join([name] + [fields.get(number, "") for number in range(1, max(fields) + 1)])


def msh(event: str, control_id: str, sent: str = "20240501101500", kind: str = "ADT") -> str:
    return "|".join(
        [
            "MSH",
            "^~\\&",
            "PAS",
            "RGT",
            "SHCR",
            "QUE",
            sent,
            "",
            f"{kind}^{event}^{kind}_{event}",
            control_id,
            "P",
            "2.4",
        ]
    )


def pid(
    number: str = "9990000018",
    family: str = "ASHBY",
    given: str = "ALICE",
    born: str = "19500314",
    sex: str = "F",
    **extra: str,
) -> str:
    fields = {1: "1", 3: f"{number}^^^NHS^NH~RGT0001^^^RGT^MR", 5: f"{family}^{given}", 7: born, 8: sex}
    fields.update({int(key.removeprefix("f")): value for key, value in extra.items()})
    return segment("PID", fields)


def pv1(
    visit: str = "V1001",
    patient_class: str = "I",
    location: str = "WARD7^BAY2^BED3^RGT",
    admitted: str = "20240501100000",
    **extra: str,
) -> str:
    fields = {1: "1", 2: patient_class, 3: location, 10: "MED", 19: visit, 44: admitted}
    fields.update({int(key.removeprefix("f")): value for key, value in extra.items()})
    return segment("PV1", fields)


def message(*segments: str) -> str:
    return "\r".join(segments) + "\r"


def adt(
    event: str, control_id: str, *, sent: str = "20240501101500", patient: str = "", visit: str = ""
) -> str:
    parts = [msh(event, control_id, sent), f"EVN|{event}|{sent}", patient or pid()]
    if visit:
        parts.append(visit)
    return message(*parts)


def ingest(feed: Feed, *messages: str, name: str = "adt.hl7") -> IngestRun:
    return ingest_texts(feed, [(name, "".join(messages).encode())])


def rows(run: IngestRun) -> list[tuple[str, str]]:
    return list(
        QuarantinedRecord.objects.filter(ingest_run=run).order_by("pk").values_list("resource_type", "reason")
    )


def encounter() -> RecordEntry:
    return RecordEntry.objects.get(resource_type="Encounter", source_id="RGT-V1001")


def adds_up(run: IngestRun) -> bool:
    return run.created + run.updated + run.unchanged + run.quarantined == run.resources_read


def test_every_public_hl7v2_sample_is_ingested_or_quarantined_with_a_reason(spine_feed):
    run = ingest_path(spine_feed, SAMPLES)

    assert run.status == IngestRun.Status.SUCCEEDED
    assert adds_up(run)
    quarantined = QuarantinedRecord.objects.filter(ingest_run=run)
    assert quarantined.count() == run.quarantined
    # Two ORU^R01 results (not ADT); two ADT^A01 whose PID-3 carries an MRN and a US SSN but no NHS number, each
    # giving a Patient and an Encounter quarantined for that reason.
    assert sorted(quarantined.values_list("location", "resource_type", "reason")) == [
        ("ORU-multiline-short-mixed.hl7:1", "ORU^R01", Reason.UNSUPPORTED_TYPE),
        ("ORU-multiline-short.hl7:1", "ORU^R01", Reason.UNSUPPORTED_TYPE),
        ("sample_unix.hl7:1", "Encounter", Reason.NO_NHS_NUMBER),
        ("sample_unix.hl7:1", "Patient", Reason.NO_NHS_NUMBER),
        ("sample_win.hl7:1", "Encounter", Reason.NO_NHS_NUMBER),
        ("sample_win.hl7:1", "Patient", Reason.NO_NHS_NUMBER),
    ]
    assert (run.resources_read, run.created) == (6, 0)
    oru = quarantined.filter(resource_type="ORU^R01").first()
    assert "ADT A01" in oru.detail and oru.raw_payload.startswith("MSH|")
    assert all(record.raw_payload.startswith("MSH|") for record in quarantined)


def test_an_admission_gives_the_trust_an_open_encounter_and_relationship(pas_feed, cast):
    run = ingest(pas_feed, adt("A01", "M1", visit=pv1()))

    assert (run.resources_read, run.created, run.unchanged, run.quarantined) == (2, 1, 1, 0)
    entry = encounter()
    assert (entry.patient, entry.section, entry.status, entry.summary) == (
        cast.patient_a,
        Section.ENCOUNTERS,
        "in-progress",
        "Inpatient admission",
    )
    assert entry.effective_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)  # 10:00 BST
    assert entry.effective_end is None
    assert entry.resource["class"]["code"] == "IMP"
    assert entry.resource["location"] == [
        {"location": {"display": "RGT, WARD7, BAY2, BED3"}, "status": "active"}
    ]
    assert entry.resource["serviceProvider"]["identifier"]["value"] == "RGT"
    relationship = LegitimateRelationship.objects.get(
        content_object_id=cast.patient_a.pk, group=cast.cuh.group
    )
    assert relationship.valid_until is None


def test_a_registration_of_an_emergency_attendance_is_an_emergency_encounter(pas_feed):
    ingest(pas_feed, adt("A04", "M1", visit=pv1(patient_class="E", location="ED^^^RGT")))

    entry = encounter()
    assert (entry.status, entry.summary, entry.resource["class"]["code"]) == (
        "in-progress",
        "Emergency department attendance",
        "EMER",
    )


def test_a_transfer_moves_the_same_encounter(pas_feed):
    ingest(pas_feed, adt("A01", "M1", visit=pv1()))

    run = ingest(
        pas_feed,
        adt(
            "A02",
            "M2",
            sent="20240502080000",
            visit=pv1(location="WARD9^^BED1^RGT", f6="WARD7^BAY2^BED3^RGT"),
        ),
    )

    assert (run.created, run.updated) == (0, 1)
    assert encounter().resource["location"] == [
        {"location": {"display": "RGT, WARD7, BAY2, BED3"}, "status": "completed"},
        {"location": {"display": "RGT, WARD9, BED1"}, "status": "active"},
    ]
    assert RecordEntry.objects.filter(resource_type="Encounter", feed=pas_feed).count() == 1


def test_a_discharge_finishes_the_encounter_and_the_relationship_then_runs_out(pas_feed, cast):
    brian = pid("9990000026", "BARTON", "BRIAN", "19620701", "M")
    ingest(pas_feed, adt("A01", "M1", patient=brian, visit=pv1()))

    ingest(pas_feed, adt("A03", "M2", sent="20240503120000", patient=brian, visit=pv1(f45="20240503113000")))

    entry = encounter()
    assert (entry.patient, entry.status) == (cast.patient_b, "finished")
    assert entry.effective_end == datetime(2024, 5, 3, 10, 30, tzinfo=UTC)
    relationship = LegitimateRelationship.objects.get(
        content_object_id=cast.patient_b.pk, group=cast.cuh.group
    )
    # An acute trust's window after a discharge (RELATIONSHIP_ENCOUNTER_DAYS_BY_KIND).
    assert relationship.valid_until == entry.effective_end + timedelta(days=30)


def test_a_cancelled_admission_is_marked_entered_in_error_and_gives_no_relationship(pas_feed, cast):
    ingest(pas_feed, adt("A01", "M1", visit=pv1()))

    run = ingest(pas_feed, adt("A11", "M2", sent="20240501110000", visit=pv1()))

    assert run.updated == 1
    entry = encounter()
    assert (entry.status, entry.is_entered_in_error) == ("entered-in-error", True)
    # The cast's finished ED attendance at CUH is old enough to keep a time-limited relationship; the admission
    # no longer makes it open-ended.
    relationship = LegitimateRelationship.objects.get(
        content_object_id=cast.patient_a.pk, group=cast.cuh.group
    )
    assert relationship.valid_until is not None


def test_a_cancelled_discharge_reopens_the_encounter_without_an_end(pas_feed):
    ingest(pas_feed, adt("A01", "M1", visit=pv1()))
    ingest(pas_feed, adt("A03", "M2", sent="20240503120000", visit=pv1(f45="20240503113000")))

    ingest(pas_feed, adt("A13", "M3", sent="20240503130000", visit=pv1()))

    entry = encounter()
    assert (entry.status, entry.effective_end, entry.is_entered_in_error) == ("in-progress", None, False)
    assert "end" not in entry.resource["period"]


def test_an_older_message_never_overwrites_a_newer_one_whatever_the_order(pas_feed):
    discharge = adt("A03", "M2", sent="20240503120000", visit=pv1(f45="20240503113000"))
    admission = adt("A01", "M1", sent="20240501101500", visit=pv1())

    first = ingest(pas_feed, discharge)
    late = ingest(pas_feed, admission)
    both = ingest(pas_feed, discharge, admission)

    assert first.created == 1
    assert (late.created, late.updated) == (0, 0)
    assert (both.created, both.updated) == (0, 0)
    assert encounter().status == "finished"


def test_a_demographics_authority_adds_and_updates_a_person_with_their_practice(spine_feed, cast):
    added = adt(
        "A28",
        "M1",
        patient=pid(
            NEW_NUMBER,
            "O\\T\\BRIEN",
            "NIAMH^ROSE",
            "19880809",
            "F",
            f11="12 Hills Road^Flat 2^Cambridge^Cambridgeshire^CB2 1JP^GBR^H",
            f13="01223 555000~^ORN^CP^^^^07700900123",
        ),
    )
    practice = segment("PD1", {3: "Fenland Practice^^D81002"})
    run = ingest(spine_feed, added.rstrip("\r") + "\r" + practice + "\r")

    assert (run.created, run.patients_created, run.quarantined) == (1, 1, 0)
    patient = Patient.objects.get(nhs_number=NEW_NUMBER)
    assert (patient.family_name, patient.given_name, patient.birth_date, patient.sex) == (
        "O&BRIEN",
        "NIAMH ROSE",
        date(1988, 8, 9),
        Patient.Sex.FEMALE,
    )
    assert (patient.address, patient.postcode, patient.phone) == (
        "12 Hills Road, Flat 2, Cambridge, Cambridgeshire",
        "CB2 1JP",
        "01223 555000",
    )
    assert patient.registered_practice == cast.practice_b

    # XON.10 carries the ODS code in v2.5 messages; PID-29 records a death.
    moved = adt(
        "A08", "M2", sent="20240601090000", patient=pid(NEW_NUMBER, "O'BRIEN", "NIAMH", "19880809", "F")
    )
    update = moved + segment("PD1", {3: "Riverside Surgery^^^^^^^^^D81001"}) + "\r"
    died = adt(
        "A31",
        "M3",
        sent="20240701090000",
        patient=pid(NEW_NUMBER, "O'BRIEN", "NIAMH", "19880809", "F", f29="20240630"),
    )
    again = ingest(spine_feed, update, died.rstrip("\r") + "\r" + segment("PD1", {3: "^^D81001"}) + "\r")

    patient.refresh_from_db()
    assert (patient.family_name, patient.registered_practice, patient.death_date) == (
        "O'BRIEN",
        cast.practice_a,
        date(2024, 6, 30),
    )
    assert (again.patients_updated, again.unchanged) == (1, 1)


def test_a_pas_feed_quarantines_an_unknown_patient_with_the_nhs_number_for_replay(pas_feed):
    run = ingest(pas_feed, adt("A01", "M1", patient=pid(NEW_NUMBER), visit=pv1()))

    assert rows(run) == [("Patient", Reason.UNKNOWN_PATIENT), ("Encounter", Reason.UNKNOWN_PATIENT)]
    assert set(QuarantinedRecord.objects.filter(ingest_run=run).values_list("nhs_number", flat=True)) == {
        NEW_NUMBER
    }
    assert not Patient.objects.filter(nhs_number=NEW_NUMBER).exists()


def test_a_demographic_mismatch_quarantines_the_message_resources(pas_feed):
    run = ingest(pas_feed, adt("A01", "M1", patient=pid(born="19610101"), visit=pv1()))

    assert rows(run) == [("Patient", Reason.DEMOGRAPHIC_MISMATCH), ("Encounter", Reason.DEMOGRAPHIC_MISMATCH)]
    assert not RecordEntry.objects.filter(resource_type="Encounter", source_id="RGT-V1001").exists()


def test_a_merge_retires_the_prior_patient_into_the_survivor_and_moves_their_record(pas_feed, cast):
    retired, survivor = cast.patient_b, cast.patient_a
    moved = set(RecordEntry.objects.filter(patient=retired).values_list("pk", "source_id"))
    merge = message(
        msh("A40", "M1"), "EVN|A40|20240501101500", pid(), segment("MRG", {1: "9990000026^^^NHS^NH"})
    )

    run = ingest(pas_feed, merge)
    rerun = ingest(pas_feed, merge)

    assert (run.resources_read, run.updated, run.patients_updated, run.unchanged, run.quarantined) == (
        2,
        1,
        1,
        1,
        0,
    )
    assert (rerun.updated, rerun.unchanged) == (0, 2)
    retired.refresh_from_db()
    assert retired.merged_into == survivor
    assert (
        set(RecordEntry.objects.filter(pk__in=[pk for pk, _ in moved]).values_list("pk", "source_id"))
        == moved
    )
    assert not RecordEntry.objects.filter(patient=retired).exists()
    assert RecordEntry.objects.filter(patient=survivor, pk__in=[pk for pk, _ in moved]).count() == len(moved)
    # The retired record keeps no relationship of its own: access goes through the survivor.
    assert not LegitimateRelationship.objects.filter(content_object_id=retired.pk).exists()

    later = ingest_texts(
        cast.cuh_feed,
        [
            (
                "c.json",
                json.dumps(
                    {
                        "resourceType": "Condition",
                        "id": "after-merge",
                        "code": {"text": "Asthma"},
                        "subject": {
                            "identifier": {
                                "system": "https://fhir.nhs.uk/Id/nhs-number",
                                "value": "9990000026",
                            }
                        },
                    }
                ).encode(),
            )
        ],
    )
    assert later.created == 1
    assert RecordEntry.objects.get(source_id="after-merge").patient == survivor


def test_a_merge_without_an_nhs_number_in_mrg_is_quarantined(pas_feed, cast):
    merge = message(
        msh("A40", "M1"), "EVN|A40|20240501101500", pid(), segment("MRG", {1: "RGT0002^^^RGT^MR"})
    )

    run = ingest(pas_feed, merge)

    assert rows(run) == [("ADT^A40", Reason.NO_NHS_NUMBER)]
    assert "MRG-1" in QuarantinedRecord.objects.get(ingest_run=run).detail
    cast.patient_b.refresh_from_db()
    assert cast.patient_b.merged_into is None


def test_mllp_framing_and_any_line_endings_split_into_messages(pas_feed):
    first = "\x0b" + adt("A01", "M1", visit=pv1()).replace("\r", "\r\n") + "\x1c\r"
    second = "\x0b" + adt("A03", "M2", sent="20240503120000", visit=pv1(f45="20240503113000")).replace(
        "\r", "\n"
    )
    second += "\x1c\r"

    run = ingest(pas_feed, first, second)

    assert (run.resources_read, run.quarantined) == (4, 0)
    assert encounter().status == "finished"


@pytest.mark.parametrize(
    ("text", "reason", "detail"),
    [
        ("MSH|\r", Reason.UNREADABLE, "cannot be parsed as HL7 v2"),
        (adt("A01", "M1", patient=pid(born="19801345"), visit=pv1()), Reason.INVALID_RESOURCE, "PID-7"),
        (adt("A01", "M1", visit=pv1(visit="")), Reason.INVALID_RESOURCE, "PV1-19"),
        (adt("A01", "M1"), Reason.INVALID_RESOURCE, "no PV1 segment"),
        (message(msh("A01", "M1"), "EVN|A01|20240501"), Reason.INVALID_RESOURCE, "no PID segment"),
        (adt("A05", "M1", visit=pv1()), Reason.UNSUPPORTED_TYPE, "ADT^A05 messages are not taken"),
        ("EVN|A01|20240501\r", Reason.UNREADABLE, "before the first MSH"),
    ],
)
def test_a_malformed_message_is_quarantined_alone_with_the_reason(pas_feed, text, reason, detail):
    good = adt("A01", "M9", visit=pv1(visit="V1001"))

    run = ingest(pas_feed, text, good)

    assert run.status == IngestRun.Status.SUCCEEDED and adds_up(run)
    assert run.created == 1
    bad = QuarantinedRecord.objects.get(ingest_run=run)
    assert bad.reason == reason
    assert detail in bad.detail
    assert bad.raw_payload.strip("\r") == text.strip("\r")


def test_a_latin_1_file_is_read_when_msh_18_declares_it_and_refused_otherwise(spine_feed):
    declared = msh("A28", "M1").replace("|2.4", "|2.4||||||8859/1")
    text = message(declared, "EVN|A28|20240501", pid(NEW_NUMBER, "MÜLLER", "JÜRGEN", "19700101", "M"))

    read = ingest_texts(spine_feed, [("latin.hl7", text.encode("latin-1"))])
    refused = ingest_texts(spine_feed, [("other.hl7", text.replace("8859/1", "").encode("latin-1"))])

    assert read.created == 1
    assert Patient.objects.get(nhs_number=NEW_NUMBER).family_name == "MÜLLER"
    rejected = QuarantinedRecord.objects.get(ingest_run=refused)
    assert (rejected.reason, rejected.location) == (Reason.UNREADABLE, "other.hl7")
    assert "not valid UTF-8" in rejected.detail


def test_an_empty_hl7_file_is_quarantined_as_unreadable(pas_feed):
    run = ingest_texts(pas_feed, [("empty.hl7", b"\x0b\x1c\r\n")])

    assert (run.resources_read, run.quarantined) == (1, 1)
    assert QuarantinedRecord.objects.get(ingest_run=run).detail == "The file is empty."


def test_an_adt_message_sent_before_the_demographics_held_changes_nothing(spine_feed):
    """HL7 messages arrive out of order: one sent before the demographics held (MSH-7) is never applied."""
    ingest(spine_feed, adt("A28", "M1", sent="20240601090000", patient=pid(NEW_NUMBER, "NEWNAME")))

    late = ingest(spine_feed, adt("A08", "M0", sent="20240501090000", patient=pid(NEW_NUMBER, "OLDNAME")))

    patient = Patient.objects.get(nhs_number=NEW_NUMBER)
    assert patient.family_name == "NEWNAME"
    assert (late.patients_updated, late.unchanged, late.quarantined) == (0, 1, 0)
