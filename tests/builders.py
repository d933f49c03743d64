"""Builders every test file shares: users, runs and entries, FHIR resources as partners send them, pushes to the
partner API, the portal's URL list, and the records a run stores.

A plain module, not a test module: test files import from here and never from each other. Fixtures live in
`tests/conftest.py` with the cast.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect
from rest_framework.test import APIClient

import records.ingest.pipeline as pipeline
import records.ingest.validation_pool as validation_pool
from consent.mfa import mfa_enrolled, mfa_required
from consent.services import staff_profile_add, staff_profile_set
from records.ingest.pipeline import ingest_texts
from records.models import Feed, IngestRun, Organisation, Patient, QuarantinedRecord, RecordEntry
from records.sections import Section

NHS = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
PASSWORD = "correct-horse-battery-staple"
# What the tests hash passwords with: Argon2 is deliberately slow, and production hashing is tested apart.
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# What every account on the local NHS Care Identity provider signs in with there (tests/conftest.py `oidc_provider`).
OIDC_PASSWORD = "provider-password-for-tests"
# Valid NHS numbers that no patient of the cast holds.
NEWCOMER = "9449305552"
OTHER_NEWCOMER = "9690937316"
# What a social care practitioner should see of a record, written out here rather than read from consent.roles so
# that a change to the role table has to be made on purpose in both places.
SOCIAL_CARE_CLINICAL_SECTIONS = frozenset(
    {
        Section.ALERTS,
        Section.LEGAL,
        Section.SAFEGUARDING,
        Section.ALLERGIES,
        Section.PLANS,
        Section.REFERRALS,
        Section.ASSESSMENTS,
        Section.SOCIAL_CONTEXT,
        Section.PROFESSIONAL_CONTACTS,
    }
)
# How each portal view may touch a patient. A new portal URL fails the portal's URL walk until someone decides
# which of these it is (and, for "door", routes it through records.access).
PORTAL_URLS = {
    "records:home": "no patient data",
    "records:patient-search": "door",
    "records:patient-detail": "door",
    # A printout of the record page: the same decision, audited as an export that says print.
    "records:patient-print": "door",
    # One document of the record, and its PDF with ?format=pdf: each open audited as view-document
    # (tests/test_documents.py).
    "records:document-view": "door: records.access_documents.document_open_for_user",
    # The record's entries as one list of events: the record page's decision, audited as a view named timeline.
    "records:patient-timeline": "door: records.access_timeline.patient_timeline_open",
    "records:role-select": "no patient data",
    # Giving oneself access: the door's own grant functions, and only for a patient this session searched for and
    # was offered (tests/test_portal_grants.py).
    "records:patient-access": "offer: the NHS number this session typed, nothing read",
    "records:relationship-declare": "door: relationship_declare_for_user",
    "records:break-glass": "door: break_glass_for_user",
    "records:grant-end": "door: grant_end_for_user",
    # Privacy officers only (tests/test_alerts.py): the queue names no patient; an alert's page is an audited read.
    "records:alert-list": "door: alert_queue_for_user",
    "records:alert-detail": "door: alert_open_for_user",
    # The IG team only (tests/test_objection_workflow.py): a case names no patient; matching one is audited.
    "records:objection-list": "door: objection cases (names no patient)",
    "records:objection-new": "door: objection_enter_for_user (names no patient)",
    "records:objection-new-for-patient": "door: may_enter_objection_for, the patient's own practice, audited",
    "records:objection-detail": "door: objection case (the matched NHS number only)",
    "records:objection-identity-lookup": "door: match-patient, audited",
    "records:objection-identity-verify": "door: match-patient, audited",
    "records:objection-identity-not-found": "door: objection step (names no patient)",
    "records:objection-clinical-input": "door: objection step (names no patient)",
    "records:objection-decide": "door: objection step (names no patient)",
    "records:objection-inform": "door: objection step (names no patient)",
    "records:objection-letter": "door: the letter to the requester (their own details)",
    "records:objection-extend": "door: objection step (names no patient)",
    "records:objection-withdraw": "door: objection step (names no patient)",
    # The IG team only (tests/test_subject_access.py, tests/test_national_opt_out.py).
    "records:subject-access-list": "door: subject_access_register_for_user (names no patient)",
    "records:subject-access-new": "door: subject_access_enter_for_user (names no patient)",
    "records:subject-access-detail": "door: subject_access_open_for_user (names no patient)",
    "records:subject-access-verify": "door: subject_access_verify_for_user",
    "records:subject-access-extend": "door: subject_access_extend_for_user",
    "records:subject-access-fulfil": "door: subject_access_fulfil_for_user",
    "records:subject-access-report": "door: subject_access_report_for_user",
    "records:subject-access-withdraw": "door: subject_access_withdraw_for_user",
    "records:opt-out-list": "door: national_opt_outs_for_user",
    "records:opt-out-record": "door: national_opt_out_record_for_user",
    "records:opt-out-remove": "door: national_opt_out_remove_for_user",
    # Privacy officers only (tests/test_change_history_users.py): names no patient; reading it is audited.
    "records:change-history": "door: governance_changes_for_user (names no patient)",
    # Privacy officers only (tests/test_access_report.py): finding the patient and every reading are audited.
    "records:access-report": "door: access_report_find_for_user, the NHS number by POST",
    "records:access-report-patient": "door: access_report_for_user, read-audit",
    "records:access-report-pdf": "door: access_report_for_user, export",
    "records:access-report-csv": "door: access_report_for_user, export",
    # Privacy officers only (tests/test_audit_console.py): every read of the trail is audited through the door in
    # records.access_console; the NHS number is POSTed and kept in the session, the results named by a token.
    "records:audit-console": "door: audit_console_for_user, read-audit",
    "records:audit-events": "door: event_search_for_user, read-audit, the NHS number by POST",
    "records:audit-events-export": "door: event_search_export_for_user, export",
    "records:audit-user-timeline": "door: user_timeline_for_user, read-audit (names a user, not a patient)",
    # Privacy officers only (tests/test_sign_in_lockout.py): usernames and addresses, no patient; reading is audited.
    "records:sign-in-failures": "door: sign_in_failures_for_user (names no patient)",
}
_ids = count(1)


# People, runs and entries.


def make_user(
    username: str, organisation: Organisation | None = None, role: str | None = None, **extra: object
):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)
    if organisation is not None and role is not None:
        staff_profile_set(user_id=user.pk, organisation=organisation, job_role=role)
        user.refresh_from_db()
    return user


def add_role_profile(user, organisation: Organisation, role: str):
    """Give a user one more role profile, so they hold several and choose one at login."""
    staff_profile_add(user_id=user.pk, organisation=organisation, job_role=role)
    user.refresh_from_db()
    return user


def make_run(feed: Feed) -> IngestRun:
    return IngestRun.objects.create(feed=feed, status=IngestRun.Status.SUCCEEDED, finished_at=timezone.now())


def make_entry(
    patient: Patient,
    feed: Feed,
    section: str,
    display: str,
    *,
    resource_type: str = "Condition",
    effective_at: datetime | None = None,
    effective_end: datetime | None = None,
    status: str = "active",
    is_sensitive: bool = False,
    is_confidential: bool = False,
    is_entered_in_error: bool = False,
    run: IngestRun | None = None,
) -> RecordEntry:
    source_id = f"test-{next(_ids)}"
    resource = {"resourceType": resource_type, "id": source_id}
    return RecordEntry.objects.create(
        patient=patient,
        organisation=feed.organisation,
        feed=feed,
        ingest_run=run or make_run(feed),
        section=section,
        resource_type=resource_type,
        source_id=source_id,
        effective_at=effective_at or timezone.now() - timedelta(days=3),
        effective_end=effective_end,
        display=display,
        summary=display,
        status=status,
        resource=resource,
        content_hash=hashlib.sha256(json.dumps(resource).encode()).hexdigest(),
        is_sensitive=is_sensitive,
        is_confidential=is_confidential,
        is_entered_in_error=is_entered_in_error,
    )


def add_run(
    feed: Feed,
    started_at: datetime,
    *,
    seconds: float = 10,
    read: int = 100,
    quarantined: int = 0,
    status: str = IngestRun.Status.SUCCEEDED,
    trigger: str = IngestRun.Trigger.SCHEDULE,
) -> IngestRun:
    """A finished run of `feed` that started at `started_at`; a failed one read nothing and says why."""
    failed = status == IngestRun.Status.FAILED
    return IngestRun.objects.create(
        feed=feed,
        trigger=trigger,
        status=status,
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=seconds),
        resources_read=0 if failed else read,
        created=0 if failed else read - quarantined,
        quarantined=0 if failed else quarantined,
        error="ConnectionError: partner endpoint down" if failed else "",
    )


def newcomer(number: str = NEWCOMER) -> Patient:
    """A patient who arrives after the cast, with one of the NHS numbers no one held before."""
    return Patient.objects.create(nhs_number=number, given_name="Nia", family_name="Newcomer")


# FHIR resources as partners send them, and runs that ingest them.


def condition(resource_id: str, subject: Patient | str, display: str = "Asthma", **extra: object) -> dict:
    """An asthma Condition (or `display`) about a patient, or about whoever holds the NHS number `subject`."""
    number = subject if isinstance(subject, str) else subject.nhs_number
    return {
        "resourceType": "Condition",
        "id": resource_id,
        "code": {"coding": [{"system": SNOMED, "code": "195967001", "display": display}]},
        "subject": {"identifier": {"system": NHS, "value": number}},
        **extra,
    }


def invalid_condition(resource_id: str, subject: Patient | str) -> dict:
    # clinicalStatus is a CodeableConcept in FHIR R4; a bare string fails validation.
    return condition(resource_id, subject, clinicalStatus="active")


def ndjson(*resources: dict) -> bytes:
    return "\n".join(json.dumps(resource) for resource in resources).encode()


def bundle(*resources: dict) -> bytes:
    document = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    return json.dumps(document).encode()


def ingest(feed: Feed, *resources: dict, location: str = "batch.ndjson") -> IngestRun:
    return ingest_texts(feed, [(location, ndjson(*resources))])


# The partner push API.


def push_url(code: str) -> str:
    return reverse("api:batch-push", kwargs={"code": code})


def push(
    api: APIClient, code: str, body: bytes, key: str | None, content_type="application/fhir+json", **extra
):
    if key is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    # `generic`, not `post`: the body goes as it is, never re-encoded as a form, whatever the content type.
    return api.generic("POST", push_url(code), body, content_type=content_type, **extra)


def status_of(api: APIClient, url: str, key: str | None):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key is not None else {}
    return api.get(url, **extra)


# URLs.


def url_names(patterns, namespace: str = "") -> set[str]:
    """Every named URL under `patterns`, with its namespaces (`records:patient-detail`)."""
    found: set[str] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found |= url_names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            found.add(f"{namespace}{pattern.name}")
    return found


# What a run stores, for comparing the speed paths of a run with the plain one.


def mixed_input(cast) -> list[tuple[str, bytes]]:
    """Valid and invalid resources, an unsupported type, a bad line, and a Bundle, for patient A."""
    about = {"identifier": {"system": NHS, "value": cast.patient_a.nhs_number}}
    lines = [
        *(condition(f"c{n}", cast.patient_a, f"Problem {n}") for n in range(30)),
        {"resourceType": "Observation", "id": "no-status", "subject": about},
        {"resourceType": "Condition", "id": "bad-date", "subject": about, "onsetDateTime": "yesterday"},
        {"resourceType": "Claim", "id": "claim-1", "patient": about},
    ]
    text = "\n".join([*(json.dumps(line) for line in lines), "{not json"]).encode()
    document = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": condition(f"b{n}", cast.patient_a)} for n in range(5)],
    }
    return [("extract.ndjson", text), ("bundle.json", json.dumps(document).encode())]


def stored(run: IngestRun) -> list[tuple]:
    """The entries the run wrote, as comparable rows."""
    fields = ("resource_type", "source_id", "patient_id", "section", "code", "display", "status", "summary")
    rows = RecordEntry.objects.filter(ingest_run=run).values_list(
        *fields, "resource", "content_hash", "effective_at"
    )
    return sorted((*row[:-3], json.dumps(row[-3], sort_keys=True), *row[-2:]) for row in rows)


def quarantined(run: IngestRun) -> list[tuple]:
    """The records the run quarantined, as comparable rows."""
    fields = ("reason", "detail", "resource_type", "source_id", "location", "raw_payload", "payload_hash")
    return sorted(QuarantinedRecord.objects.filter(ingest_run=run).values_list(*fields))


def counts(run: IngestRun) -> tuple[int, ...]:
    """The run's counts: read, created, updated, unchanged, quarantined."""
    return (run.resources_read, run.created, run.updated, run.unchanged, run.quarantined)


def forget(run: IngestRun) -> tuple[list[tuple], list[tuple]]:
    """What the run stored and quarantined; then forget it, so that the same input is new again."""
    found = (stored(run), quarantined(run))
    RecordEntry.objects.filter(ingest_run=run).delete()
    QuarantinedRecord.objects.filter(ingest_run=run).delete()
    return found


def workers_for_every_run(settings, monkeypatch, *, run_claims: bool | None = False) -> None:
    """Validation in a worker process for every run, however small, with the run's own claims on pieces fixed:
    False, it never takes one, so that the worker (started after the run's first pass on input this small) gives
    every verdict; None, as if the lock over the pieces were lost (a worker killed holding it). A worker's claims
    follow the real rule."""
    settings.INGEST_VALIDATION_PROCESSES = 2
    monkeypatch.setattr(validation_pool, "VALIDATION_POOL_MIN_BYTES", 0)
    # A thread another test left behind (a test server) must not turn the workers off here.
    monkeypatch.setattr(validation_pool, "fork_refusal", lambda: "")
    # Whatever cores this machine has and other tests' runs hold.
    monkeypatch.setattr(pipeline, "validation_processes", lambda wanted, run: wanted)
    original_claim = validation_pool._claim

    def claim(claims, piece: int, taker: int) -> bool | None:
        return run_claims if taker == validation_pool._RUN else original_claim(claims, piece, taker)

    monkeypatch.setattr(validation_pool, "_claim", claim)


# Care context as partners send it: registrations, encounters, episodes and referrals.

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
ENCOUNTER_CLASS = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def about(subject: Patient | str) -> dict:
    """A reference to the patient by NHS number, as partners other than the GP send it."""
    number = subject if isinstance(subject, str) else subject.nhs_number
    return {"identifier": {"system": NHS, "value": number}}


def ods_reference(ods_code: str) -> dict:
    return {"identifier": {"system": ODS, "value": ods_code}}


def registration(resource_id: str, number: str, practice: str) -> dict:
    """A Patient resource registering the holder of NHS number `number` at practice `practice`."""
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [{"system": NHS, "value": number}],
        "name": [{"family": "Newcomer", "given": ["Nia"]}],
        "birthDate": "1980-02-03",
        "generalPractitioner": [ods_reference(practice)],
    }


def encounter(
    resource_id: str,
    subject: Patient | str,
    *,
    status: str = "finished",
    encounter_class: str = "EMER",
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict:
    """An encounter of class `encounter_class` (EMER, IMP, AMB...); finished encounters end when they start."""
    begun = start or timezone.now() - timedelta(days=2)
    period = {"start": begun.isoformat()}
    if end is not None:
        period["end"] = end.isoformat()
    return {
        "resourceType": "Encounter",
        "id": resource_id,
        "status": status,
        "class": {"system": ENCOUNTER_CLASS, "code": encounter_class},
        "subject": about(subject),
        "period": period,
    }


def episode_of_care(
    resource_id: str,
    subject: Patient | str,
    *,
    status: str = "active",
    team: dict | None = None,
    care_manager: dict | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict:
    """An episode of care, naming a team (a CareTeam reference) or a care manager when given."""
    period = {"start": (start or timezone.now() - timedelta(days=20)).isoformat()}
    if end is not None:
        period["end"] = end.isoformat()
    resource: dict = {
        "resourceType": "EpisodeOfCare",
        "id": resource_id,
        "status": status,
        "patient": about(subject),
        "period": period,
    }
    if team is not None:
        resource["team"] = [team]
    if care_manager is not None:
        resource["careManager"] = care_manager
    return resource


def referral(
    resource_id: str,
    subject: Patient | str,
    performer: list[dict],
    *,
    status: str = "active",
    **extra: object,
) -> dict:
    """A referral (ServiceRequest) to whoever `performer` names."""
    return {
        "resourceType": "ServiceRequest",
        "id": resource_id,
        "status": status,
        "intent": "order",
        "code": {"text": "Referral to community mental health team"},
        "subject": about(subject),
        "authoredOn": (timezone.now() - timedelta(days=1)).isoformat(),
        "performer": performer,
        **extra,
    }


# Coded concepts, as partners send them.


def coded_concept(system: str, code: str, display: str) -> dict:
    """A CodeableConcept with one coding."""
    return {"coding": [{"system": system, "code": code, "display": display}]}


def coded_condition(resource_id: str, subject: Patient | str, system: str, code: str, display: str) -> dict:
    """A Condition coded `code` of `system` about a patient (or whoever holds the NHS number `subject`)."""
    return condition(resource_id, subject, display, code=coded_concept(system, code, display))


# Browser tests.


def in_own_thread(work: Callable[[], None]) -> None:
    """Database work while Playwright's event loop runs in this thread (Django refuses synchronous queries there): done
    on a thread of its own, whose connection is closed when it ends. What `work` raises (a failed assertion above all)
    is raised again here, so the test fails with it."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:
            raised.append(error)
        finally:
            connections.close_all()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if raised:
        raise raised[0]


def authenticator_of(user) -> TOTPDevice:
    """The user's confirmed authenticator app, as enrolment leaves it: their own if they have one, else a new one."""
    device = TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def authenticator_code(key: bytes) -> str:
    """The code an authenticator app holding `key` shows now."""
    return f"{totp(key):06d}"


def _second_factor_key(username: str) -> bytes | None:
    """For a user who passes a second factor at sign-in: their authenticator's key (one is enrolled for them if
    they have none), with its last used step forgotten, as a test may sign one user in twice within one 30-second
    step and a real device takes each step's code once. None for anyone else."""
    keys: list[bytes] = []

    def work() -> None:
        user = get_user_model().objects.get(username=username)
        if mfa_required(user) or mfa_enrolled(user):
            device = authenticator_of(user)
            TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
            keys.append(device.bin_key)

    in_own_thread(work)
    return keys[0] if keys else None


def log_in(page: Page, base_url: str, username: str) -> None:
    """Sign in through the login page as one of the cast (all share `PASSWORD`) and land on the portal's home;
    a privacy officer or back-office user then enters their authenticator's current code on the real second-factor
    page, as they would."""
    key = _second_factor_key(username)
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    if key is not None:
        _second_factor_enter(page, key)
    expect(page.get_by_role("heading", level=1)).to_have_text("Shared care record")


def _second_factor_enter(page: Page, key: bytes) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your security code")
    page.get_by_label("Security code").fill(authenticator_code(key))
    page.get_by_role("button", name="Continue").click()


def second_factor_pass(page: Page, username: str) -> None:
    """Right after the password step on any sign-in page, for a user who must pass a second factor: go on from
    where they were held (enrolment, for a user with no authenticator yet) to the real verification page and enter
    their authenticator's current code; they land where they were going."""
    key = _second_factor_key(username)
    assert key is not None, f"{username} is not asked for a second factor"
    page.goto(page.url.replace(reverse("mfa-enrol"), reverse("mfa-verify")))
    _second_factor_enter(page, key)


# Accessibility checks and screenshots in the browser tests.

# axe-core comes from the npm registry with the other front-end assets (package.json, `make install`).
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


def axe_serious_problems(page: Page, axe: Path) -> list[tuple[str, str, list[str]]]:
    """axe-core's serious and critical violations on the page as it is now: rule, impact, and where."""
    # Through the debugging protocol: the site's content security policy (rightly) refuses an injected script tag.
    page.evaluate(axe.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        (violation["id"], violation["impact"], [str(node["target"]) for node in violation["nodes"]])
        for violation in result["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot, kept as a test artefact (under BROWSER_SCREENSHOT_DIR when set)."""
    directory = Path(os.environ.get("BROWSER_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def compose_command() -> list[str]:
    """`docker compose`, or the older `docker-compose`; in CI one of them must be there (.ci/run installs it)."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    if os.environ.get("CI") == "true":
        pytest.fail("CI must have docker compose or docker-compose (.ci/run installs it)")
    pytest.skip("neither `docker compose` nor `docker-compose` is installed")


def demo_loaded(monkeypatch: pytest.MonkeyPatch, password: str, *, patients: int = 30) -> None:
    """The demo loaded through the real pipeline, as of today, its users signing in with `password`."""
    monkeypatch.setenv("DEMO_PASSWORD", password)
    call_command(
        "demo_load",
        "--patients",
        str(patients),
        "--reference-date",
        timezone.localdate().isoformat(),
        stdout=io.StringIO(),
    )
