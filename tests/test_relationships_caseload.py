"""Caseloads: an episode of care naming a team gives that team, and not its whole organisation, a relationship that
lasts while the episode does; one naming no team we know gives it to the organisation."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import CareTeam, LegitimateRelationship
from consent.policy import Action, decide
from consent.roles import JobRole
from consent.services import care_team_create, care_team_member_add
from records.ingest.pipeline import ingest_texts
from records.models import Feed, IngestRun, Organisation, Patient, RecordEntry
from tests.builders import episode_of_care, ingest, make_user

Basis = LegitimateRelationship.Basis
TEAM = "CCC-ASC-NORTH"
MAPPING = {
    "nhs_number": "NHS Number",
    "record_type": "Record Type",
    "record_id": "Case Ref",
    "date": "Start Date",
    "date_format": "%d/%m/%Y",
    "end_date": "End Date",
    "status": "Status",
    "description": "Description",
    "team_code": "Team",
    "team_name": "Team Name",
    "types": {"caseload": "EpisodeOfCare", "referral": "ServiceRequest"},
}
HEADER = [
    "NHS Number",
    "Record Type",
    "Case Ref",
    "Start Date",
    "End Date",
    "Status",
    "Description",
    "Team",
    "Team Name",
]


@pytest.fixture
def caseload_feed(cast) -> Feed:
    return Feed.objects.create(
        code="county-caseload",
        organisation=cast.county,
        name="Adult social care caseload",
        format=Feed.Format.CSV,
        csv_mapping=MAPPING,
    )


@pytest.fixture
def north_team(cast) -> CareTeam:
    """The council's north team, with social.eli in it."""
    team = care_team_create(organisation=cast.county, name="Adult social care: north team", code=TEAM)
    care_team_member_add(team=team, user_id=cast.social_eli.pk)
    return team


@pytest.fixture
def social_gil(cast):
    """A social worker at the same council, in no team."""
    return make_user("social.gil", cast.county, JobRole.SOCIAL_CARE_PRACTITIONER)


def extract(*rows: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def day(days_ago: int) -> str:
    return (timezone.localdate() - timedelta(days=days_ago)).strftime("%d/%m/%Y")


def caseload_row(
    patient: Patient, team: str = TEAM, *, status: str = "Open", end: str = "", record_type: str = "caseload"
) -> list[str]:
    return [
        patient.nhs_number,
        record_type,
        "CASE-7",
        day(40),
        end,
        status,
        "Long-term support",
        team,
        "North team",
    ]


def run_extract(feed: Feed, *rows: list[str]) -> IngestRun:
    return ingest_texts(feed, [("caseload.csv", extract(*rows))])


def relationship(patient: Patient, holder: Organisation | CareTeam) -> LegitimateRelationship:
    return LegitimateRelationship.objects.get(content_object_id=patient.pk, group=holder.group)


def has_relationship(patient: Patient, holder: Organisation | CareTeam) -> bool:
    return LegitimateRelationship.objects.filter(content_object_id=patient.pk, group=holder.group).exists()


def test_a_caseload_row_naming_a_council_team_gives_the_team_and_not_the_council_a_relationship(
    cast, caseload_feed, north_team
):
    run = run_extract(caseload_feed, caseload_row(cast.patient_b))

    entry = RecordEntry.objects.get(source_id="CASE-7")
    assert entry.resource["team"][0]["identifier"]["value"] == TEAM
    found = relationship(cast.patient_b, north_team)
    assert (found.basis, found.valid_until) == (Basis.CASELOAD, None)
    assert (found.source_feed, found.source_run, found.source_entry) == (caseload_feed, run, entry)
    assert found.source_description == (
        "EpisodeOfCare/CASE-7: Long-term support, active, on the caseload of Adult social care: north team"
    )
    assert not has_relationship(cast.patient_b, cast.county)


def test_the_team_relationship_reaches_a_member_and_not_a_colleague_outside_the_team(
    cast, caseload_feed, north_team, social_gil
):
    run_extract(caseload_feed, caseload_row(cast.patient_b))

    decision = decide(cast.social_eli, cast.patient_b, Action.VIEW_RECORD)
    assert decision.allowed and decision.basis_kind == Basis.CASELOAD
    assert "held by Adult social care: north team" in decision.provenance
    assert not decide(social_gil, cast.patient_b, Action.VIEW_RECORD).allowed


def test_a_caseload_naming_a_team_we_do_not_know_goes_to_the_council(cast, caseload_feed, north_team):
    run_extract(caseload_feed, caseload_row(cast.patient_b, team="CCC-ASC-SOUTH"))

    assert relationship(cast.patient_b, cast.county).basis == Basis.CASELOAD
    assert not has_relationship(cast.patient_b, north_team)


def test_a_closed_case_keeps_the_team_only_for_the_councils_window_after_it_ends(
    cast, caseload_feed, north_team
):
    run_extract(caseload_feed, caseload_row(cast.patient_b))

    run_extract(caseload_feed, caseload_row(cast.patient_b, status="Closed", end=day(5)))

    found = relationship(cast.patient_b, north_team)
    ended = RecordEntry.objects.get(source_id="CASE-7").effective_end
    assert (found.basis, found.valid_until) == (Basis.CARE_EVENT, ended + timedelta(days=90))
    assert not has_relationship(cast.patient_b, cast.county)


def test_a_deleted_case_ends_the_team_relationship(cast, caseload_feed, north_team):
    run_extract(caseload_feed, caseload_row(cast.patient_b))

    run_extract(caseload_feed, caseload_row(cast.patient_b, status="Deleted"))

    assert not has_relationship(cast.patient_b, north_team)
    assert not decide(cast.social_eli, cast.patient_b, Action.VIEW_RECORD).allowed


def test_a_referral_row_naming_a_team_is_a_referral_that_team_received(cast, caseload_feed, north_team):
    run_extract(caseload_feed, caseload_row(cast.patient_b, record_type="referral"))

    assert relationship(cast.patient_b, north_team).basis == Basis.REFERRAL
    assert not has_relationship(cast.patient_b, cast.county)


def test_an_episode_naming_a_care_manager_is_on_the_organisations_caseload(cast):
    ingest(cast.cpft_feed, episode_of_care("ep1", cast.patient_b, care_manager={"display": "Fiona Ledger"}))

    found = relationship(cast.patient_b, cast.cpft)
    assert found.basis == Basis.CASELOAD
    assert found.source_description.endswith("active, on the caseload of RT1")


def test_an_episode_naming_no_one_is_an_open_care_event(cast):
    ingest(cast.cpft_feed, episode_of_care("ep1", cast.patient_b))

    found = relationship(cast.patient_b, cast.cpft)
    assert (found.basis, found.valid_until) == (Basis.CARE_EVENT, None)


def test_a_fhir_episode_naming_a_contained_team_is_the_teams_caseload(cast):
    team = care_team_create(organisation=cast.cpft, name="Community mental health team", code="CPFT-CMHT-1")
    resource = episode_of_care("ep1", cast.patient_b, team={"reference": "#team"})
    resource["contained"] = [
        {
            "resourceType": "CareTeam",
            "id": "team",
            "identifier": [{"system": "https://cpft.example/teams", "value": "CPFT-CMHT-1"}],
            "name": "Community mental health team",
        }
    ]

    ingest(cast.cpft_feed, resource)

    assert relationship(cast.patient_b, team).basis == Basis.CASELOAD
    assert not has_relationship(cast.patient_b, cast.cpft)
