"""Ingestion of real public FHIR data: the 215 UK Core examples (XML) and Synthea bundles (JSON, no NHS numbers)."""

import json
import re
import shutil
from io import StringIO
from pathlib import Path
from xml.etree import ElementTree

from django.core.management import call_command

from records.ingest.mapping import SUPPORTED_TYPES
from records.models import IngestRun, Patient, QuarantinedRecord, RecordEntry

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
UKCORE = DATA / "ukcore-examples"
SYNTHEA = DATA / "synthea-r4"
FHIR = "{http://hl7.org/fhir}"


def ingest(path: Path, feed) -> tuple[IngestRun, str]:
    out = StringIO()
    call_command("ingest", str(path), "--feed", feed.code, stdout=out, stderr=StringIO())
    return IngestRun.objects.filter(feed=feed).latest("pk"), out.getvalue()


def resources_in_ukcore_examples() -> int:
    """Counted without the ingester: one per file, or one per Bundle entry that holds a resource."""
    total = 0
    for path in UKCORE.glob("*.xml"):
        root = ElementTree.parse(path).getroot()  # noqa: S314 - trusted public test data, read to count only
        if root.tag == f"{FHIR}Bundle":
            total += sum(
                1 for entry in root.findall(f"{FHIR}entry") if entry.find(f"{FHIR}resource") is not None
            )
        else:
            total += 1
    return total


def summary_counts(output: str) -> dict[str, int]:
    match = re.search(
        r"read (\d+) = created (\d+) \+ updated (\d+) \+ unchanged (\d+) \+ quarantined (\d+) "
        r"\(patients created (\d+), updated (\d+)\)",
        output,
    )
    assert match, output
    names = ["read", "created", "updated", "unchanged", "quarantined", "patients_created", "patients_updated"]
    return dict(zip(names, map(int, match.groups()), strict=True))


def test_every_uk_core_example_is_ingested_or_quarantined_with_a_reason(cast):
    assert len(list(UKCORE.glob("*.xml"))) == 215
    entries_before = RecordEntry.objects.count()

    run, output = ingest(UKCORE, cast.gp_a_feed)

    assert run.status == IngestRun.Status.SUCCEEDED
    assert run.resources_read == resources_in_ukcore_examples()
    assert run.created + run.updated + run.unchanged + run.quarantined == run.resources_read
    assert summary_counts(output) == {
        "read": run.resources_read,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "quarantined": run.quarantined,
        "patients_created": run.patients_created,
        "patients_updated": run.patients_updated,
    }
    # Richard Smith is the one example patient with a valid NHS number; most examples are about him.
    assert run.patients_created == 1
    richard = Patient.objects.get(nhs_number="9912003888")
    assert (
        richard.given_name,
        richard.family_name,
        str(richard.birth_date),
        richard.sex,
        richard.postcode,
    ) == (
        "Richard",
        "SMITH",
        "1970-09-11",
        "male",
        "LS17 7DF",
    )
    entries = RecordEntry.objects.filter(ingest_run=run)
    assert entries.count() == run.created - run.patients_created > 80
    assert RecordEntry.objects.count() == entries_before + entries.count()
    assert set(entries.values_list("patient_id", flat=True)) == {richard.pk}
    assert len(set(entries.values_list("section", flat=True))) >= 12

    quarantined = QuarantinedRecord.objects.filter(ingest_run=run)
    assert quarantined.count() == run.quarantined
    assert set(quarantined.values_list("reason", flat=True)) == {
        QuarantinedRecord.Reason.UNSUPPORTED_TYPE,
        QuarantinedRecord.Reason.NO_NHS_NUMBER,
        QuarantinedRecord.Reason.INVALID_NHS_NUMBER,
        QuarantinedRecord.Reason.INVALID_RESOURCE,
        QuarantinedRecord.Reason.UNKNOWN_PATIENT,
        QuarantinedRecord.Reason.NO_SUBJECT,
    }
    assert not quarantined.filter(detail="").exists()
    assert not quarantined.filter(raw_payload="").exists()
    assert not quarantined.filter(location="").exists()
    invalid = quarantined.get(reason=QuarantinedRecord.Reason.INVALID_RESOURCE)
    assert invalid.location == "Extension-UKCore-ConditionEpisode-Example.xml"
    assert "validation error" in invalid.detail
    assert "quarantined by reason:" in output
    assert re.search(r"unsupported-type\s+\d+", output)


def test_second_run_of_the_uk_core_examples_changes_nothing(cast):
    first, _ = ingest(UKCORE, cast.gp_a_feed)
    entries = dict(RecordEntry.objects.values_list("pk", "updated_at"))
    patients = dict(Patient.objects.values_list("pk", "updated_at"))
    pending = set(QuarantinedRecord.objects.values_list("pk", flat=True))

    second, output = ingest(UKCORE, cast.gp_a_feed)

    assert (second.created, second.updated) == (0, 0)
    assert "created 0 + updated 0" in output
    assert second.resources_read == first.resources_read
    assert second.unchanged == first.created + first.updated + first.unchanged
    assert second.quarantined == first.quarantined
    assert dict(RecordEntry.objects.values_list("pk", "updated_at")) == entries
    assert dict(Patient.objects.values_list("pk", "updated_at")) == patients
    assert not RecordEntry.objects.filter(ingest_run=second).exists()
    # The same bad records are still pending once each, not quarantined a second time.
    assert set(QuarantinedRecord.objects.values_list("pk", flat=True)) == pending


def synthea_folder(tmp_path: Path, how_many: int | None) -> Path:
    files = sorted(SYNTHEA.glob("*.json"))[:how_many]
    folder = tmp_path / "synthea"
    folder.mkdir()
    for path in files:
        shutil.copy(path, folder / path.name)
    return folder


def assert_all_quarantined_for_want_of_nhs_numbers(run: IngestRun, bundles: int, folder: Path) -> None:
    assert run.status == IngestRun.Status.SUCCEEDED
    assert run.resources_read > 100 * bundles
    assert (run.created, run.updated, run.unchanged, run.patients_created) == (0, 0, 0, 0)
    assert run.quarantined == run.resources_read
    quarantined = QuarantinedRecord.objects.filter(ingest_run=run)
    # Nothing lost: every resource read is kept, an identical payload sent twice once.
    sent = {
        (entry["resource"]["resourceType"], entry["resource"]["id"])
        for path in folder.glob("*.json")
        for entry in json.loads(path.read_text())["entry"]
    }
    assert set(quarantined.values_list("resource_type", "source_id")) == sent
    assert quarantined.count() == quarantined.values("payload_hash").distinct().count()
    patients = quarantined.filter(resource_type="Patient")
    assert patients.count() == bundles
    assert set(patients.values_list("reason", flat=True)) == {QuarantinedRecord.Reason.NO_NHS_NUMBER}
    clinical = quarantined.filter(resource_type__in=SUPPORTED_TYPES)
    assert clinical.count() > 50 * bundles
    assert set(clinical.values_list("reason", flat=True)) == {QuarantinedRecord.Reason.NO_NHS_NUMBER}
    others = quarantined.exclude(resource_type__in=[*SUPPORTED_TYPES, "Patient"])
    assert set(others.values_list("reason", flat=True)) == {QuarantinedRecord.Reason.UNSUPPORTED_TYPE}


def test_synthea_patients_without_nhs_numbers_are_quarantined_never_guessed(cast, tmp_path):
    patients_before, entries_before = Patient.objects.count(), RecordEntry.objects.count()

    folder = synthea_folder(tmp_path, 3)
    run, _ = ingest(folder, cast.gp_a_feed)

    assert_all_quarantined_for_want_of_nhs_numbers(run, bundles=3, folder=folder)
    assert (Patient.objects.count(), RecordEntry.objects.count()) == (patients_before, entries_before)


def test_all_synthea_bundles_are_quarantined(cast, tmp_path):
    folder = synthea_folder(tmp_path, None)
    run, _ = ingest(folder, cast.gp_a_feed)

    assert_all_quarantined_for_want_of_nhs_numbers(
        run, bundles=len(list(SYNTHEA.glob("*.json"))), folder=folder
    )
