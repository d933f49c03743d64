"""Relationships from care context: registration, open and recent care events, referrals; each with where it came
from, each beginning and ending with the data that supports it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import CareTeam, LegitimateRelationship
from consent.policy import Action, decide
from consent.roles import JobRole
from consent.services import care_team_create, care_team_member_add, relationships_refresh
from records.models import Organisation, Patient, RecordEntry
from records.services import feed_upsert, organisation_upsert
from sharedcare.env import ImproperlyConfiguredEnv, env_int_map
from tests.builders import (
    NEWCOMER,
    encounter,
    ingest,
    make_user,
    ods_reference,
    referral,
    registration,
)

Basis = LegitimateRelationship.Basis


def relationship(patient: Patient, holder: Organisation | CareTeam) -> LegitimateRelationship:
    return LegitimateRelationship.objects.get(content_object_id=patient.pk, group=holder.group)


def has_relationship(patient: Patient, holder: Organisation | CareTeam) -> bool:
    return LegitimateRelationship.objects.filter(content_object_id=patient.pk, group=holder.group).exists()


def entry(source_id: str) -> RecordEntry:
    return RecordEntry.objects.get(source_id=source_id)


# Registration.


def test_a_registration_gives_the_practice_a_relationship_naming_the_feed_and_run_that_sent_it(cast):
    run = ingest(cast.gp_a_feed, registration("p-nia", NEWCOMER, "D81001"))

    patient = Patient.objects.get(nhs_number=NEWCOMER)
    found = relationship(patient, cast.practice_a)
    assert (found.basis, found.valid_until) == (Basis.REGISTERED_PRACTICE, None)
    assert (found.source_feed, found.source_run, found.source_entry) == (cast.gp_a_feed, run, None)
    assert found.source_description == "Patient registration at D81001 (Patient/p-nia)"


def test_a_registration_keeps_its_run_when_another_partner_refreshes_the_patient(cast):
    run = ingest(cast.gp_a_feed, registration("p-nia", NEWCOMER, "D81001"))
    patient = Patient.objects.get(nhs_number=NEWCOMER)

    ingest(cast.cuh_feed, encounter("e1", patient))

    assert relationship(patient, cast.practice_a).source_run == run


def test_a_move_to_another_practice_moves_the_registration(cast):
    ingest(cast.gp_a_feed, registration("p-nia", NEWCOMER, "D81001"))
    patient = Patient.objects.get(nhs_number=NEWCOMER)

    ingest(cast.gp_b_feed, registration("p-nia-b", NEWCOMER, "D81002"))

    assert not has_relationship(patient, cast.practice_a)
    assert relationship(patient, cast.practice_b).basis == Basis.REGISTERED_PRACTICE


# Care events.


@pytest.mark.parametrize(
    ("encounter_class", "words"),
    [("EMER", "emergency attendance"), ("IMP", "inpatient admission")],
)
def test_an_open_admission_or_attendance_gives_an_open_ended_care_event_with_its_provenance(
    cast, encounter_class, words
):
    run = ingest(
        cast.cuh_feed, encounter("e1", cast.patient_b, status="in-progress", encounter_class=encounter_class)
    )

    found = relationship(cast.patient_b, cast.cuh)
    assert (found.basis, found.valid_until) == (Basis.CARE_EVENT, None)
    assert (found.source_feed, found.source_run, found.source_entry) == (cast.cuh_feed, run, entry("e1"))
    assert found.source_description == f"Encounter/e1: {words}, open"


def test_an_outpatient_contact_still_going_counts_from_its_start_for_the_window(cast):
    start = timezone.now() - timedelta(days=5)

    ingest(
        cast.cuh_feed,
        encounter("e1", cast.patient_b, status="in-progress", encounter_class="AMB", start=start),
    )

    found = relationship(cast.patient_b, cast.cuh)
    assert found.basis == Basis.CARE_EVENT
    assert found.valid_until == entry("e1").effective_at + timedelta(days=30)


@pytest.mark.parametrize(
    ("kind", "days"),
    [
        (Organisation.Kind.ACUTE_TRUST, 30),
        (Organisation.Kind.AMBULANCE_TRUST, 7),
        (Organisation.Kind.MENTAL_HEALTH_TRUST, 90),
        (Organisation.Kind.LOCAL_AUTHORITY, 90),
    ],
)
def test_a_finished_encounter_lasts_the_window_of_its_partners_kind(cast, kind, days):
    partner = organisation_upsert(ods_code="X0001", name="A partner", kind=kind)
    feed = feed_upsert(code="partner-epr", organisation=partner, name="EPR", sections=[])
    ended = timezone.now() - timedelta(days=3)

    ingest(feed, encounter("e1", cast.patient_b, start=ended - timedelta(hours=2), end=ended))

    found = relationship(cast.patient_b, partner)
    assert found.basis == Basis.CARE_EVENT
    assert found.valid_until == entry("e1").effective_end + timedelta(days=days)
    assert found.source_description.startswith("Encounter/e1: emergency attendance, ended ")


def test_a_kind_without_its_own_window_falls_back_to_the_general_one(cast, settings):
    settings.RELATIONSHIP_ENCOUNTER_DAYS_BY_KIND = {Organisation.Kind.ACUTE_TRUST: 30}
    settings.RELATIONSHIP_ENCOUNTER_DAYS = 45
    partner = organisation_upsert(ods_code="X0001", name="A partner", kind=Organisation.Kind.COMMUNITY_TRUST)
    feed = feed_upsert(code="partner-epr", organisation=partner, name="EPR", sections=[])
    ended = timezone.now() - timedelta(days=3)

    ingest(feed, encounter("e1", cast.patient_b, start=ended - timedelta(hours=2), end=ended))

    assert relationship(cast.patient_b, partner).valid_until == entry("e1").effective_end + timedelta(days=45)


def test_a_discharge_shortens_the_open_relationship_to_the_window(cast):
    admitted = timezone.now() - timedelta(days=4)
    ingest(
        cast.cuh_feed,
        encounter("e1", cast.patient_b, status="in-progress", encounter_class="IMP", start=admitted),
    )
    assert relationship(cast.patient_b, cast.cuh).valid_until is None

    discharged = timezone.now() - timedelta(days=1)
    run = ingest(
        cast.cuh_feed,
        encounter("e1", cast.patient_b, encounter_class="IMP", start=admitted, end=discharged),
    )

    found = relationship(cast.patient_b, cast.cuh)
    assert found.valid_until == entry("e1").effective_end + timedelta(days=30)
    assert found.source_run == run


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_an_encounter_that_never_happened_ends_its_relationship(cast, status):
    ingest(cast.cuh_feed, encounter("e1", cast.patient_b, status="in-progress"))
    assert has_relationship(cast.patient_b, cast.cuh)

    ingest(cast.cuh_feed, encounter("e1", cast.patient_b, status=status))

    assert not has_relationship(cast.patient_b, cast.cuh)


def test_the_strongest_basis_wins_for_one_holder(cast):
    ingest(cast.gp_a_feed, encounter("e1", cast.patient_a, status="in-progress", encounter_class="EMER"))

    # Patient A is registered at practice A: the registration outranks the practice's own open encounter.
    assert relationship(cast.patient_a, cast.practice_a).basis == Basis.REGISTERED_PRACTICE


def test_an_open_encounter_outranks_a_finished_one_at_the_same_partner(cast):
    ended = timezone.now() - timedelta(days=3)
    ingest(
        cast.cuh_feed,
        encounter("old", cast.patient_b, start=ended - timedelta(hours=1), end=ended),
        encounter("now", cast.patient_b, status="in-progress", encounter_class="IMP"),
    )

    found = relationship(cast.patient_b, cast.cuh)
    assert (found.valid_until, found.source_entry) == (None, entry("now"))


def test_a_relationship_not_derived_from_data_is_never_touched(cast):
    kept = LegitimateRelationship.objects.create(
        content_object=cast.patient_b,
        group=cast.cuh.group,
        permission=relationship(cast.patient_b, cast.practice_b).permission,
        basis="imported",
        source_description="Carried over from the previous system",
    )

    relationships_refresh([cast.patient_b.pk])

    kept_now = LegitimateRelationship.objects.get(pk=kept.pk)
    assert (kept_now.basis, kept_now.valid_until, kept_now.source_description) == (
        "imported",
        None,
        "Carried over from the previous system",
    )


# Referrals.


@pytest.fixture
def mh_hana(cast):
    """A clinician at the mental-health trust."""
    return make_user("mh.hana", cast.cpft, JobRole.CLINICAL_PRACTITIONER)


def test_a_referral_received_by_cpft_gives_cpft_a_relationship(cast, mh_hana):
    assert not decide(mh_hana, cast.patient_b, Action.VIEW_RECORD).allowed

    run = ingest(cast.gp_b_feed, referral("r1", cast.patient_b, [ods_reference("RT1")]))

    found = relationship(cast.patient_b, cast.cpft)
    assert (found.basis, found.valid_until) == (Basis.REFERRAL, None)
    assert (found.source_feed, found.source_run, found.source_entry) == (cast.gp_b_feed, run, entry("r1"))
    assert found.source_description == (
        "ServiceRequest/r1: Referral to community mental health team, referral to RT1, active"
    )
    decision = decide(mh_hana, cast.patient_b, Action.VIEW_RECORD)
    assert decision.allowed and decision.basis_kind == Basis.REFERRAL
    assert decision.provenance == (
        "Referral received; ServiceRequest/r1: Referral to community mental health team, referral to RT1, active; "
        f"from Fenland Practice's {cast.gp_b_feed.name} ({cast.gp_b_feed.code}); ingest run {run.pk}"
    )


@pytest.mark.parametrize(
    ("performer", "extra"),
    [
        (
            [{"reference": "#cpft"}],
            {
                "contained": [
                    {
                        "resourceType": "Organization",
                        "id": "cpft",
                        "identifier": [
                            {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RT1"}
                        ],
                        "name": "CPFT",
                    }
                ]
            },
        ),
        ([{"reference": "Organization/RT1"}], {}),
    ],
    ids=["contained", "literal"],
)
def test_a_referral_may_name_its_performer_by_a_contained_or_literal_organization(cast, performer, extra):
    ingest(cast.gp_b_feed, referral("r1", cast.patient_b, performer, **extra))

    assert relationship(cast.patient_b, cast.cpft).basis == Basis.REFERRAL


def test_a_referral_to_a_partner_we_do_not_hold_gives_no_one_a_relationship(cast):
    before = LegitimateRelationship.objects.count()

    ingest(cast.gp_b_feed, referral("r1", cast.patient_b, [ods_reference("Z9999")]))

    assert LegitimateRelationship.objects.count() == before


def test_a_referral_a_partner_records_as_received_by_itself_counts(cast):
    ingest(cast.cpft_feed, referral("r1", cast.patient_b, [ods_reference("RT1")]))

    found = relationship(cast.patient_b, cast.cpft)
    assert (found.basis, found.source_feed) == (Basis.REFERRAL, cast.cpft_feed)


@pytest.mark.parametrize("status", ["completed", "revoked", "entered-in-error"])
def test_a_referral_completed_or_revoked_ends_the_relationship(cast, status):
    ingest(cast.gp_b_feed, referral("r1", cast.patient_b, [ods_reference("RT1")]))
    assert has_relationship(cast.patient_b, cast.cpft)

    ingest(cast.gp_b_feed, referral("r1", cast.patient_b, [ods_reference("RT1")], status=status))

    assert not has_relationship(cast.patient_b, cast.cpft)


def test_a_referral_naming_a_team_goes_to_the_team_and_reaches_only_its_members(cast, mh_hana):
    team = care_team_create(organisation=cast.cpft, name="Early intervention in psychosis", code="CPFT-EIP")
    care_team_member_add(team=team, user_id=mh_hana.pk)
    colleague = make_user("mh.ivo", cast.cpft, JobRole.CLINICAL_PRACTITIONER)
    to_team = {
        "type": "CareTeam",
        "identifier": {"system": "https://cpft.example/teams", "value": "CPFT-EIP"},
    }

    ingest(cast.gp_b_feed, referral("r1", cast.patient_b, [to_team, ods_reference("RT1")]))

    assert relationship(cast.patient_b, team).basis == Basis.REFERRAL
    assert not has_relationship(cast.patient_b, cast.cpft)
    assert decide(mh_hana, cast.patient_b, Action.VIEW_RECORD).allowed
    assert not decide(colleague, cast.patient_b, Action.VIEW_RECORD).allowed


def test_a_referral_naming_only_a_team_code_is_one_of_the_sending_partners_teams(cast):
    team = care_team_create(organisation=cast.cpft, name="Crisis resolution team", code="CPFT-CRHT")
    to_team = {
        "type": "CareTeam",
        "identifier": {"system": "https://cpft.example/teams", "value": "CPFT-CRHT"},
    }

    ingest(cast.cpft_feed, referral("r1", cast.patient_b, [to_team]))

    found = relationship(cast.patient_b, team)
    assert found.basis == Basis.REFERRAL
    assert found.source_description.endswith("referral to RT1 (Crisis resolution team), active")
    assert not has_relationship(cast.patient_b, cast.cpft)


def test_a_referral_ranks_below_an_open_care_event_at_the_same_partner(cast):
    ingest(
        cast.cpft_feed,
        referral("r1", cast.patient_b, [ods_reference("RT1")]),
        encounter("e1", cast.patient_b, status="in-progress", encounter_class="IMP"),
    )

    found = relationship(cast.patient_b, cast.cpft)
    assert (found.basis, found.source_entry) == (Basis.CARE_EVENT, entry("e1"))


# The window setting.


def test_the_window_setting_names_every_kind_of_organisation(settings):
    assert set(settings.ORGANISATION_KINDS) == set(Organisation.Kind.values)
    assert set(settings.RELATIONSHIP_ENCOUNTER_DAYS_BY_KIND) <= set(Organisation.Kind.values)


def test_the_window_setting_overrides_the_kinds_it_names(monkeypatch):
    monkeypatch.setenv("WINDOWS", "acute-trust=14, icb=3")

    assert env_int_map(
        "WINDOWS",
        {"acute-trust": 30, "gp-practice": 90},
        keys=("acute-trust", "gp-practice", "icb"),
        minimum=1,
    ) == {
        "acute-trust": 14,
        "gp-practice": 90,
        "icb": 3,
    }


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("acute=14", "not one of"),
        ("acute-trust=14,acute-trust=15", "twice"),
        ("acute-trust", "name=number"),
        ("acute-trust=two", "whole number"),
        ("acute-trust=0", "at least 1"),
    ],
)
def test_the_window_setting_refuses_nonsense(monkeypatch, value, complaint):
    monkeypatch.setenv("WINDOWS", value)

    with pytest.raises(ImproperlyConfiguredEnv, match=complaint):
        env_int_map("WINDOWS", {}, keys=("acute-trust", "gp-practice"), minimum=1)
