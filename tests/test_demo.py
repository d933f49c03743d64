"""The demo: deterministic, valid FHIR R4 bundles that cover the record, loaded through the real ingestion."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from consent.models import CareTeam, LegitimateRelationship, Objection, StaffProfile, SubjectAccessRequest
from consent.policy import Action, decide, may_manage_patients_rights
from consent.roles import JobRole
from consent.separation import may_administer_access
from records import nhs_number
from records.demo.generator import (
    DEFAULT_PATIENTS,
    DEFAULT_SEED,
    demo_bundles,
    demo_nhs_numbers,
    demo_patients,
)
from records.demo.partners import FEEDS_BY_CODE, LIVE_FEEDS
from records.demo.resources import local_midnight
from records.ingest.mapping import section_for
from records.models import Feed, IngestRun, Organisation, Patient, QuarantinedRecord, RecordEntry
from records.sections import CLINICAL_SECTIONS, DEMOGRAPHIC_SECTIONS
from tests.builders import FAST_HASHERS

REFERENCE = date(2026, 11, 21)
PASSWORD = "demo-Fenland-heron-42"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
PATIENT_A = "9990000018"
PATIENT_B = "9990000026"
# The patients each showing one thing (records.demo.resources.Story).
TEAM_CASELOAD = "9990000077"
REFERRED = "9990000085"
SENSITIVE_FROM_TWO_SOURCES = "9990000093"
RESTRICTED = "9990000107"
# Enough for the fixed and showcase patients plus a spread of others, and fast enough for every test run.
SMALL_DEMO = 30


@pytest.fixture(scope="module")
def bundles() -> dict[str, list[dict[str, Any]]]:
    return demo_bundles(demo_patients(DEFAULT_PATIENTS, DEFAULT_SEED, REFERENCE), DEFAULT_SEED, REFERENCE)


def resources_of(feed_bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry["resource"] for bundle in feed_bundles for entry in bundle["entry"]]


def about(resource: dict[str, Any], number: str, patient_urls: set[str]) -> bool:
    reference = resource.get("subject") or resource.get("patient") or {}
    return (
        reference.get("identifier", {}).get("value") == number or reference.get("reference") in patient_urls
    )


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*.json"))}


def test_same_seed_and_reference_day_give_identical_files(tmp_path):
    for run in ("first", "second"):
        call_command(
            "demo_generate", str(tmp_path / run), "--reference-date", REFERENCE.isoformat(), stdout=StringIO()
        )
    call_command(
        "demo_generate",
        str(tmp_path / "other-seed"),
        "--seed",
        "7",
        "--reference-date",
        REFERENCE.isoformat(),
        stdout=StringIO(),
    )

    first, second = files_of(tmp_path / "first"), files_of(tmp_path / "second")
    assert first == second
    assert "gp-d81001/gp-d81001-001.json" in first
    assert files_of(tmp_path / "other-seed") != first


def test_files_are_named_by_feed_and_batch_and_a_smaller_run_leaves_no_stale_batches(tmp_path):
    call_command("demo_generate", str(tmp_path), "--reference-date", REFERENCE.isoformat(), stdout=StringIO())
    call_command(
        "demo_generate",
        str(tmp_path),
        "--patients",
        "10",
        "--reference-date",
        REFERENCE.isoformat(),
        stdout=StringIO(),
    )

    names = sorted(files_of(tmp_path))
    assert names
    for name in names:
        folder, file_name = name.split("/")
        assert folder in FEEDS_BY_CODE
        assert file_name == f"{folder}-001.json"
    assert [path.name for path in (tmp_path / "county-caseload").iterdir()] == ["county-caseload-001.csv"]


def test_every_bundle_validates_as_fhir_r4b(bundles):
    for feed_bundles in bundles.values():
        for bundle in feed_bundles:
            assert bundle["type"] == "collection"
            Bundle.model_validate(bundle)


def test_every_resource_has_a_stable_id_meta_and_a_past_last_updated(bundles):
    midnight = local_midnight(REFERENCE)
    seen = set()
    for feed_bundles in bundles.values():
        for bundle in feed_bundles:
            for entry in bundle["entry"]:
                resource = entry["resource"]
                assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
                assert resource["id"] not in seen
                seen.add(resource["id"])
                assert datetime.fromisoformat(resource["meta"]["lastUpdated"]) < midnight
                # The pipeline quarantines these as unsupported; partners only point at them by identifier.
                assert resource["resourceType"] not in {"Organization", "Practitioner", "Location"}


def test_only_gp_bundles_carry_patients_and_other_partners_name_them_by_nhs_number(bundles):
    for feed_code, feed_bundles in bundles.items():
        feed = FEEDS_BY_CODE[feed_code]
        for bundle in feed_bundles:
            urls = {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"}
            assert bool(urls) == feed.can_create_patients
            for entry in bundle["entry"]:
                resource = entry["resource"]
                if resource["resourceType"] == "Patient":
                    continue
                reference = resource.get("subject") or resource["patient"]
                if feed.can_create_patients:
                    assert reference["reference"] in urls
                else:
                    assert reference["identifier"]["system"] == NHS_NUMBER_SYSTEM
                    assert nhs_number.is_valid(reference["identifier"]["value"])


def test_at_least_200_patients_with_valid_nhs_numbers_in_the_999_range():
    patients = demo_patients(DEFAULT_PATIENTS, DEFAULT_SEED, REFERENCE)
    numbers = [patient.nhs_number for patient in patients]

    assert len(patients) >= 200
    assert len(set(numbers)) == len(numbers)
    assert all(nhs_number.is_valid(number) and number.startswith("999") for number in numbers)


def test_every_clinical_section_is_covered_and_declared_by_the_feed_that_sends_it(bundles):
    covered = set()
    for feed_code, feed_bundles in bundles.items():
        declared = set(FEEDS_BY_CODE[feed_code].sections)
        for resource in resources_of(feed_bundles):
            if resource["resourceType"] == "Patient":
                continue
            section = section_for(resource)
            assert section in declared, (feed_code, resource["resourceType"], section)
            covered.add(section)

    assert covered == set(CLINICAL_SECTIONS)


def test_even_a_small_demo_covers_every_clinical_section():
    small = demo_bundles(demo_patients(SMALL_DEMO, DEFAULT_SEED, REFERENCE), DEFAULT_SEED, REFERENCE)
    covered = {
        section_for(resource)
        for feed_bundles in small.values()
        for resource in resources_of(feed_bundles)
        if resource["resourceType"] != "Patient"
    }

    assert covered == set(CLINICAL_SECTIONS)


def test_patient_a_is_at_practice_a_with_gp_hospital_and_mental_health_data(bundles):
    gp_patients = [r for r in resources_of(bundles["gp-d81001"]) if r["resourceType"] == "Patient"]
    patient = next(r for r in gp_patients if r["identifier"][0]["value"] == PATIENT_A)
    assert patient["generalPractitioner"][0]["identifier"] == {"system": ODS_SYSTEM, "value": "D81001"}
    partners = {
        code
        for code, feed_bundles in bundles.items()
        if any(about(r, PATIENT_A, {f"urn:uuid:{patient['id']}"}) for r in resources_of(feed_bundles))
    }
    assert partners == {"gp-d81001", "cuh-epr", "cpft-mh"}

    hospital = [r for r in resources_of(bundles["cuh-epr"]) if about(r, PATIENT_A, set())]
    emergency = [r for r in hospital if r["resourceType"] == "Encounter" and r["class"]["code"] == "EMER"]
    ended = max(datetime.fromisoformat(e["period"]["end"]) for e in emergency if e["status"] == "finished")
    midnight = local_midnight(REFERENCE)
    assert timedelta(days=2) <= midnight - ended <= timedelta(days=7)

    mental_health = [r for r in resources_of(bundles["cpft-mh"]) if about(r, PATIENT_A, set())]
    episodes = [r for r in mental_health if r["resourceType"] == "EpisodeOfCare"]
    plans = [r for r in mental_health if r["resourceType"] == "CarePlan"]
    assert [e["status"] for e in episodes] == ["active"]
    assert "end" not in episodes[0]["period"]
    assert [p["status"] for p in plans] == ["active"]


def test_patient_b_is_at_practice_b_with_gp_and_mental_health_data_only(bundles):
    gp_patients = [r for r in resources_of(bundles["gp-d81002"]) if r["resourceType"] == "Patient"]
    patient = next(r for r in gp_patients if r["identifier"][0]["value"] == PATIENT_B)
    assert patient["generalPractitioner"][0]["identifier"]["value"] == "D81002"
    partners = {
        code
        for code, feed_bundles in bundles.items()
        if any(about(r, PATIENT_B, {f"urn:uuid:{patient['id']}"}) for r in resources_of(feed_bundles))
    }
    assert partners == {"gp-d81002", "cpft-mh"}


# Loading through the real pipeline.


def load(*extra: str) -> str:
    out = StringIO()
    call_command(
        "demo_load",
        "--patients",
        str(SMALL_DEMO),
        "--reference-date",
        timezone.localdate().isoformat(),
        *extra,
        stdout=out,
    )
    return out.getvalue()


def snapshot() -> dict[str, int]:
    return {
        "organisations": Organisation.objects.count(),
        "feeds": Feed.objects.count(),
        "users": get_user_model().objects.count(),
        "staff profiles": StaffProfile.objects.count(),
        "patients": Patient.objects.count(),
        "entries": RecordEntry.objects.count(),
        "relationships": LegitimateRelationship.objects.count(),
        "quarantined": QuarantinedRecord.objects.count(),
        "objections": Objection.objects.count(),
        "access requests": SubjectAccessRequest.objects.count(),
    }


# A refused load and a load that keeps its files, each on an empty database: before the tests that share one load,
# whose transaction stays open to the end of the module.


def test_demo_load_without_demo_password_refuses_and_writes_nothing(db, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)

    with pytest.raises(CommandError, match="DEMO_PASSWORD"):
        load()

    assert set(snapshot().values()) == {0}
    assert not IngestRun.objects.exists()


def test_demo_load_refuses_a_weak_demo_password(db, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "password")

    with pytest.raises(CommandError, match="DEMO_PASSWORD is not acceptable"):
        load()

    assert not get_user_model().objects.exists()
    assert not IngestRun.objects.exists()


def test_demo_load_can_keep_its_bundles(db, monkeypatch, tmp_path):
    monkeypatch.setenv("DEMO_PASSWORD", PASSWORD)

    load("--keep", str(tmp_path))

    written = json.loads((tmp_path / "gp-d81001" / "gp-d81001-001.json").read_text())
    assert written["resourceType"] == "Bundle"


# The tests below share one load of the demo (the slow part), each in a transaction of its own rolled back after it,
# so that what one changes the next does not see.


@pytest.fixture(scope="module")
def _loaded_once(django_db_setup, django_db_blocker) -> Iterator[str]:
    """The demo loaded in a transaction that is rolled back when the module is done; what `load` printed."""
    with django_db_blocker.unblock():
        module_transaction = transaction.atomic()
        module_transaction.__enter__()
        # As every test's own fixtures would have it: the tests' password hasher, DEMO_PASSWORD set.
        with pytest.MonkeyPatch.context() as patch, override_settings(PASSWORD_HASHERS=FAST_HASHERS):
            patch.setenv("DEMO_PASSWORD", PASSWORD)
            printed = load()
    try:
        yield printed
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            module_transaction.__exit__(None, None, None)


@pytest.fixture
def loaded(_loaded_once, db, monkeypatch) -> str:
    monkeypatch.setenv("DEMO_PASSWORD", PASSWORD)
    return _loaded_once


def test_demo_load_creates_the_eight_users_with_their_roles(loaded):
    users = {
        user.username: user
        for user in get_user_model().objects.prefetch_related("staff_profiles__organisation")
    }
    expected = {
        "gp.ada": ("D81001", JobRole.CLINICAL_PRACTITIONER),
        "gp.ben": ("D81002", JobRole.CLINICAL_PRACTITIONER),
        "ed.cara": ("RGT", JobRole.CLINICAL_PRACTITIONER),
        "reception.dan": ("D81001", JobRole.ADMIN_CLINICAL_SUPPORT),
        "social.eli": ("CCC01", JobRole.SOCIAL_CARE_PRACTITIONER),
        "privacy.fay": ("QUE", JobRole.PRIVACY_OFFICER),
    }
    several = {"mh.ivy": [("RT1", JobRole.CLINICAL_PRACTITIONER), ("RGT", JobRole.CLINICAL_PRACTITIONER)]}

    assert set(users) == {*expected, *several, "admin.gus", "ra.rita"}
    ivy = users["mh.ivy"]
    assert [
        (profile.organisation.ods_code, profile.job_role) for profile in ivy.staff_profiles.order_by("pk")
    ] == several["mh.ivy"]
    for username, (ods_code, role) in expected.items():
        user = users[username]
        profiles = [
            (profile.organisation.ods_code, profile.job_role) for profile in user.staff_profiles.all()
        ]
        assert profiles == [(ods_code, role)]
        assert user.first_name and user.last_name
        assert not user.is_staff and not user.is_superuser
        assert user.check_password(PASSWORD)
    gus = users["admin.gus"]
    assert gus.is_staff and gus.is_superuser and gus.check_password(PASSWORD)
    assert not StaffProfile.objects.filter(user=gus).exists()
    rita = users["ra.rita"]
    assert rita.is_staff and not rita.is_superuser and not StaffProfile.objects.filter(user=rita).exists()
    assert may_administer_access(rita) and not may_administer_access(gus)
    assert "gp.ada" in loaded and PASSWORD not in loaded


def test_demo_load_creates_partners_and_live_feeds_and_peterborough_not_yet_joined(loaded):
    feeds = {feed.code: feed for feed in Feed.objects.select_related("organisation")}

    assert {spec.code for spec in LIVE_FEEDS} == {
        code for code, feed in feeds.items() if feed.state == Feed.State.LIVE
    }
    assert {code for code, feed in feeds.items() if feed.can_create_patients} == {
        "gp-d81001",
        "gp-d81002",
        "gp-d81003",
        "gp-d81004",
    }
    assert not Feed.objects.filter(
        organisation__name="Peterborough City Council", state=Feed.State.LIVE
    ).exists()
    assert Organisation.objects.filter(name="Peterborough City Council").exists()
    assert Organisation.objects.get(ods_code="QUE").kind == Organisation.Kind.ICB
    assert all(feed.last_success_at for feed in feeds.values() if feed.state == Feed.State.LIVE)


def test_demo_load_ingests_everything_without_quarantine(loaded):
    assert Patient.objects.count() == SMALL_DEMO
    assert QuarantinedRecord.objects.count() == 0
    assert set(IngestRun.objects.values_list("status", flat=True)) == {IngestRun.Status.SUCCEEDED}
    assert set(RecordEntry.objects.values_list("section", flat=True)) == set(CLINICAL_SECTIONS)
    sections_by_feed = defaultdict(set)
    for code, section in RecordEntry.objects.values_list("feed__code", "section"):
        sections_by_feed[code].add(section)
    for feed in Feed.objects.filter(code__in=sections_by_feed):
        assert sections_by_feed[feed.code] <= set(feed.sections)


def test_patient_a_has_entries_from_gp_hospital_and_mental_health_trust(loaded):
    patient = Patient.objects.select_related("registered_practice").get(nhs_number=PATIENT_A)
    sources = set(patient.entries.values_list("organisation__ods_code", flat=True))

    assert patient.registered_practice.ods_code == "D81001"
    assert patient.given_name and patient.family_name and patient.birth_date and patient.postcode
    assert {"D81001", "RGT", "RT1"} <= sources
    assert Patient.objects.get(nhs_number=PATIENT_B).registered_practice.ods_code == "D81002"


def test_gp_ada_and_ed_cara_may_see_patient_a_and_gp_ben_may_not(loaded):
    users = {user.username: user for user in get_user_model().objects.all()}
    patient = Patient.objects.get(nhs_number=PATIENT_A)

    assert decide(users["gp.ada"], patient, Action.VIEW_RECORD).allowed
    assert decide(users["ed.cara"], patient, Action.VIEW_RECORD).allowed
    assert not decide(users["gp.ben"], patient, Action.VIEW_RECORD).allowed
    receptionist = decide(users["reception.dan"], patient, Action.VIEW_RECORD)
    assert receptionist.allowed and receptionist.sections == DEMOGRAPHIC_SECTIONS
    assert not decide(users["admin.gus"], patient, Action.VIEW_RECORD).allowed
    assert not decide(users["privacy.fay"], patient, Action.VIEW_RECORD).allowed
    assert not decide(users["social.eli"], patient, Action.VIEW_RECORD).allowed


def test_social_eli_may_see_a_patient_with_an_open_county_case(loaded):
    eli = get_user_model().objects.get(username="social.eli")
    # The third demo patient is a showcase patient with an open social-care case that names a social worker.
    patient = Patient.objects.get(nhs_number=demo_nhs_numbers(3)[2])

    decision = decide(eli, patient, Action.VIEW_RECORD)

    assert decision.allowed
    assert decision.basis.startswith("caseload:CCC01 relationship ")


def test_the_north_team_and_not_the_whole_council_holds_the_caseload_the_extract_names(loaded):
    eli = get_user_model().objects.get(username="social.eli")
    team = CareTeam.objects.get(code="CCC-ASC-NORTH")
    patient = Patient.objects.get(nhs_number=TEAM_CASELOAD)

    relationship = LegitimateRelationship.objects.get(content_object=patient, group=team.group)
    assert relationship.basis == LegitimateRelationship.Basis.CASELOAD
    assert relationship.source_feed.code == "county-caseload"
    assert relationship.source_entry.resource["team"][0]["identifier"]["value"] == "CCC-ASC-NORTH"
    assert not LegitimateRelationship.objects.filter(
        content_object=patient, group__organisation__ods_code="CCC01"
    ).exists()
    assert list(team.members.values_list("username", flat=True)) == ["social.eli"]
    decision = decide(eli, patient, Action.VIEW_RECORD)
    assert decision.allowed and decision.basis_kind == LegitimateRelationship.Basis.CASELOAD
    assert "held by Adult social care: north team" in decision.provenance


def test_a_gp_referral_gives_the_mental_health_trust_its_only_relationship_with_a_patient(loaded):
    patient = Patient.objects.get(nhs_number=REFERRED)

    relationship = LegitimateRelationship.objects.get(
        content_object=patient, group__organisation__ods_code="RT1"
    )

    assert relationship.basis == LegitimateRelationship.Basis.REFERRAL
    assert relationship.source_feed.code == "gp-d81002"
    assert relationship.source_entry.resource_type == "ServiceRequest"
    assert not patient.entries.filter(organisation__ods_code="RT1").exists()


def test_a_referral_opens_the_patient_to_the_psychiatrist_acting_for_cpft_and_not_for_the_hospital(loaded):
    ivy = get_user_model().objects.get(username="mh.ivy")
    patient = Patient.objects.get(nhs_number=REFERRED)
    cpft, cuh = ivy.staff_profiles.order_by("pk")

    ivy.selected_staff_profile_id = cpft.pk
    decision = decide(ivy, patient, Action.VIEW_RECORD)
    assert decision.allowed and decision.basis_kind == LegitimateRelationship.Basis.REFERRAL
    ivy.selected_staff_profile_id = cuh.pk
    assert not decide(ivy, patient, Action.VIEW_RECORD).allowed
    del ivy.selected_staff_profile_id
    assert not decide(ivy, patient, Action.VIEW_RECORD).allowed  # two roles and none chosen: nothing opens


def test_a_patient_has_sensitive_items_from_the_gp_and_the_hospital_and_each_sees_only_its_own(loaded):
    patient = Patient.objects.get(nhs_number=SENSITIVE_FROM_TWO_SOURCES)
    users = {user.username: user for user in get_user_model().objects.all()}

    sources = set(patient.entries.filter(is_sensitive=True).values_list("organisation__ods_code", flat=True))

    assert sources == {"D81001", "RGT"}
    for username, own in (("gp.ada", "D81001"), ("ed.cara", "RGT")):
        decision = decide(users[username], patient, Action.VIEW_RECORD)
        assert decision.allowed and decision.sensitive_visible_from == frozenset({own})


def test_a_patient_is_restricted_by_their_gp_whose_clinician_sees_where_they_live_and_receptionist_does_not(
    loaded,
):
    patient = Patient.objects.get(nhs_number=RESTRICTED)
    users = {user.username: user for user in get_user_model().objects.all()}

    assert patient.is_restricted
    assert not Patient.objects.get(nhs_number=PATIENT_A).is_restricted
    assert decide(users["gp.ada"], patient, Action.VIEW_RECORD).shows_restricted_demographics
    receptionist = decide(users["reception.dan"], patient, Action.VIEW_RECORD)
    assert receptionist.allowed and not receptionist.shows_restricted_demographics


def test_a_second_demo_load_changes_nothing_and_resets_the_passwords(loaded):
    ada = get_user_model().objects.get(username="gp.ada")
    ada.set_password("someone-changed-it-99")
    ada.save()
    before = snapshot()
    last_run = IngestRun.objects.order_by("-pk").first().pk

    load()

    assert snapshot() == before
    second_runs = IngestRun.objects.filter(pk__gt=last_run)
    assert second_runs.count() == len(LIVE_FEEDS)
    for run in second_runs:
        assert run.status == IngestRun.Status.SUCCEEDED
        assert (run.created, run.updated, run.quarantined, run.patients_created) == (0, 0, 0, 0)
        assert run.unchanged == run.resources_read > 0
    ada.refresh_from_db()
    assert ada.check_password(PASSWORD)


def test_privacy_fay_and_no_other_demo_user_works_patients_objections(loaded):
    users = {user.username: user for user in get_user_model().objects.all()}

    assert {name for name, user in users.items() if may_manage_patients_rights(user)} == {"privacy.fay"}


def test_the_ig_team_has_one_objection_in_each_state_with_its_history_and_two_access_requests(loaded):
    objections = Objection.objects.all()

    assert sorted(objection.status for objection in objections) == sorted(Objection.Status.values)
    for objection in objections.exclude(status=Objection.Status.RECEIVED):
        actors = {entry.actor.username for entry in LogEntry.objects.get_for_object(objection) if entry.actor}
        assert actors == {"privacy.fay"}
    assert objections.filter(status=Objection.Status.RECEIVED, due_at__lt=timezone.now()).exists()  # overdue
    named = set(demo_nhs_numbers(10))
    assert not objections.filter(patient__nhs_number__in=named).exists()
    assert set(SubjectAccessRequest.objects.values_list("status", flat=True)) == {
        SubjectAccessRequest.Status.RECEIVED,
        SubjectAccessRequest.Status.IDENTITY_VERIFIED,
    }


def test_the_upheld_objection_withholds_the_hospitals_data_from_the_patients_gp_and_says_so(loaded):
    upheld = Objection.objects.get(status=Objection.Status.UPHELD)
    ada = get_user_model().objects.get(username="gp.ada")

    decision = decide(ada, upheld.patient, Action.VIEW_RECORD)

    assert decision.allowed and decision.withheld_partners == frozenset({"RGT"})


def test_make_run_prints_every_demo_login_the_demo_creates():
    from records.demo.partners import USERS
    from sharedcare.embedded.launch import DEMO_LOGINS

    assert [username for username, _ in DEMO_LOGINS] == [user.username for user in USERS]
