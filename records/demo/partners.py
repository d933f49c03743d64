"""The demo's partners, their datasets (feeds) and its users, as data.

NHS trust, ICB and council names and ODS codes are the published ones for Cambridgeshire and Peterborough
(DESIGN.md §9). The GP practices and their primary care networks are fictional: the codes follow the real shape
(a letter and five digits) but the names are invented, and any likeness to a real practice is chance.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consent.roles import JobRole
from records.models import Feed, Organisation
from records.sections import Section


@dataclass(frozen=True)
class PartnerSpec:
    ods_code: str
    name: str
    kind: str
    primary_care_network: str = ""
    # Areas (keys of people.AREAS) a GP practice registers its patients from.
    areas: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedSpec:
    code: str
    ods_code: str
    name: str
    sections: tuple[Section, ...]
    state: str = Feed.State.LIVE
    can_create_patients: bool = False
    format: str = Feed.Format.FHIR
    # For a CSV feed: its declared mapping (`records.ingest.formats.csv_mapping`).
    csv_mapping: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TeamSpec:
    """A care team within a partner, by the code the partner's own systems use for it, and its members."""

    ods_code: str
    code: str
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class UserSpec:
    username: str
    first_name: str
    last_name: str
    ods_code: str | None
    job_role: str | None
    description: str
    is_superuser: bool = False
    # More role profiles (ODS code, job role) the user holds; with more than one, they choose one at login.
    also: tuple[tuple[str, str], ...] = ()
    # A member of the information-governance team, who works patients' objections and access requests.
    ig_team: bool = False
    # The registration authority: back-office staff who alone change other users' access (consent.separation).
    registration_authority: bool = False


PRACTICE_A = "D81001"
PRACTICE_B = "D81002"
PRACTICE_C = "D81003"
PRACTICE_D = "D81004"
CUH = "RGT"
NORTH_WEST_ANGLIA = "RGN"
ROYAL_PAPWORTH = "RGM"
CPFT = "RT1"
COMMUNITY_SERVICES = "RYV"
AMBULANCE = "RYC"
# Councils have no ODS code of the trust shape, and the one NHS England lists is not stable enough to key on,
# so the council is known here by a short local code that fits the same 3 to 6 character rule.
COUNTY_COUNCIL = "CCC01"
PETERBOROUGH_COUNCIL = "PCC01"
ICB = "QUE"

PRACTICES: tuple[PartnerSpec, ...] = (
    PartnerSpec(
        PRACTICE_A,
        "Riverside Surgery",
        Organisation.Kind.GP_PRACTICE,
        "Cambridge Riverside PCN",
        ("cambridge",),
    ),
    PartnerSpec(
        PRACTICE_B,
        "Fenland Practice",
        Organisation.Kind.GP_PRACTICE,
        "Fenland Rural PCN",
        ("fenland", "east-cambridgeshire"),
    ),
    PartnerSpec(
        PRACTICE_C,
        "Cathedral View Surgery",
        Organisation.Kind.GP_PRACTICE,
        "Peterborough Central PCN",
        ("peterborough",),
    ),
    PartnerSpec(
        PRACTICE_D,
        "Ouse Meadows Practice",
        Organisation.Kind.GP_PRACTICE,
        "Huntingdonshire Ouse PCN",
        ("huntingdonshire",),
    ),
)

PARTNERS: tuple[PartnerSpec, ...] = (
    *PRACTICES,
    PartnerSpec(CUH, "Cambridge University Hospitals NHS Foundation Trust", Organisation.Kind.ACUTE_TRUST),
    PartnerSpec(NORTH_WEST_ANGLIA, "North West Anglia NHS Foundation Trust", Organisation.Kind.ACUTE_TRUST),
    PartnerSpec(
        ROYAL_PAPWORTH, "Royal Papworth Hospital NHS Foundation Trust", Organisation.Kind.ACUTE_TRUST
    ),
    PartnerSpec(
        CPFT, "Cambridgeshire and Peterborough NHS Foundation Trust", Organisation.Kind.MENTAL_HEALTH_TRUST
    ),
    PartnerSpec(
        COMMUNITY_SERVICES, "Cambridgeshire Community Services NHS Trust", Organisation.Kind.COMMUNITY_TRUST
    ),
    PartnerSpec(AMBULANCE, "East of England Ambulance Service NHS Trust", Organisation.Kind.AMBULANCE_TRUST),
    PartnerSpec(COUNTY_COUNCIL, "Cambridgeshire County Council", Organisation.Kind.LOCAL_AUTHORITY),
    PartnerSpec(PETERBOROUGH_COUNCIL, "Peterborough City Council", Organisation.Kind.LOCAL_AUTHORITY),
    PartnerSpec(ICB, "NHS Cambridgeshire and Peterborough Integrated Care Board", Organisation.Kind.ICB),
)

_GP_SECTIONS = (
    Section.DEMOGRAPHICS,
    Section.GP_PRACTICE,
    Section.ALERTS,
    Section.LEGAL,
    Section.PROBLEMS,
    Section.ALLERGIES,
    Section.MEDICATIONS,
    Section.INVESTIGATIONS,
    Section.VACCINATIONS,
    Section.REFERRALS,
    Section.ASSESSMENTS,
    Section.SOCIAL_CONTEXT,
    Section.PROFESSIONAL_CONTACTS,
)
_ACUTE_SECTIONS = (
    Section.PROCEDURES,
    Section.INVESTIGATIONS,
    Section.ENCOUNTERS,
    Section.REFERRALS,
    Section.DOCUMENTS,
)
_SOCIAL_CARE_SECTIONS = (
    Section.SAFEGUARDING,
    Section.ENCOUNTERS,
    Section.PLANS,
    Section.ASSESSMENTS,
    Section.SOCIAL_CONTEXT,
    Section.PROFESSIONAL_CONTACTS,
)


CASELOAD_FEED = "county-caseload"
CASELOAD_COLUMNS = (
    "NHS Number",
    "Record Type",
    "Case Ref",
    "Start Date",
    "End Date",
    "Status",
    "Team",
    "Team Name",
)
CASELOAD_MAPPING: Mapping[str, Any] = {
    "nhs_number": "NHS Number",
    "record_type": "Record Type",
    "record_id": "Case Ref",
    "date": "Start Date",
    "date_format": "%d/%m/%Y",
    "end_date": "End Date",
    "status": "Status",
    "team_code": "Team",
    "team_name": "Team Name",
    "types": {"caseload": "EpisodeOfCare"},
}


def gp_feed_code(ods_code: str) -> str:
    return f"gp-{ods_code.lower()}"


FEEDS: tuple[FeedSpec, ...] = (
    *(
        FeedSpec(
            gp_feed_code(practice.ods_code),
            practice.ods_code,
            "GP record",
            _GP_SECTIONS,
            can_create_patients=True,
        )
        for practice in PRACTICES
    ),
    FeedSpec("cuh-epr", CUH, "Hospital electronic patient record", _ACUTE_SECTIONS),
    FeedSpec("nwa-epr", NORTH_WEST_ANGLIA, "Hospital electronic patient record", _ACUTE_SECTIONS),
    FeedSpec(
        "papworth-epr",
        ROYAL_PAPWORTH,
        "Hospital electronic patient record",
        (Section.PROCEDURES, Section.ENCOUNTERS, Section.DOCUMENTS),
    ),
    FeedSpec(
        "cpft-mh",
        CPFT,
        "Mental health record",
        (
            Section.LEGAL,
            Section.ENCOUNTERS,
            Section.PLANS,
            Section.ASSESSMENTS,
            Section.PROFESSIONAL_CONTACTS,
        ),
    ),
    FeedSpec(
        "ccs-community", COMMUNITY_SERVICES, "Community health record", (Section.ENCOUNTERS, Section.PLANS)
    ),
    FeedSpec(
        "eeast-epcr",
        AMBULANCE,
        "Electronic patient care record",
        (Section.INVESTIGATIONS, Section.ENCOUNTERS),
    ),
    FeedSpec("county-social-care", COUNTY_COUNCIL, "Adult social care record", _SOCIAL_CARE_SECTIONS),
    # The council's teams keep their caseloads in another system, which sends a nightly CSV extract.
    FeedSpec(
        CASELOAD_FEED,
        COUNTY_COUNCIL,
        "Adult social care caseload extract",
        (Section.ENCOUNTERS,),
        format=Feed.Format.CSV,
        csv_mapping=CASELOAD_MAPPING,
    ),
    # Peterborough is still onboarding: the partner and its dataset exist, nothing has been sent yet, and the
    # record page says so.
    FeedSpec(
        "peterborough-social-care",
        PETERBOROUGH_COUNCIL,
        "Adult social care record",
        _SOCIAL_CARE_SECTIONS,
        state=Feed.State.ONBOARDING,
    ),
)
FEEDS_BY_CODE = {feed.code: feed for feed in FEEDS}
LIVE_FEEDS: tuple[FeedSpec, ...] = tuple(feed for feed in FEEDS if feed.state == Feed.State.LIVE)

NORTH_TEAM = TeamSpec(COUNTY_COUNCIL, "CCC-ASC-NORTH", "Adult social care: north team", ("social.eli",))
TEAMS: tuple[TeamSpec, ...] = (NORTH_TEAM,)

# A demo user who lives with one of her own practice's patients (the third demo patient, her grandmother), so the scan
# of the access trail finds her opening a record with her surname at her address (consent.surveillance).
HOUSEHOLD_USER = "gp.ada"
HOUSEHOLD_FAMILY_NAME = "Whitfield"
HOUSEHOLD_PATIENT_INDEX = 2

USERS: tuple[UserSpec, ...] = (
    UserSpec(
        HOUSEHOLD_USER,
        "Ada",
        HOUSEHOLD_FAMILY_NAME,
        PRACTICE_A,
        JobRole.CLINICAL_PRACTITIONER,
        "GP, practice A",
    ),
    UserSpec("gp.ben", "Ben", "Okafor", PRACTICE_B, JobRole.CLINICAL_PRACTITIONER, "GP, practice B"),
    UserSpec(
        "ed.cara",
        "Cara",
        "Lindqvist",
        CUH,
        JobRole.CLINICAL_PRACTITIONER,
        "emergency department doctor, Cambridge University Hospitals",
    ),
    UserSpec(
        "reception.dan",
        "Dan",
        "Mercer",
        PRACTICE_A,
        JobRole.ADMIN_CLINICAL_SUPPORT,
        "receptionist, practice A (demographics only)",
    ),
    UserSpec(
        "social.eli",
        "Eli",
        "Harrow",
        COUNTY_COUNCIL,
        JobRole.SOCIAL_CARE_PRACTITIONER,
        "social worker, Cambridgeshire County Council",
    ),
    UserSpec(
        "privacy.fay",
        "Fay",
        "Castell",
        ICB,
        JobRole.PRIVACY_OFFICER,
        "privacy officer and IG team, the ICB",
        ig_team=True,
    ),
    UserSpec(
        "mh.ivy",
        "Ivy",
        "Achterberg",
        CPFT,
        JobRole.CLINICAL_PRACTITIONER,
        "psychiatrist at CPFT, also liaison sessions at Cambridge University Hospitals (chooses a role at login)",
        also=((CUH, JobRole.CLINICAL_PRACTITIONER),),
    ),
    UserSpec(
        "admin.gus",
        "Gus",
        "Pemberton",
        None,
        None,
        "back-office administrator (Django admin at /admin/)",
        is_superuser=True,
    ),
    UserSpec(
        "ra.rita",
        "Rita",
        "Okonkwo",
        None,
        None,
        "registration authority: grants role profiles, care teams and passwords (Django admin at /admin/)",
        registration_authority=True,
    ),
)

PARTNER_NAMES: dict[str, str] = {partner.ods_code: partner.name for partner in PARTNERS}
PRACTICES_BY_CODE: dict[str, PartnerSpec] = {practice.ods_code: practice for practice in PRACTICES}
