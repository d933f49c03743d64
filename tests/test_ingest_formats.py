"""What the ingester reads and what it refuses: JSON, NDJSON, XML, Bundles, folders, and hostile or broken input."""

import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from lxml import etree

from records.ingest.fhir import safe_xml_parser
from records.ingest.pipeline import ingest_path, ingest_texts
from records.models import IngestRun, Patient, QuarantinedRecord, RecordEntry
from tests.builders import NHS

Reason = QuarantinedRecord.Reason
NEW_NUMBER = "9990000034"


def patient_json(resource_id: str = "p1", number: str = NEW_NUMBER) -> dict:
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [{"system": NHS, "value": number}],
        "name": [{"family": "Cole", "given": ["Cora"]}],
        "birthDate": "1981-02-03",
    }


def condition_json(resource_id: str, reference: str, display: str = "Asthma") -> dict:
    return {
        "resourceType": "Condition",
        "id": resource_id,
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "195967001", "display": display}]},
        "subject": {"reference": reference},
    }


def bundle_json(bundle_type: str, *entries: tuple[str, dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": bundle_type,
        "entry": [{"fullUrl": full_url, "resource": resource} for full_url, resource in entries],
    }


def as_bytes(document: dict) -> bytes:
    return json.dumps(document).encode()


PATIENT_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <id value="xml-patient"/>
  <identifier><system value="{NHS}"/><value value="{NEW_NUMBER}"/></identifier>
  <name><family value="Cole"/><given value="Cora"/></name>
  <gender value="female"/>
  <birthDate value="1981-02-03"/>
</Patient>
""".encode()

CONDITION_XML = b"""<Condition xmlns="http://hl7.org/fhir">
  <id value="xml-condition"/>
  <code><coding><system value="http://snomed.info/sct"/><code value="195967001"/><display value="Asthma"/></coding></code>
  <subject><reference value="Patient/xml-patient"/></subject>
  <onsetDateTime value="2001-05-06"/>
</Condition>
"""


def only_quarantine(run: IngestRun) -> QuarantinedRecord:
    assert (run.resources_read, run.quarantined) == (1, 1)
    return QuarantinedRecord.objects.get(ingest_run=run)


@pytest.mark.parametrize("bundle_type", ["collection", "transaction", "searchset", "batch"])
def test_json_bundle_of_any_type_matches_its_patient_by_full_url(cast, bundle_type):
    document = bundle_json(
        bundle_type,
        ("urn:uuid:0d4a6f5e-1111-4c3a-9a55-3f2b1c9d0001", patient_json()),
        (
            "urn:uuid:0d4a6f5e-1111-4c3a-9a55-3f2b1c9d0002",
            condition_json("c1", "urn:uuid:0d4a6f5e-1111-4c3a-9a55-3f2b1c9d0001"),
        ),
    )

    run = ingest_texts(cast.gp_a_feed, [("bundle.json", as_bytes(document))])

    assert (run.resources_read, run.created, run.patients_created, run.quarantined) == (2, 2, 1, 0)
    entry = RecordEntry.objects.get(ingest_run=run)
    assert entry.patient.nhs_number == NEW_NUMBER
    assert entry.summary == "Asthma"


def test_ndjson_is_read_line_by_line_and_a_bad_line_is_quarantined_alone(cast):
    lines = [
        json.dumps(patient_json("p9")),
        "",
        json.dumps(condition_json("c9", "Patient/p9")),
        '{"resourceType": ',
    ]
    run = ingest_texts(cast.gp_a_feed, [("export.ndjson", "\n".join(lines).encode())])

    assert (run.resources_read, run.created, run.quarantined) == (3, 2, 1)
    bad = QuarantinedRecord.objects.get(ingest_run=run)
    assert (bad.reason, bad.location, bad.raw_payload) == (
        Reason.UNREADABLE,
        "export.ndjson:4",
        '{"resourceType": ',
    )
    assert "Line 4 is not valid JSON" in bad.detail


def test_ndjson_is_recognised_without_its_file_extension(cast):
    text = json.dumps(patient_json("p8")) + "\n" + json.dumps(condition_json("c8", "Patient/p8")) + "\n"
    run = ingest_texts(cast.gp_a_feed, [("export.json", text.encode())])

    assert (run.resources_read, run.created, run.quarantined) == (2, 2, 0)


def test_single_xml_resources_in_a_folder_match_whatever_the_file_order(cast, tmp_path):
    # The condition sorts first; patients are applied before anything else, across the whole run.
    (tmp_path / "a-condition.xml").write_bytes(CONDITION_XML)
    nested = tmp_path / "z" / "deeper"
    nested.mkdir(parents=True)
    (nested / "patient.xml").write_bytes(PATIENT_XML)
    (tmp_path / "README.txt").write_text("not FHIR")
    (tmp_path / ".hidden.json").write_text("{}")

    run = ingest_path(cast.gp_a_feed, tmp_path)

    assert (run.resources_read, run.created, run.patients_created, run.quarantined) == (2, 2, 1, 0)
    entry = RecordEntry.objects.get(ingest_run=run)
    assert entry.patient.nhs_number == NEW_NUMBER
    assert entry.effective_at.isoformat() == "2001-05-06T00:00:00+00:00"
    assert Patient.objects.get(nhs_number=NEW_NUMBER).sex == Patient.Sex.FEMALE
    assert run.checksum == hashlib.sha256(CONDITION_XML + PATIENT_XML).hexdigest()
    assert run.source_name == str(tmp_path)


def test_xml_bundle_entries_are_located_by_index(cast):
    bundle = f"""<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/>
      <entry><fullUrl value="urn:uuid:aa"/><resource>{PATIENT_XML.decode().split("?>", 1)[1]}</resource></entry>
      <entry><resource><Organization><id value="org"/><name value="Somewhere"/></Organization></resource></entry>
    </Bundle>""".encode()
    run = ingest_texts(cast.gp_a_feed, [("bundle.xml", bundle)])

    assert (run.resources_read, run.created, run.quarantined) == (2, 1, 1)
    rejected = QuarantinedRecord.objects.get(ingest_run=run)
    assert (rejected.reason, rejected.location, rejected.resource_type) == (
        Reason.UNSUPPORTED_TYPE,
        "bundle.xml#entry[1]",
        "Organization",
    )
    assert '<name value="Somewhere"/>' in rejected.raw_payload


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b'{"resourceType": "Patient", "id": "p1", "name": [{"fam', "not valid JSON"),
        (b'{"resourceType": "Patient", "name": [{"family": "Caf\xe9"}]}', "not valid UTF-8"),
        (b"", "The file is empty."),
        (b"   \n ", "The file is empty."),
        (b"[1, 2, 3]", "this is not one"),
        (b'{"resourceType": "Observation", "valueDecimal": NaN}', "not valid JSON"),
        (b'{"resourceType": "Condition", "note": [{"text": "a\\u0000b"}]}', "NUL character"),
        (b"<Patient><id value='x'/></Patient>", "not in the FHIR namespace"),
        (b"<Patient xmlns='http://hl7.org/fhir'><id value='x'></Patient>", "not well-formed XML"),
    ],
)
def test_unreadable_input_is_quarantined_with_its_raw_text_and_the_run_goes_on(cast, data, detail):
    good = as_bytes(condition_json("c1", "Patient/p1"))
    run = ingest_texts(
        cast.gp_a_feed,
        [("broken.json", data), ("patient.json", as_bytes(patient_json())), ("condition.json", good)],
    )

    assert run.status == IngestRun.Status.SUCCEEDED
    assert (run.resources_read, run.created, run.quarantined) == (3, 2, 1)
    rejected = QuarantinedRecord.objects.get(ingest_run=run)
    assert (rejected.reason, rejected.location, rejected.feed) == (
        Reason.UNREADABLE,
        "broken.json",
        cast.gp_a_feed,
    )
    assert detail in rejected.detail
    assert rejected.raw_payload == data.decode("utf-8", errors="replace")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Patient xmlns="http://hl7.org/fhir"><id value="lol"/><name><family value="&lol9;"/></name></Patient>
"""

EXTERNAL_ENTITY = f"""<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir">
  <id value="xxe"/>
  <identifier><system value="{NHS}"/><value value="{NEW_NUMBER}"/></identifier>
  <name><family value="&xxe;"/></name>
</Patient>
""".encode()


def passwd_marker() -> str:
    passwd = Path("/etc/passwd")
    first_line = passwd.read_text().splitlines()[0] if passwd.exists() else ""
    return first_line or "root:x:0:0"


@pytest.mark.parametrize(
    "document", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"]
)
def test_xml_with_a_doctype_is_refused_and_no_entity_is_ever_expanded(cast, tmp_path, document):
    (tmp_path / "attack.xml").write_bytes(document)
    out, err = StringIO(), StringIO()

    call_command("ingest", str(tmp_path), "--feed", cast.gp_a_feed.code, stdout=out, stderr=err)

    run = IngestRun.objects.filter(feed=cast.gp_a_feed).latest("pk")
    rejected = only_quarantine(run)
    assert rejected.reason == Reason.UNREADABLE
    assert "DOCTYPE" in rejected.detail
    assert rejected.raw_payload == document.decode()
    assert not Patient.objects.filter(nhs_number=NEW_NUMBER).exists()
    marker = passwd_marker()
    everything = [out.getvalue(), err.getvalue(), rejected.detail, rejected.raw_payload]
    everything += [
        json.dumps(resource) for resource in RecordEntry.objects.values_list("resource", flat=True)
    ]
    everything += [" ".join(names) for names in Patient.objects.values_list("given_name", "family_name")]
    assert not any(marker in text for text in everything)
    assert not any("lollollol" in text for text in everything)


def parsed_or_refused(document: bytes) -> str:
    try:
        return etree.tostring(etree.fromstring(document, parser=safe_xml_parser()), encoding="unicode")
    except etree.XMLSyntaxError:
        return ""


def test_the_xml_parser_itself_neither_reads_files_nor_expands_entities():
    # The second lock, behind the DOCTYPE refusal: given the attack anyway, lxml must refuse it or leave it unexpanded.
    in_text = EXTERNAL_ENTITY.replace(b'<family value="&xxe;"/>', b"<family>&xxe;</family>")
    for document in (EXTERNAL_ENTITY, in_text):
        assert passwd_marker() not in parsed_or_refused(document)
    assert len(parsed_or_refused(BILLION_LAUGHS)) < 10_000


def test_a_file_over_the_size_limit_is_quarantined_unread(cast, settings, tmp_path):
    settings.INGEST_MAX_FILE_BYTES = 1024
    document = bundle_json("collection", *[(f"urn:uuid:{n}", patient_json(f"p{n}")) for n in range(20)])
    (tmp_path / "big.json").write_bytes(as_bytes(document))

    run = ingest_path(cast.gp_a_feed, tmp_path / "big.json")

    rejected = only_quarantine(run)
    assert (rejected.reason, rejected.location) == (Reason.UNREADABLE, "big.json")
    assert "INGEST_MAX_FILE_BYTES" in rejected.detail
    assert not Patient.objects.filter(nhs_number=NEW_NUMBER).exists()


def test_a_bundle_inside_a_bundle_and_a_conditional_delete_are_kept_not_dropped(cast):
    document = bundle_json("transaction", ("urn:uuid:inner", bundle_json("collection")))
    document["entry"].append({"request": {"method": "DELETE", "url": "Condition?code=195967001"}})
    document["entry"].append({"request": {"method": "DELETE", "url": "Condition/c1"}})
    document["entry"].append({"request": {"method": "GET", "url": "Patient/p1"}})

    run = ingest_texts(cast.gp_a_feed, [("tx.json", as_bytes(document))])

    # The plain DELETE names nothing held, so it is read and counted unchanged; GET carries no data at all.
    assert (run.resources_read, run.quarantined, run.unchanged) == (3, 2, 1)
    nested, deletion = QuarantinedRecord.objects.filter(ingest_run=run).order_by("location")
    assert (nested.reason, nested.location, nested.resource_type) == (
        Reason.UNSUPPORTED_TYPE,
        "tx.json#entry[0]",
        "Bundle",
    )
    assert (deletion.reason, deletion.resource_type, deletion.location) == (
        Reason.UNSUPPORTED_TYPE,
        "Condition",
        "tx.json#entry[1]",
    )
    assert "conditional DELETE" in deletion.detail
    assert json.loads(deletion.raw_payload)["request"]["url"] == "Condition?code=195967001"


def test_an_invalid_resource_is_quarantined_with_the_validation_errors_summarised(cast):
    broken = condition_json("c1", "Patient/p1") | {"onsetDateTime": "last Tuesday", "colour": "blue"}
    run = ingest_texts(
        cast.gp_a_feed,
        [
            ("p.json", as_bytes(patient_json())),
            ("c.json", as_bytes(broken)),
            ("x.json", b'{"resourceType": "Foo"}'),
        ],
    )

    assert (run.resources_read, run.created, run.quarantined) == (3, 1, 2)
    invalid, unknown = QuarantinedRecord.objects.filter(ingest_run=run).order_by("location")
    assert (invalid.reason, invalid.resource_type, invalid.source_id) == (
        Reason.INVALID_RESOURCE,
        "Condition",
        "c1",
    )
    assert "2 validation error(s)" in invalid.detail
    assert "onsetDateTime" in invalid.detail and "colour" in invalid.detail
    assert json.loads(invalid.raw_payload) == broken
    assert unknown.reason == Reason.INVALID_RESOURCE
    assert "Foo is not a FHIR R4 resource type" in unknown.detail


def test_progress_bar_stays_off_when_stderr_is_not_a_terminal(cast, tmp_path):
    (tmp_path / "p.json").write_bytes(as_bytes(patient_json()))
    err = StringIO()

    call_command("ingest", str(tmp_path), "--feed", cast.gp_a_feed.code, stdout=StringIO(), stderr=err)

    assert err.getvalue() == ""
