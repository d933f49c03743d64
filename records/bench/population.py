"""A population at ICS scale for the read benchmark, written with PostgreSQL COPY (psycopg 3) in minutes.

What it writes, on a migrated (scratch) database; Django must be set up before this is imported:
- partners: an ICB, six trusts, two councils and one GP practice per 10,000 patients (at least five), each with the
  group its staff and its relationships hang on, made by `records.services.organisation_upsert` as the back office
  makes them; one feed per partner (two per trust) and one succeeded ingest run per feed, which the entries name;
- patients with valid NHS numbers (`records.nhs_number.check_digit`) from the 999 range, then the 998 range once
  the 999 range's ~909,000 valid numbers are used (both are ranges never issued to people), each registered at one
  practice;
- legitimate relationships as the feeds derive them: every patient's registered practice (open-ended), and one in
  three a care event at the acute trust; django-guardian object permissions on `Patient` for the partners' groups,
  the very rows `consent.policy.decide` reads;
- record entries: about 10 per patient on average, spread over the clinical sections, with a tail: one patient in
  100 has about 250 entries and one in 10,000 about 2,000 (at least one of each kind at every scale);
- optionally, access events: a real hash chain, each row's hash computed as `audit.services.event_hash` computes it
  (the same canonical form, `_canonical`), oldest first over the last eight years, so `audit_verify` checks them
  and the application's next event links to the last of them.

Growth is by adding: `grow(to=N)` adds the patients (and their entries and events) between what is there and N, so
10k, 100k and 1M are measured on one database as it grows. The generator is seeded; the same sizes give the same data.
A population kept in its own database (`records.bench.read --keep NAME`) is read back by `population_load` and grown
or measured again; how each part of it was built is noted in the table `bench_population_build` (`build_note`).
Every COPY prints its progress every `PROGRESS_EVERY` rows, so an hour's build can be followed in its log.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.models import Permission
from django.db import connection

from audit.models import AccessDayCount, AccessEvent
from audit.services import GENESIS_HASH
from consent.models import LegitimateRelationship
from records import nhs_number
from records.models import Feed, IngestRun, Organisation, Patient, RecordEntry
from records.models.patients import ACCESS_RECORD_PERMISSION
from records.sections import CLINICAL_SECTIONS, Section
from records.services import feed_upsert, organisation_upsert

PATIENTS_PER_PRACTICE = 10_000
MINIMUM_PRACTICES = 5
ACUTE_TRUST = "RGT"
# One patient in DEEP_EVERY has about DEEP_ENTRIES entries; one in DEEPEST_EVERY about DEEPEST_ENTRIES.
DEEP_EVERY, DEEP_ENTRIES = 100, 250
DEEPEST_EVERY, DEEPEST_ENTRIES = 10_000, 2_000
# The mean of the rest, so that the whole population averages about 10 entries a patient.
TYPICAL_MEAN = 7.3
AUDIT_YEARS = 8
_SEED = 14
PROGRESS_EVERY = 1_000_000
BUILD_TABLE = "bench_population_build"

_TRUSTS = (
    ("RGT", "Cambridge University Hospitals (bench)", Organisation.Kind.ACUTE_TRUST),
    ("RGM", "Royal Papworth Hospital (bench)", Organisation.Kind.ACUTE_TRUST),
    ("RGN", "North West Anglia (bench)", Organisation.Kind.ACUTE_TRUST),
    ("RT1", "Cambridgeshire and Peterborough FT (bench)", Organisation.Kind.MENTAL_HEALTH_TRUST),
    ("RYV", "Cambridgeshire Community Services (bench)", Organisation.Kind.COMMUNITY_TRUST),
    ("RYC", "East of England Ambulance Service (bench)", Organisation.Kind.AMBULANCE_TRUST),
    ("QUE", "Cambridgeshire and Peterborough ICB (bench)", Organisation.Kind.ICB),
    ("CC001", "Cambridgeshire County Council (bench)", Organisation.Kind.LOCAL_AUTHORITY),
    ("PC001", "Peterborough City Council (bench)", Organisation.Kind.LOCAL_AUTHORITY),
)

# Sections and how often an entry falls in each, with the resource type a feed would send for it.
_SECTIONS: tuple[tuple[Section, str, int], ...] = (
    (Section.INVESTIGATIONS, "Observation", 30),
    (Section.MEDICATIONS, "MedicationStatement", 18),
    (Section.ENCOUNTERS, "Encounter", 14),
    (Section.PROBLEMS, "Condition", 10),
    (Section.PROCEDURES, "Procedure", 5),
    (Section.VACCINATIONS, "Immunization", 5),
    (Section.DOCUMENTS, "DocumentReference", 4),
    (Section.REFERRALS, "ServiceRequest", 3),
    (Section.ALLERGIES, "AllergyIntolerance", 3),
    (Section.ASSESSMENTS, "Observation", 2),
    (Section.ALERTS, "Flag", 1),
    (Section.PLANS, "CarePlan", 1),
    (Section.SOCIAL_CONTEXT, "Observation", 1),
    (Section.PROFESSIONAL_CONTACTS, "CareTeam", 1),
    (Section.SAFEGUARDING, "Flag", 1),
    (Section.LEGAL, "Consent", 1),
)
if {section for section, _, _ in _SECTIONS} != set(CLINICAL_SECTIONS):
    raise RuntimeError("the bench's sections must be the clinical sections")
_GIVEN = ("Ada", "Ben", "Cara", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivy", "Jon", "Kai", "Lena", "Mo", "Nia")
_FAMILY = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Wright")


@dataclass
class Population:
    """What the database holds: its partners and feeds, and how far the patients, entries and events go."""

    practices: list[Organisation]
    feeds: dict[str, Feed]
    runs: dict[str, int]
    patients: int = 0
    entries: int = 0
    relationships: int = 0
    events: int = 0
    # The last event's hash and the time of the newest event written, so the chain goes on from them.
    chain_head: str = GENESIS_HASH
    seconds: dict[str, float] = field(default_factory=dict)


def practice_code(number: int) -> str:
    return f"B{number:05d}"


def practices_for(patients: int) -> int:
    return max(MINIMUM_PRACTICES, -(-patients // PATIENTS_PER_PRACTICE))


def bench_nhs_numbers() -> Iterator[str]:
    """Valid NHS numbers, in order: the 999 range first, then 998, 997 (never issued to people)."""
    for prefix in ("999", "998", "997"):
        for serial in range(1_000_000):
            first_nine = f"{prefix}{serial:06d}"
            check = nhs_number.check_digit(first_nine)
            if check is not None and first_nine + str(check) != "0000000000":
                yield f"{first_nine}{check}"


def partners_create(practices: int) -> Population:
    """The partners, their feeds and one succeeded ingest run per feed (ORM: a few hundred rows at most)."""
    feeds: dict[str, Feed] = {}
    made: list[Organisation] = []
    for ods, name, kind in _TRUSTS:
        organisation = organisation_upsert(ods_code=ods, name=name, kind=kind)
        for number in (1, 2) if kind != Organisation.Kind.ICB else ():
            code = f"bench-{ods.lower()}-{number}"
            feeds[code] = feed_upsert(
                code=code, organisation=organisation, name=f"{name} feed {number}", sections=[]
            )
    population = Population(practices=made, feeds=feeds, runs={})
    practices_add(population, practices)
    return population


def practices_add(population: Population, practices: int) -> None:
    """Add GP practices (each with its feed and run) until there are `practices`."""
    for number in range(len(population.practices) + 1, practices + 1):
        organisation = organisation_upsert(
            ods_code=practice_code(number),
            name=f"Bench practice {number}",
            kind=Organisation.Kind.GP_PRACTICE,
            primary_care_network=f"Bench PCN {1 + number // 4}",
        )
        population.practices.append(organisation)
        code = f"bench-{organisation.ods_code.lower()}"
        population.feeds[code] = feed_upsert(
            code=code, organisation=organisation, name="GP record", sections=[], can_create_patients=True
        )
    now = datetime.now(UTC)
    for code, feed in population.feeds.items():
        if code not in population.runs:
            run = IngestRun.objects.create(
                feed=feed,
                trigger=IngestRun.Trigger.COMMAND,
                source_name="bench population (COPY)",
                status=IngestRun.Status.SUCCEEDED,
                finished_at=now,
            )
            population.runs[code] = run.pk
            Feed.objects.filter(pk=feed.pk).update(last_success_at=now, state=Feed.State.LIVE)


def _columns(model: Any) -> list[str]:
    return [str(field.column) for field in model._meta.concrete_fields if not field.primary_key]


def _copy(model: Any, rows: Iterator[dict[str, Any]]) -> int:
    """COPY `rows` (dicts by column; every column of the model but the id) into the model's table."""
    columns = _columns(model)
    names = ", ".join(columns)
    written = 0
    started = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {model._meta.db_table} ({names}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([row[column] for column in columns])
            written += 1
            if written % PROGRESS_EVERY == 0:
                seconds = time.perf_counter() - started
                print(
                    f"  {datetime.now(UTC):%H:%M:%S} {model._meta.db_table}: {written:,} rows in {seconds:.0f} s "
                    f"({written / seconds:,.0f} rows/s)",
                    flush=True,
                )
    return written


def _depth(index: int, rng: random.Random) -> int:
    if index % DEEPEST_EVERY == DEEPEST_EVERY // 2:
        return DEEPEST_ENTRIES + rng.randint(-50, 50)
    if index % DEEP_EVERY == DEEP_EVERY // 3:
        return DEEP_ENTRIES + rng.randint(-20, 20)
    return max(1, round(rng.expovariate(1 / TYPICAL_MEAN)))


def _ids_of_new_patients(first: int) -> list[tuple[int, int]]:
    """(patient id, registered practice id) of the patients from index `first` on (they were numbered in order)."""
    table = Patient._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, registered_practice_id FROM {table} ORDER BY id OFFSET %s",  # noqa: S608 - a table name
            [first],
        )
        return [(int(row[0]), int(row[1])) for row in cursor.fetchall()]


def grow(population: Population, *, to: int, audit_events_per_patient: float = 0.0) -> None:
    """Add patients (with relationships, entries and access events) until the population holds `to` of them."""
    if to <= population.patients:
        return
    practices_add(population, practices_for(to))
    first = population.patients
    rng = random.Random(f"{_SEED}:{first}:{to}")  # noqa: S311 - synthetic data, not secrets
    now = datetime.now(UTC)
    numbers = bench_nhs_numbers()
    for _ in range(first):
        next(numbers)
    practice_ids = [practice.pk for practice in population.practices]

    started = time.perf_counter()

    def patients() -> Iterator[dict[str, Any]]:
        for index in range(first, to):
            born = now.date() - timedelta(days=rng.randint(0, 100 * 365))
            yield {
                "public_id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "nhs_number": next(numbers),
                "given_name": rng.choice(_GIVEN),
                "family_name": rng.choice(_FAMILY),
                "birth_date": born,
                "sex": rng.choice(("female", "male")),
                "address": f"{index % 300 + 1} Bench Street, Cambridge",
                "postcode": f"CB{index % 9 + 1} {index % 9}AA",
                "phone": "",
                # Evenly over the practices, so each practice's list is about the same size.
                "registered_practice_id": practice_ids[index % len(practice_ids)],
                "merged_into_id": None,
                "death_date": None,
                "is_restricted": index % 997 == 0,
                "source_organisation_id": practice_ids[index % len(practice_ids)],
                "source_version": "1",
                "source_last_updated": now,
                "created_at": now,
                "updated_at": now,
            }

    population.patients += _copy(Patient, patients())
    population.seconds["patients"] = population.seconds.get("patients", 0.0) + time.perf_counter() - started
    new = _ids_of_new_patients(first)
    depths = [_depth(first + offset, rng) for offset in range(len(new))]
    _relationships_write(population, new, depths, now, rng)
    _entries_write(population, new, depths, now, rng)
    if audit_events_per_patient > 0:
        events_write(population, new, round(audit_events_per_patient * len(new)), rng)


def _relationships_write(
    population: Population, new: list[tuple[int, int]], depths: list[int], now: datetime, rng: random.Random
) -> None:
    started = time.perf_counter()
    permission_id = Permission.objects.get(
        codename=ACCESS_RECORD_PERMISSION, content_type__app_label="records"
    ).pk
    groups = dict(Organisation.objects.values_list("pk", "group_id"))
    acute = Organisation.objects.get(ods_code=ACUTE_TRUST)
    practice_feeds = {feed.organisation_id: code for code, feed in population.feeds.items()}
    since = now - timedelta(days=365 * 5)

    def rows() -> Iterator[dict[str, Any]]:
        for (patient_id, practice_id), depth in zip(new, depths, strict=True):
            code = practice_feeds[practice_id]
            base = {
                "permission_id": permission_id,
                "content_object_id": patient_id,
                "valid_from": since,
                "derived_at": now,
                "source_entry_id": None,
                "source_description": "bench population",
            }
            yield {
                **base,
                "group_id": groups[practice_id],
                "basis": LegitimateRelationship.Basis.REGISTERED_PRACTICE.value,
                "valid_until": None,
                "source_feed_id": population.feeds[code].pk,
                "source_run_id": population.runs[code],
            }
            # One in three has been at the acute trust lately; so has every deep record (the bench opens those
            # as an emergency department doctor there).
            if patient_id % 3 == 0 or depth >= DEEP_ENTRIES - 50:
                yield {
                    **base,
                    "group_id": groups[acute.pk],
                    "basis": LegitimateRelationship.Basis.CARE_EVENT.value,
                    "valid_until": now + timedelta(days=rng.randint(1, 365)),
                    "source_feed_id": population.feeds["bench-rgt-1"].pk,
                    "source_run_id": population.runs["bench-rgt-1"],
                }

    population.relationships += _copy(LegitimateRelationship, rows())
    population.seconds["relationships"] = (
        population.seconds.get("relationships", 0.0) + time.perf_counter() - started
    )


def _entries_write(
    population: Population, new: list[tuple[int, int]], depths: list[int], now: datetime, rng: random.Random
) -> None:
    started = time.perf_counter()
    acute = Organisation.objects.get(ods_code=ACUTE_TRUST)
    feed_of = {
        feed.organisation_id: (feed.pk, population.runs[code]) for code, feed in population.feeds.items()
    }
    weights = [weight for _, _, weight in _SECTIONS]
    ten_years = 10 * 365 * 24 * 3600

    def rows() -> Iterator[dict[str, Any]]:
        for (patient_id, practice_id), depth in zip(new, depths, strict=True):
            picks = rng.choices(_SECTIONS, weights=weights, k=depth)
            for number, (section, resource_type, _) in enumerate(picks):
                organisation_id = acute.pk if number % 4 == 3 else practice_id
                feed_id, run_id = feed_of[organisation_id]
                source_id = f"b{patient_id}-{number}"
                when = now - timedelta(seconds=rng.randrange(ten_years))
                display = f"{section.label} item {number}"
                yield {
                    "patient_id": patient_id,
                    "organisation_id": organisation_id,
                    "feed_id": feed_id,
                    "ingest_run_id": run_id,
                    "section": section.value,
                    "resource_type": resource_type,
                    "source_id": source_id,
                    "source_version": "1",
                    "source_last_updated": when,
                    "effective_at": when,
                    "effective_end": None,
                    "recorded_at": when,
                    "code_system": "http://snomed.info/sct",
                    "code": str(100000 + number),
                    "display": display,
                    "status": "final",
                    "summary": display,
                    "resource": json.dumps(
                        {
                            "resourceType": resource_type,
                            "id": source_id,
                            "status": "final",
                            "code": {"text": display},
                            "subject": {"reference": f"Patient/{patient_id}"},
                        }
                    ),
                    "content_hash": hashlib.sha256(source_id.encode()).hexdigest(),
                    "is_sensitive": number % 211 == 7,
                    "is_confidential": False,
                    "is_entered_in_error": number % 509 == 11,
                    "is_deleted_at_source": False,
                    "created_at": now,
                    "updated_at": now,
                }

    population.entries += _copy(RecordEntry, rows())
    population.seconds["entries"] = population.seconds.get("entries", 0.0) + time.perf_counter() - started


def _canonical(row: dict[str, Any]) -> bytes:
    """`audit.services._canonical` of the event this row is, from the row (the test checks they agree)."""
    fields = {
        "occurred_at": row["occurred_at"].isoformat(),
        "user_id": row["user_id"],
        "username": row["username"],
        "job_role": row["job_role"],
        "organisation_ods": row["organisation_ods"],
        "patient_id": row["patient_id"],
        "query": row["query"],
        "action": row["action"],
        "purpose": row["purpose"],
        "basis": row["basis"],
        "reason": row["reason"],
        "sections_shown": list(row["sections_shown"]),
        "partners_shown": list(row["partners_shown"]),
        "withheld": row["withheld"],
        "outcome": row["outcome"],
        "request_id": row["request_id"],
        "client_address": row["client_address"],
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def events_write(population: Population, new: list[tuple[int, int]], count: int, rng: random.Random) -> None:
    """Append `count` access events about the new patients to the chain, each hashed over the one before it.

    Their times go forward, from eight years ago to a minute ago, spread evenly; written after any event already
    there, so they must be older than none of them (the bench writes them before serving any request).
    """
    if count <= 0 or not new:
        return
    started = time.perf_counter()
    # Days' counts kept for the audit console hold only while no event is written into a day that is over; these are.
    AccessDayCount.objects.all().delete()
    table = AccessEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT hash, occurred_at FROM {table} ORDER BY id DESC LIMIT 1")  # noqa: S608 - a table name
        last = cursor.fetchone()
    now = datetime.now(UTC) - timedelta(minutes=1)
    begin = last[1] if last else now - timedelta(days=365 * AUDIT_YEARS)
    step = (now - begin) / count
    codes = dict(Organisation.objects.values_list("pk", "ods_code"))
    sections = sorted(section.value for section in CLINICAL_SECTIONS)
    previous = [last[0] if last else population.chain_head]

    def rows() -> Iterator[dict[str, Any]]:
        for number in range(count):
            patient_id, practice_id = new[rng.randrange(len(new))]
            ods = codes[practice_id]
            clinician = 1 + number % 50
            row = {
                "occurred_at": begin + step * (number + 1),
                "user_id": 1_000_000 + clinician,
                "username": f"bench.history{clinician}",
                "job_role": "R8000",
                "organisation_ods": ods,
                "patient_id": patient_id,
                "query": "",
                "action": AccessEvent.Action.VIEW_RECORD.value,
                "purpose": AccessEvent.Purpose.DIRECT_CARE.value,
                "basis": f"registered-practice:{ods} relationship",
                "reason": "",
                "sections_shown": ["gp-practice", "person-demographics", *sections],
                "partners_shown": sorted({ods, ACUTE_TRUST}),
                "withheld": "",
                "outcome": AccessEvent.Outcome.ALLOWED.value,
                "request_id": f"{number:032x}",
                "client_address": "127.0.0.1",
                "previous_hash": previous[0],
            }
            row["hash"] = hashlib.sha256(previous[0].encode() + _canonical(row)).hexdigest()
            previous[0] = row["hash"]
            yield row

    population.events += _copy(AccessEvent, rows())
    population.chain_head = previous[0]
    population.seconds["events"] = population.seconds.get("events", 0.0) + time.perf_counter() - started


def analyse() -> float:
    """VACUUM ANALYZE the tables the bench wrote, as autovacuum would in time; the seconds it took."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for model in (Patient, RecordEntry, LegitimateRelationship, AccessEvent):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return time.perf_counter() - started


def table_sizes() -> dict[str, int]:
    """Bytes on disk of each table the bench wrote, indexes included."""
    sizes = {}
    with connection.cursor() as cursor:
        for model in (Patient, RecordEntry, LegitimateRelationship, AccessEvent):
            cursor.execute("SELECT pg_total_relation_size(%s)", [model._meta.db_table])
            sizes[model._meta.db_table] = int(cursor.fetchone()[0])
    return sizes


def population_load() -> Population:
    """The population a kept database already holds (none: an empty one), read back so it can grow or be measured.

    Its practices in the order they were made (their codes count up), its feeds and the run each feed's rows name,
    and the counts of what it holds; events include those the application wrote while it was measured before."""
    practices = list(
        Organisation.objects.filter(
            kind=Organisation.Kind.GP_PRACTICE, ods_code__regex=r"^B[0-9]{5}$"
        ).order_by("ods_code")
    )
    feeds = {
        feed.code: feed
        for feed in Feed.objects.filter(code__startswith="bench-").select_related("organisation")
    }
    runs: dict[str, int] = {}
    for code, pk in (
        IngestRun.objects.filter(feed__code__in=feeds, source_name="bench population (COPY)")
        .order_by("pk")
        .values_list("feed__code", "pk")
    ):
        runs.setdefault(code, pk)
    population = Population(practices=practices, feeds=feeds, runs=runs)
    with connection.cursor() as cursor:
        for attribute, model in (
            ("patients", Patient),
            ("entries", RecordEntry),
            ("relationships", LegitimateRelationship),
            ("events", AccessEvent),
        ):
            # Exact counts (a few seconds on 10M rows), not the planner's estimate.
            cursor.execute(f"SELECT count(*) FROM {model._meta.db_table}")  # noqa: S608 - a table name
            setattr(population, attribute, int(cursor.fetchone()[0]))
    return population


def build_note(described: dict[str, Any]) -> None:
    """Note in the database how this part of the population was built (sizes, seconds, commit), for later runs."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {BUILD_TABLE} "
            "(id bigserial PRIMARY KEY, noted_at timestamptz NOT NULL DEFAULT now(), described jsonb NOT NULL)"
        )
        cursor.execute(
            f"INSERT INTO {BUILD_TABLE} (described) VALUES (%s)",  # noqa: S608 - a constant table name
            [json.dumps(described, default=str)],
        )


def build_notes() -> list[dict[str, Any]]:
    """How the population in this database was built, oldest part first (none for a scratch database)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [BUILD_TABLE])
        if cursor.fetchone()[0] is None:
            return []
        cursor.execute(f"SELECT noted_at, described FROM {BUILD_TABLE} ORDER BY id")  # noqa: S608 - a constant
        notes = []
        for noted_at, described in cursor.fetchall():
            fields = described if isinstance(described, dict) else json.loads(described)
            notes.append({"noted_at": noted_at.isoformat(timespec="seconds"), **fields})
        return notes
