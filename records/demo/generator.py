"""Invented patients and the FHIR R4 bundles each partner would send about them.

Deterministic: the same seed, patient count and reference day give byte-identical files. Dates are relative to the
reference day (the load day, normally), so a demo loaded today has encounters from last week and open episodes,
and the relationships derived from them are current.

Two patients are fixed because the demo script and the tests name them: 9990000018 (practice A; GP, Cambridge
University Hospitals with an emergency attendance three days before the reference day, and an open CPFT episode
with a care plan) and 9990000026 (practice B; GP and CPFT only). The next few are "showcase" patients with every
optional item their partners can send, so even a small demo covers every section of the record. Four more show one
thing each (`resources.Story`): a patient on the county council's north team caseload, sent in the council's caseload
CSV extract (9990000077); one referred by the GP to the mental-health trust, who hold nothing else (9990000085); one
with sexually transmitted infections recorded by the GP and by the acute trust (9990000093); and one whose GP marks
them restricted (9990000107).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import count
from pathlib import Path
from typing import Any

from records import nhs_number
from records.demo import codes
from records.demo.community import community_resources
from records.demo.gp import gp_resources
from records.demo.hospital import acute_resources, ambulance_resources, papworth_resources
from records.demo.mental_health import mental_health_resources
from records.demo.partners import (
    CASELOAD_COLUMNS,
    CASELOAD_FEED,
    CUH,
    HOUSEHOLD_FAMILY_NAME,
    HOUSEHOLD_PATIENT_INDEX,
    LIVE_FEEDS,
    NORTH_TEAM,
    NORTH_WEST_ANGLIA,
    PARTNER_NAMES,
    PRACTICE_A,
    PRACTICE_B,
    PRACTICE_C,
    PRACTICE_D,
    PRACTICES,
    PRACTICES_BY_CODE,
    FeedSpec,
    gp_feed_code,
)
from records.demo.people import (
    AREAS,
    FAMILY_NAMES,
    FEMALE_GIVEN_NAMES,
    LANDLINE_PREFIX,
    MALE_GIVEN_NAMES,
    MOBILE_PREFIX,
    POSTCODE_UNIT_LETTERS,
    STREET_NAMES,
    TITLES_FEMALE,
    TITLES_MALE,
)
from records.demo.resources import (
    DemoPatient,
    Resource,
    ResourceBuilder,
    Story,
    instant,
    local_midnight,
    stable_id,
)
from records.demo.social_care import social_care_resources
from records.models import Feed

DEFAULT_PATIENTS = 240
DEFAULT_SEED = 20261121
BATCH_SIZE = 50
FIXED_NHS_NUMBERS = ("9990000018", "9990000026")

_HOSPITAL_BY_AREA = {
    "cambridge": CUH,
    "east-cambridgeshire": CUH,
    "fenland": NORTH_WEST_ANGLIA,
    "peterborough": NORTH_WEST_ANGLIA,
    "huntingdonshire": NORTH_WEST_ANGLIA,
}
_HOSPITAL_FEEDS = {CUH: "cuh-epr", NORTH_WEST_ANGLIA: "nwa-epr"}
# Peterborough City Council has not joined yet, so its residents have no social-care data here.
_COUNTY_AREAS = frozenset({"cambridge", "east-cambridgeshire", "fenland", "huntingdonshire"})
_FEED_ORDER = {feed.code: position for position, feed in enumerate(LIVE_FEEDS)}
_AGE_BANDS: tuple[tuple[int, int], ...] = ((0, 17), (18, 39), (40, 64), (65, 79), (80, 96))
_AGE_WEIGHTS = (18, 26, 30, 16, 10)

Builder = Callable[[ResourceBuilder], None]
_BUILDERS: dict[str, Builder] = {
    "cuh-epr": acute_resources,
    "nwa-epr": acute_resources,
    "papworth-epr": papworth_resources,
    "cpft-mh": mental_health_resources,
    "ccs-community": community_resources,
    "eeast-epcr": ambulance_resources,
    "county-social-care": social_care_resources,
}


@dataclass(frozen=True)
class _Fixed:
    practice: str
    gender: str
    age: int
    problems: tuple[str, ...]
    feeds: tuple[str, ...]
    given_name: str = ""
    family_name: str = ""
    birth_date: date | None = None
    story: str = ""


_FIXED: dict[int, _Fixed] = {
    0: _Fixed(
        PRACTICE_A,
        "female",
        76,
        ("t2dm", "hypertension", "depression"),
        ("cuh-epr", "cpft-mh"),
        "Alice",
        "Ashby",
        date(1950, 3, 14),
    ),
    1: _Fixed(
        PRACTICE_B, "male", 64, ("asthma", "bipolar"), ("cpft-mh",), "Brian", "Barton", date(1962, 7, 1)
    ),
    HOUSEHOLD_PATIENT_INDEX: _Fixed(
        PRACTICE_A,
        "female",
        86,
        ("dementia", "osteoarthritis", "af"),
        ("cuh-epr", "ccs-community", "eeast-epcr", "county-social-care"),
        family_name=HOUSEHOLD_FAMILY_NAME,
    ),
    3: _Fixed(PRACTICE_C, "male", 71, ("copd", "hypertension"), ("nwa-epr", "papworth-epr", "eeast-epcr")),
    4: _Fixed(
        PRACTICE_D,
        "male",
        68,
        ("chd", "heart-failure", "t2dm", "ckd"),
        ("nwa-epr", "papworth-epr", "county-social-care"),
    ),
    5: _Fixed(PRACTICE_B, "female", 2, (), ("nwa-epr", "ccs-community")),
    6: _Fixed(PRACTICE_A, "female", 83, ("osteoarthritis",), (), story=Story.TEAM_CASELOAD),
    7: _Fixed(PRACTICE_B, "male", 34, ("gord",), (), story=Story.REFERRAL_TO_MENTAL_HEALTH),
    8: _Fixed(PRACTICE_A, "female", 29, (), ("cuh-epr",), story=Story.SENSITIVE_FROM_TWO_SOURCES),
    9: _Fixed(PRACTICE_A, "male", 41, ("migraine",), (), story=Story.RESTRICTED),
}


def demo_nhs_numbers(total: int) -> list[str]:
    """The fixed numbers first, then valid numbers counting up through the 999 range (never issued to people)."""
    numbers = list(FIXED_NHS_NUMBERS[:total])
    for serial in count(3):
        if len(numbers) >= total:
            break
        first_nine = f"999{serial:06d}"
        check = nhs_number.check_digit(first_nine)
        if check is None:
            continue
        numbers.append(f"{first_nine}{check}")
    return numbers


def _problems(rng: random.Random, age: int) -> tuple[str, ...]:
    chosen = []
    for problem in codes.PROBLEMS:
        weight = problem.weight * (1.6 if age >= 65 else 1.0)
        if age >= problem.min_age and rng.random() < weight:
            chosen.append(problem.key)
    return tuple(chosen[:4])


def _partner_feeds(
    rng: random.Random, age: int, problems: tuple[str, ...], area: str, hospital: str
) -> set[str]:
    present = set(problems)
    feeds = set()
    if rng.random() < 0.3 + (0.25 if age >= 65 else 0.0):
        feeds.add(_HOSPITAL_FEEDS[hospital])
    if present & {"chd", "heart-failure", "af", "copd"} and rng.random() < 0.5:
        feeds.add("papworth-epr")
    mental_chance = 0.0
    if present & {"schizophrenia", "bipolar"}:
        mental_chance = 1.0
    elif present & {"depression", "anxiety", "dementia"}:
        mental_chance = 0.45
    if rng.random() < mental_chance:
        feeds.add("cpft-mh")
    community_chance = 0.3 if age < 18 or "osteoarthritis" in present else 0.2 if age >= 75 else 0.0
    if rng.random() < community_chance:
        feeds.add("ccs-community")
    if rng.random() < 0.06 + (0.15 if age >= 75 else 0.0):
        feeds.add("eeast-epcr")
    social_chance = 0.0
    if area in _COUNTY_AREAS and age >= 18:
        frail = bool(present & {"dementia", "osteoporosis", "stroke"}) or age >= 80
        social_chance = 0.5 if frail else 0.3 if present & {"schizophrenia", "bipolar"} else 0.03
    if rng.random() < social_chance:
        feeds.add("county-social-care")
    return feeds


def _demo_patient(index: int, number: str, seed: int, reference: date) -> DemoPatient:
    rng = random.Random(f"sharedcare-demo:{seed}:{number}")  # noqa: S311 - demo data, not security
    fixed = _FIXED.get(index)
    if fixed is None:
        practice = rng.choices(PRACTICES, weights=(30, 25, 25, 20))[0].ods_code
        gender = rng.choice(("female", "male"))
        low, high = rng.choices(_AGE_BANDS, weights=_AGE_WEIGHTS)[0]
        age = rng.randint(low, high)
    else:
        practice, gender, age = fixed.practice, fixed.gender, fixed.age
    birth_date = date(reference.year - age, rng.randint(1, 12), rng.randint(1, 28))
    female = gender == "female"
    given_name = rng.choice(FEMALE_GIVEN_NAMES if female else MALE_GIVEN_NAMES)
    family_name = rng.choice(FAMILY_NAMES)
    area = rng.choice(PRACTICES_BY_CODE[practice].areas)
    town, district = rng.choice(AREAS[area])
    postcode = f"{district} {rng.randint(1, 9)}{rng.choice(POSTCODE_UNIT_LETTERS)}{rng.choice(POSTCODE_UNIT_LETTERS)}"
    address_line = f"{rng.randint(1, 140)} {rng.choice(STREET_NAMES)}"
    prefix_choices = TITLES_FEMALE if female else TITLES_MALE
    prefix = rng.choice(prefix_choices) if age >= 18 else ""
    use_mobile = age >= 16 and rng.random() < 0.75
    phone = f"{MOBILE_PREFIX if use_mobile else LANDLINE_PREFIX}{rng.randint(0, 999):03d}"
    hospital = _HOSPITAL_BY_AREA[area]
    if fixed is None:
        problems = _problems(rng, age)
        feeds = _partner_feeds(rng, age, problems, area, hospital)
    else:
        problems, feeds = fixed.problems, set(fixed.feeds)
        given_name = fixed.given_name or given_name
        family_name = fixed.family_name or family_name
        birth_date = fixed.birth_date or birth_date
    return DemoPatient(
        index=index,
        nhs_number=number,
        prefix=prefix,
        given_name=given_name,
        family_name=family_name,
        gender=gender,
        birth_date=birth_date,
        address_line=address_line,
        town=town,
        postcode=postcode,
        phone=phone,
        practice=practice,
        local_hospital=hospital,
        problems=problems,
        feeds=tuple(sorted(feeds, key=_FEED_ORDER.__getitem__)),
        showcase=fixed is not None,
        story=fixed.story if fixed is not None else "",
    )


def demo_patients(total: int, seed: int, reference: date) -> list[DemoPatient]:
    """`total` invented patients; patient n is the same whatever the total, so a smaller demo is a prefix."""
    return [
        _demo_patient(index, number, seed, reference) for index, number in enumerate(demo_nhs_numbers(total))
    ]


def _carries(feed: FeedSpec, patient: DemoPatient) -> bool:
    if feed.can_create_patients:
        return gp_feed_code(patient.practice) == feed.code
    return feed.code in patient.feeds


def demo_bundles(patients: list[DemoPatient], seed: int, reference: date) -> dict[str, list[Resource]]:
    """Per live feed, its bundles (type collection), each covering up to BATCH_SIZE patients."""
    stamp = instant(local_midnight(reference))
    bundles: dict[str, list[Resource]] = {}
    for feed in LIVE_FEEDS:
        if feed.format != Feed.Format.FHIR:
            continue
        build = gp_resources if feed.can_create_patients else _BUILDERS[feed.code]
        members = [patient for patient in patients if _carries(feed, patient)]
        feed_bundles: list[Resource] = []
        for start in range(0, len(members), BATCH_SIZE):
            entries: list[dict[str, Any]] = []
            for patient in members[start : start + BATCH_SIZE]:
                builder = ResourceBuilder(feed, PARTNER_NAMES[feed.ods_code], patient, reference, seed)
                build(builder)
                entries.extend(builder.entries)
            number = len(feed_bundles) + 1
            feed_bundles.append(
                {
                    "resourceType": "Bundle",
                    "id": stable_id(feed.code, "bundle", f"{number:03d}"),
                    "meta": {"lastUpdated": stamp},
                    "type": "collection",
                    "timestamp": stamp,
                    "entry": entries,
                }
            )
        bundles[feed.code] = feed_bundles
    return bundles


def caseload_extract(patients: list[DemoPatient], reference: date) -> bytes:
    """The council's caseload extract (CSV, as `partners.CASELOAD_MAPPING` reads it): one open case per patient on
    the north team's caseload; empty of rows when no such patient is in this demo."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CASELOAD_COLUMNS)
    for patient in patients:
        if patient.story != Story.TEAM_CASELOAD:
            continue
        started = reference - timedelta(days=45)
        writer.writerow(
            [
                patient.nhs_number,
                "caseload",
                f"ASC-{patient.nhs_number}",
                started.strftime("%d/%m/%Y"),
                "",
                "Open",
                NORTH_TEAM.code,
                NORTH_TEAM.name,
            ]
        )
    return out.getvalue().encode("utf-8")


@dataclass(frozen=True)
class WrittenFeed:
    paths: list[Path]
    resources: int


def write_demo_bundles(
    out: Path, *, patients: int = DEFAULT_PATIENTS, seed: int = DEFAULT_SEED, reference: date
) -> dict[str, WrittenFeed]:
    """Write `<out>/<feed-code>/<feed-code>-NNN.json` for every live FHIR feed, and the council's caseload extract
    as `<out>/county-caseload/county-caseload-001.csv`; say, per feed, what was written.

    Bundles an earlier, bigger run left behind in those folders are removed first, so loading a folder loads
    exactly this run. A feed with no patients in this run gets an empty folder.
    """
    written: dict[str, WrittenFeed] = {}
    people = demo_patients(patients, seed, reference)
    for feed_code, feed_bundles in demo_bundles(people, seed, reference).items():
        folder = out / feed_code
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{feed_code}-[0-9][0-9][0-9].json"):
            stale.unlink()
        paths = []
        for number, bundle in enumerate(feed_bundles, start=1):
            path = folder / f"{feed_code}-{number:03d}.json"
            path.write_bytes((json.dumps(bundle, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
            paths.append(path)
        resources = sum(len(bundle["entry"]) for bundle in feed_bundles)
        written[feed_code] = WrittenFeed(paths=paths, resources=resources)
    folder = out / CASELOAD_FEED
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{CASELOAD_FEED}-001.csv"
    extract = caseload_extract(people, reference)
    rows = extract.count(b"\r\n") - 1
    if rows:
        path.write_bytes(extract)
    else:
        path.unlink(missing_ok=True)
    written[CASELOAD_FEED] = WrittenFeed(paths=[path] if rows else [], resources=rows)
    return written
