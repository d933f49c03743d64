"""The raw-SQL floor of a record open: the same rows read by plain psycopg SELECTs, one audit row appended, committed.

Per open, in one transaction on a connection of its own per concurrent reader: the patient and their practice by
public id; the reader's current relationship with them; the count of entries shown per section; the first page
of each section (the newest `RECORD_PAGE_SIZE`, sensitive and entered-in-error ones left out), with the partner's
name; then the audit chain's lock, its head, and one `view-record` event inserted with its hash, as
`audit.services.access_event_record` writes it (the chain stays whole: `audit_verify` passes after the floor).
No ORM, no template, no HTTP: what PostgreSQL and a Python client must do at least for the same page.

Readers are threads (psycopg releases the GIL while it waits on the server), each in a closed loop like a locust
user, for a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from audit.models import AccessEvent
from records.bench.population import _canonical
from sharedcare.advisory_locks import AUDIT_CHAIN_KEY, AUDIT_CHAIN_LOCK_SQL

_PATIENT = (
    "SELECT p.id, p.nhs_number, p.given_name, p.family_name, p.birth_date, p.sex, p.address, p.postcode, p.phone, "
    "p.is_restricted, o.name, o.ods_code FROM records_patient p "
    "LEFT JOIN records_organisation o ON o.id = p.registered_practice_id WHERE p.public_id = %s"
)
_RELATIONSHIP = (
    "SELECT id, basis FROM consent_legitimaterelationship WHERE content_object_id = %s AND group_id = %s "
    "AND valid_from <= now() AND (valid_until IS NULL OR valid_until > now()) ORDER BY id LIMIT 1"
)
_COUNTS = (
    "SELECT section, count(*) FROM records_recordentry WHERE patient_id = %s "
    "AND NOT is_entered_in_error AND NOT is_deleted_at_source AND NOT is_sensitive GROUP BY section"
)
_PAGES = (
    "SELECT * FROM (SELECT e.section, e.resource_type, e.summary, e.status, e.effective_at, o.name, o.ods_code, "
    "row_number() OVER (PARTITION BY e.section ORDER BY e.effective_at DESC NULLS LAST, e.id DESC) AS position "
    "FROM records_recordentry e JOIN records_organisation o ON o.id = e.organisation_id "
    "WHERE e.patient_id = %s AND NOT e.is_entered_in_error AND NOT e.is_deleted_at_source AND NOT e.is_sensitive"
    ") ranked WHERE position <= %s ORDER BY section, position"
)
_HEAD = "SELECT hash FROM audit_accessevent ORDER BY id DESC LIMIT 1"
_EVENT_COLUMNS = (
    "occurred_at",
    "user_id",
    "username",
    "job_role",
    "organisation_ods",
    "patient_id",
    "query",
    "action",
    "purpose",
    "basis",
    "reason",
    "sections_shown",
    "partners_shown",
    "withheld",
    "outcome",
    "request_id",
    "client_address",
    "previous_hash",
    "hash",
)
# Column names from the tuple above, never input.
_INSERT = (
    f"INSERT INTO audit_accessevent ({', '.join(_EVENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_EVENT_COLUMNS))})"
)


@dataclass(frozen=True)
class FloorResult:
    users: int
    seconds: float
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float


def record_open_floor(
    connection: psycopg.Connection[Any],
    public_id: str,
    *,
    group_id: int,
    ods: str,
    page_size: int,
    number: int,
) -> int:
    """One record open at the floor; the number of entry rows read."""
    with connection.transaction():
        patient = connection.execute(_PATIENT, [public_id]).fetchone()
        if patient is None:
            raise RuntimeError("a bench patient is missing")
        relationship = connection.execute(_RELATIONSHIP, [patient[0], group_id]).fetchone()
        if relationship is None:
            raise RuntimeError("the bench reader has no relationship with the patient")
        counts = connection.execute(_COUNTS, [patient[0]]).fetchall()
        entries = connection.execute(_PAGES, [patient[0], page_size]).fetchall()
        connection.execute(AUDIT_CHAIN_LOCK_SQL, [AUDIT_CHAIN_KEY])
        head = connection.execute(_HEAD).fetchone()
        row: dict[str, Any] = {
            "occurred_at": datetime.now(UTC),
            "user_id": None,
            "username": "bench.floor",
            "job_role": "R8000",
            "organisation_ods": ods,
            "patient_id": patient[0],
            "query": "",
            "action": AccessEvent.Action.VIEW_RECORD.value,
            "purpose": AccessEvent.Purpose.DIRECT_CARE.value,
            "basis": f"{relationship[1]}:{ods} relationship {relationship[0]}",
            "reason": "",
            "sections_shown": sorted(
                ["person-demographics", "gp-practice", *(str(section) for section, _ in counts)]
            ),
            "partners_shown": sorted({str(entry[6]) for entry in entries}),
            "withheld": "",
            "outcome": AccessEvent.Outcome.ALLOWED.value,
            "request_id": f"floor-{number}",
            "client_address": "127.0.0.1",
            "previous_hash": head[0] if head else "0" * 64,
        }
        row["hash"] = hashlib.sha256(row["previous_hash"].encode() + _canonical(row)).hexdigest()
        connection.execute(_INSERT, [row[column] for column in _EVENT_COLUMNS])
    return len(entries)


def floor_run(
    conninfo: str, readers: list[tuple[list[str], int, str]], *, users: int, seconds: float, page_size: int
) -> FloorResult:
    """`users` threads, each a closed loop of record opens at the floor for `seconds`; their latencies.

    `readers` are (patients, group id, ODS code) as the bench's clinicians hold them; thread n reads as reader n."""
    latencies: list[list[float]] = [[] for _ in range(users)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(users + 1)
    go = threading.Event()
    deadline = [0.0]

    def reader(number: int) -> None:
        patients, group_id, ods = readers[number % len(readers)]
        try:
            with psycopg.connect(conninfo, autocommit=True) as connection:
                barrier.wait()
                go.wait()
                turn = 0
                while time.perf_counter() < deadline[0]:
                    public_id = patients[(number * 7919 + turn) % len(patients)]
                    started = time.perf_counter()
                    record_open_floor(
                        connection, public_id, group_id=group_id, ods=ods, page_size=page_size, number=turn
                    )
                    latencies[number].append(time.perf_counter() - started)
                    turn += 1
        except BaseException as error:
            errors.append(error)
            barrier.abort()
            go.set()

    threads = [threading.Thread(target=reader, args=(number,)) for number in range(users)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    started = time.perf_counter()
    deadline[0] = started + seconds
    go.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    flat = sorted(value * 1000 for values in latencies for value in values)
    if not flat:
        raise RuntimeError("the floor made no request")

    def percentile(share: float) -> float:
        return flat[min(len(flat) - 1, int(share * len(flat)))]

    return FloorResult(
        users=users,
        seconds=elapsed,
        requests=len(flat),
        p50_ms=percentile(0.50),
        p95_ms=percentile(0.95),
        p99_ms=percentile(0.99),
        mean_ms=statistics.fmean(flat),
        throughput=len(flat) / elapsed,
    )
