"""The cast every test reuses.

Two practices (A and B), an acute trust, a mental-health trust and a council; a GP with a registered patient, a
colleague at another practice with no relationship to that patient, a hospital clinician, a receptionist, a social
worker, a privacy officer and a back-office superuser; a patient with a sensitive entry. Also the fixtures the partner
push API's tests share. Builders that are not fixtures live in `tests/builders.py`.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.backends.postgresql.operations import DatabaseOperations
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from playwright.sync_api import Browser, BrowserContext, sync_playwright
from rest_framework.test import APIClient

import records.partner_api.views
from consent.mfa import mfa_enrolled, mfa_required
from consent.mfa_middleware import ENROLLED_SESSION_KEY
from consent.roles import JobRole
from consent.services import relationships_refresh
from records.feeds.push.keys import partner_credential_create
from records.feeds.push.limits import partner_api_counters_clear
from records.models import Feed, Organisation, Patient
from records.sections import Section
from records.services import feed_upsert, organisation_upsert
from tests.builders import AXE, FAST_HASHERS, OIDC_PASSWORD, authenticator_of, make_entry, make_user


@pytest.fixture(scope="session", autouse=True)
def _no_network_but_loopback() -> None:
    # Tests talk only to 127.0.0.1; make sure nothing in the environment points a client elsewhere.
    os.environ.pop("HTTP_PROXY", None)
    os.environ.pop("HTTPS_PROXY", None)


# A table with more rows than this is emptied by TRUNCATE after a transactional test; one with fewer by DELETE.
FLUSH_DELETES_UP_TO = 1000
_sql_flush_by_truncate = DatabaseOperations.sql_flush


def _sql_flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """Django's flush between transactional tests TRUNCATEs every table, which on PostgreSQL recreates each table's
    and index's files (about a second for this schema) though a test leaves a few rows in a few tables. The same
    end state, every table empty and no sequence reset, comes from DELETE on the tables that hold rows, with the
    rows' triggers off for it (replication role) as TRUNCATE fires none of them; a table holding many rows is
    still truncated. Only as a superuser, which the embedded test database's owner is; otherwise Django's way."""
    if reset_sequences or not tables:
        return _sql_flush_by_truncate(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
    quoted = [self.quote_name(table) for table in tables]
    with self.connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('is_superuser')")
        if cursor.fetchone()[0] != "on":
            return _sql_flush_by_truncate(self, style, tables, allow_cascade=allow_cascade)
        cursor.execute(
            " UNION ALL ".join(
                f"SELECT {index}, count(*) FROM (SELECT FROM {table} LIMIT {FLUSH_DELETES_UP_TO + 1}) AS held"  # noqa: S608
                for index, table in enumerate(quoted)
            )
        )
        held = {quoted[index]: rows for index, rows in cursor.fetchall() if rows}
    many = [table for table, rows in held.items() if rows > FLUSH_DELETES_UP_TO]
    statements = ["SET LOCAL session_replication_role = replica"]
    # Django's own table names, quoted as Django quotes them.
    statements += [f"DELETE FROM {table}" for table, rows in held.items() if rows <= FLUSH_DELETES_UP_TO]  # noqa: S608
    if many:
        # CASCADE: a table that refers to one of these is emptied with it, as every table is being emptied.
        statements.append(f"TRUNCATE {', '.join(many)} CASCADE")
    statements.append("SET LOCAL session_replication_role = origin")
    return statements


@pytest.fixture(scope="session", autouse=True)
def _flush_by_delete() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", _sql_flush_by_delete)
        yield


@pytest.fixture(autouse=True)
def _partner_api_counters_fresh() -> None:
    # The partner API's rate and quota counters live in Redis, which no test transaction rolls back; every test
    # calls from 127.0.0.1, so one test's failed keys would otherwise throttle the next.
    partner_api_counters_clear()


@pytest.fixture(autouse=True)
def _rate_limit_counters_fresh(settings) -> None:
    # django-ratelimit's counters (the public form's, the hourly patient searches') live in Redis too, keyed by
    # address or user id; a fresh test database numbers users from 1 again, so each test counts under its own prefix.
    settings.RATELIMIT_CACHE_PREFIX = f"rl:{uuid.uuid4().hex}:"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # Argon2 is deliberately slow; the cast creates seven users per test. Production hashing is tested apart.
    settings.PASSWORD_HASHERS = FAST_HASHERS


@pytest.fixture(autouse=True)
def _force_login_passes_the_second_factor(monkeypatch) -> None:
    """`client.force_login` stands for a whole sign-in, the second factor included. For a user who must pass one
    (consent.mfa.mfa_required) it gives them a real confirmed authenticator (django-otp's TOTPDevice, as enrolment
    leaves) and marks the session verified by it exactly as `django_otp.login` does, so django-otp's middleware
    reloads that device on every request as it does after a real sign-in; removing the device still ends the
    session's verification. For anyone else it records, as the first page of a real session would, whether they
    have an authenticator. The check itself is untouched: tests/test_mfa.py and every browser sign-in
    (tests.builders.log_in) go through the real pages."""
    original = Client.force_login

    def force_login(self, user, backend=None):
        original(self, user, backend)
        session = self.session
        if mfa_required(user):
            session[DEVICE_ID_SESSION_KEY] = authenticator_of(user).persistent_id
        else:
            session[ENROLLED_SESSION_KEY] = mfa_enrolled(user)
        session.save()

    monkeypatch.setattr(Client, "force_login", force_login)


@dataclass
class Cast:
    practice_a: Organisation
    practice_b: Organisation
    cuh: Organisation
    cpft: Organisation
    county: Organisation
    icb: Organisation
    gp_a_feed: Feed
    gp_b_feed: Feed
    cuh_feed: Feed
    cpft_feed: Feed
    county_feed: Feed
    gp_ada: object
    gp_ben: object
    ed_cara: object
    reception_dan: object
    social_eli: object
    privacy_fay: object
    admin_gus: object
    patient_a: Patient
    patient_b: Patient
    patient_sensitive: Patient


def _cast_build() -> Cast:
    practice_a = organisation_upsert(
        ods_code="D81001", name="Riverside Surgery", kind=Organisation.Kind.GP_PRACTICE
    )
    practice_b = organisation_upsert(
        ods_code="D81002", name="Fenland Practice", kind=Organisation.Kind.GP_PRACTICE
    )
    cuh = organisation_upsert(
        ods_code="RGT", name="Cambridge University Hospitals", kind=Organisation.Kind.ACUTE_TRUST
    )
    cpft = organisation_upsert(
        ods_code="RT1",
        name="Cambridgeshire and Peterborough NHS FT",
        kind=Organisation.Kind.MENTAL_HEALTH_TRUST,
    )
    county = organisation_upsert(
        ods_code="CCC01", name="Cambridgeshire County Council", kind=Organisation.Kind.LOCAL_AUTHORITY
    )
    icb = organisation_upsert(
        ods_code="QUE", name="Cambridgeshire and Peterborough ICB", kind=Organisation.Kind.ICB
    )
    gp_a_feed = feed_upsert(
        code="gp-d81001", organisation=practice_a, name="GP record", sections=[], can_create_patients=True
    )
    gp_b_feed = feed_upsert(
        code="gp-d81002", organisation=practice_b, name="GP record", sections=[], can_create_patients=True
    )
    cuh_feed = feed_upsert(code="cuh-epr", organisation=cuh, name="Hospital EPR", sections=[])
    cpft_feed = feed_upsert(code="cpft-mh", organisation=cpft, name="Mental health record", sections=[])
    county_feed = feed_upsert(code="county-social-care", organisation=county, name="Social care", sections=[])

    patient_a = Patient.objects.create(
        nhs_number="9990000018",
        given_name="Alice",
        family_name="Ashby",
        birth_date=datetime(1950, 3, 14).date(),
        sex=Patient.Sex.FEMALE,
        address="1 Mill Road, Cambridge",
        postcode="CB1 2AB",
        phone="01223 000001",
        registered_practice=practice_a,
    )
    patient_b = Patient.objects.create(
        nhs_number="9990000026",
        given_name="Brian",
        family_name="Barton",
        birth_date=datetime(1962, 7, 1).date(),
        sex=Patient.Sex.MALE,
        registered_practice=practice_b,
    )
    patient_sensitive = Patient.objects.create(
        nhs_number="9449306613",
        given_name="Tamsin",
        family_name="Sedgwick",
        birth_date=datetime(1990, 1, 1).date(),
        registered_practice=practice_a,
    )
    make_entry(patient_a, gp_a_feed, Section.PROBLEMS, "Type 2 diabetes mellitus")
    make_entry(
        patient_a,
        gp_a_feed,
        Section.MEDICATIONS,
        "Metformin 500mg tablets",
        resource_type="MedicationStatement",
    )
    make_entry(
        patient_a,
        cuh_feed,
        Section.ENCOUNTERS,
        "Emergency department attendance",
        resource_type="Encounter",
        status="finished",
        effective_end=timezone.now() - timedelta(days=2),
    )
    make_entry(
        patient_a, cpft_feed, Section.PLANS, "Community mental health care plan", resource_type="CarePlan"
    )
    make_entry(
        patient_a, county_feed, Section.ASSESSMENTS, "Care Act needs assessment", resource_type="Observation"
    )
    make_entry(
        patient_a,
        county_feed,
        Section.SOCIAL_CONTEXT,
        "Adult social care case",
        resource_type="EpisodeOfCare",
    )
    make_entry(patient_b, gp_b_feed, Section.PROBLEMS, "Asthma")
    make_entry(patient_sensitive, gp_a_feed, Section.PROBLEMS, "Hypertension")
    # Recorded by the hospital's sexual health clinic: sensitive outside the hospital, so withheld from the GP.
    make_entry(patient_sensitive, cuh_feed, Section.PROBLEMS, "Chlamydia infection", is_sensitive=True)
    relationships_refresh([patient_a.pk, patient_b.pk, patient_sensitive.pk])

    return Cast(
        practice_a=practice_a,
        practice_b=practice_b,
        cuh=cuh,
        cpft=cpft,
        county=county,
        icb=icb,
        gp_a_feed=gp_a_feed,
        gp_b_feed=gp_b_feed,
        cuh_feed=cuh_feed,
        cpft_feed=cpft_feed,
        county_feed=county_feed,
        gp_ada=make_user("gp.ada", practice_a, JobRole.CLINICAL_PRACTITIONER),
        gp_ben=make_user("gp.ben", practice_b, JobRole.CLINICAL_PRACTITIONER),
        ed_cara=make_user("ed.cara", cuh, JobRole.CLINICAL_PRACTITIONER),
        reception_dan=make_user("reception.dan", practice_a, JobRole.ADMIN_CLINICAL_SUPPORT),
        social_eli=make_user("social.eli", county, JobRole.SOCIAL_CARE_PRACTITIONER),
        privacy_fay=make_user("privacy.fay", icb, JobRole.PRIVACY_OFFICER),
        admin_gus=make_user("admin.gus", None, None, is_staff=True, is_superuser=True),
        patient_a=patient_a,
        patient_b=patient_b,
        patient_sensitive=patient_sensitive,
    )


# The cast is built through the real services once, and its rows kept; a test on pytest-django's `db` whose database
# is in the state the build started from (every table's rows the same) gets the same rows copied back in its own
# transaction instead of a build of some 340 statements, and instances read back as the build returns them. Built
# afresh for a transactional test, when any table or setting differs, and after CAST_KEPT_SECONDS (its times are
# relative to now) or a change of day.
CAST_KEPT_SECONDS = 60
CAST_FIELDS = {
    Organisation: (
        "practice_a",
        "practice_b",
        "cuh",
        "cpft",
        "county",
        "icb",
    ),
    Feed: ("gp_a_feed", "gp_b_feed", "cuh_feed", "cpft_feed", "county_feed"),
    "user": ("gp_ada", "gp_ben", "ed_cara", "reception_dan", "social_eli", "privacy_fay", "admin_gus"),
    Patient: ("patient_a", "patient_b", "patient_sensitive"),
}


@dataclass
class _KeptCast:
    before: dict[str, tuple]
    day: date
    taken: float
    rows: list[tuple[str, bytes]]
    sequences: list[tuple[str, int]]
    ids: dict[str, int]


_kept_cast: list[_KeptCast] = []


def _tables() -> list[tuple[str, str, bool]]:
    """Every table of the project's models: its name, its primary key's column, and whether that is a number."""
    found: dict[str, tuple[str, str, bool]] = {}
    for model in django_apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.managed and not meta.proxy:
            numbered = meta.pk.get_internal_type() in ("AutoField", "BigAutoField", "SmallAutoField")
            found[meta.db_table] = (connection.ops.quote_name(meta.db_table), meta.pk.column, numbered)
    return sorted(found.values())


def _settings_state() -> str:
    """The settings the build ran under, but for the autouse fixture's counter prefix, which differs every test."""
    return repr(
        sorted(
            (name, repr(getattr(django_settings, name)))
            for name in dir(django_settings)
            if name.isupper() and name != "RATELIMIT_CACHE_PREFIX"
        )
    )


def _database_state() -> dict[str, tuple]:
    """Each table's row count, highest key and a digest of every row; and the settings."""
    parts = [
        f"SELECT '{table}', count(*), max(held.{key})::text, "  # noqa: S608
        f"md5(coalesce(string_agg(held::text, ',' ORDER BY held.{key}), '')) FROM {table} AS held"
        for table, key, _ in _tables()
    ]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts))
        state = {table: tuple(state) for table, *state in cursor.fetchall()}
    state["settings"] = (_settings_state(),)
    return state


def _cast_keep(cast: Cast, before: dict[str, tuple]) -> None:
    """Keep the rows the build added, if all it did was add rows to tables numbered by their key."""
    _kept_cast.clear()
    after = _database_state()
    rows: list[tuple[str, bytes]] = []
    sequences: list[tuple[str, int]] = []
    with connection.cursor() as cursor:
        if after["settings"] != before["settings"]:
            return
        for table, key, numbered in _tables():
            if after[table] == before[table]:
                continue
            if not numbered:
                return
            highest = int(before[table][1] or 0)
            cursor.execute(
                f"SELECT md5(coalesce(string_agg(held::text, ',' ORDER BY held.{key}), '')) "  # noqa: S608
                f"FROM {table} AS held WHERE held.{key} <= %s",
                [highest],
            )
            if cursor.fetchone()[0] != before[table][2]:
                return  # a row that was there before changed
            copied = io.BytesIO()
            with cursor.cursor.copy(
                f"COPY (SELECT * FROM {table} WHERE {key} > {highest} ORDER BY {key}) TO STDOUT"  # noqa: S608
            ) as copy:
                for data in copy:
                    copied.write(data)
            rows.append((table, copied.getvalue()))
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, key])
            sequence = cursor.fetchone()[0]
            if sequence:
                sequences.append((sequence, int(after[table][1])))
        cursor.execute("SELECT current_setting('is_superuser')")
        if cursor.fetchone()[0] != "on":
            return
    ids = {name: getattr(cast, name).pk for names in CAST_FIELDS.values() for name in names}
    _kept_cast.append(_KeptCast(before, timezone.localdate(), time.monotonic(), rows, sequences, ids))


def _cast_restore(kept: _KeptCast) -> Cast:
    with connection.cursor() as cursor:
        # The rows as the build left them, its triggers' work included: no trigger fires again.
        cursor.execute("SET LOCAL session_replication_role = replica")
        for table, data in kept.rows:
            with cursor.cursor.copy(f"COPY {table} FROM STDIN") as copy:
                copy.write(data)
        cursor.execute("SET LOCAL session_replication_role = origin")
        for sequence, highest in kept.sequences:
            cursor.execute(
                "SELECT setval(%s, GREATEST(%s, coalesce(pg_sequence_last_value(%s::regclass), 0)))",
                [sequence, highest, sequence],
            )
    ids = kept.ids
    organisations = Organisation.objects.select_related("group").in_bulk(
        [ids[name] for name in CAST_FIELDS[Organisation]]
    )
    feeds = Feed.objects.in_bulk([ids[name] for name in CAST_FIELDS[Feed]])
    users = get_user_model().objects.in_bulk([ids[name] for name in CAST_FIELDS["user"]])
    patients = Patient.objects.in_bulk([ids[name] for name in CAST_FIELDS[Patient]])
    # As the services return them: a feed holds its organisation, a patient their practice, the same instances.
    for feed in feeds.values():
        feed.organisation = organisations[feed.organisation_id]
    for patient in patients.values():
        if patient.registered_practice_id is not None:
            patient.registered_practice = organisations[patient.registered_practice_id]
    return Cast(
        **{name: organisations[ids[name]] for name in CAST_FIELDS[Organisation]},
        **{name: feeds[ids[name]] for name in CAST_FIELDS[Feed]},
        **{name: users[ids[name]] for name in CAST_FIELDS["user"]},
        **{name: patients[ids[name]] for name in CAST_FIELDS[Patient]},
    )


@pytest.fixture
def cast(db) -> Cast:
    if not connection.in_atomic_block:  # a transactional test: nothing to restore into
        return _cast_build()
    before = _database_state()
    kept = _kept_cast[0] if _kept_cast else None
    if (
        kept is not None
        and kept.before == before
        and kept.day == timezone.localdate()
        and time.monotonic() - kept.taken < CAST_KEPT_SECONDS
    ):
        return _cast_restore(kept)
    built = _cast_build()
    _cast_keep(built, before)
    return built


@pytest.fixture
def admin_client(client, cast):
    """A client signed in as the cast's back-office superuser, admin.gus (in place of pytest-django's own admin,
    who is not in the cast). He supports no partner's feeds until a test grants it."""
    client.force_login(cast.admin_gus)
    return client


# The partner push API.


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def hospital_feed(cast) -> Feed:
    """The hospital's EPR feed, switched to take pushes."""
    cast.cuh_feed.source = Feed.Source.PUSH
    cast.cuh_feed.save(update_fields=["source"])
    return cast.cuh_feed


@pytest.fixture
def hospital_key(cast) -> str:
    _, key = partner_credential_create(organisation=cast.cuh, name="Hospital EPR interface")
    return key


@pytest.fixture
def _no_queueing(monkeypatch) -> list[int]:
    """Record what the push view queues instead of sending it to the broker; tests run the service themselves.
    Push test modules use it for every test (`pytestmark`)."""
    queued: list[int] = []
    monkeypatch.setattr(records.partner_api.views.pushed_batch_process_task, "delay", queued.append)
    return queued


# Debian's Chromium for the browser tests; never a downloaded browser.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def browser(monkeypatch) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def axe_script() -> Path:
    """axe-core's script, installed by `make install`; under CI its absence fails the test rather than skipping."""
    if not AXE.exists():
        message = f"{AXE} is missing: run `make install` (npm install) first"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return AXE


@pytest.fixture
def browser_contexts(browser: Browser) -> Iterator[Callable[[dict], BrowserContext]]:
    """Opens browser contexts (one per user, at a viewport such as {"width": 390, "height": 844}) in British English,
    taking downloads, and closes every one after the test."""
    opened: list[BrowserContext] = []

    def open_context(viewport: dict) -> BrowserContext:
        context = browser.new_context(viewport=viewport, locale="en-GB", accept_downloads=True)
        context.set_default_timeout(15_000)
        opened.append(context)
        return context

    try:
        yield open_context
    finally:
        for context in opened:
            context.close()


# The local NHS Care Identity provider (docker/oidc/provider.mjs) with CIS2-shaped accounts: gp.ada holds her
# practice A role and one sharedcare does not know; ben's role names the wrong organisation; dan has no role;
# a stranger's uid is nobody's here; cara works at CUH. `oidc_cast` gives the cast's profiles the matching ids.
def _cis2_role(role_id: str, org_code: str, job_role: str) -> dict[str, str]:
    return {
        "person_roleid": role_id,
        "person_orgid": f"org-{role_id}",
        "org_code": org_code,
        "role_code": f"S0000:G0000:{job_role}",
        "role_name": f'"{job_role}"',
    }


OIDC_ACCOUNTS = [
    {
        "login": "ada",
        "uid": "900000000001",
        "given_name": "Ada",
        "family_name": "Whitfield",
        "roles": [
            _cis2_role("910000000011", "D81001", "R8000"),
            _cis2_role("910000000012", "RGN", "R8000"),
        ],
    },
    {"login": "ben", "uid": "900000000002", "roles": [_cis2_role("910000000021", "RGT", "R8000")]},
    {"login": "dan", "uid": "900000000004", "roles": []},
    {"login": "stranger", "uid": "900000000099", "roles": [_cis2_role("910000000991", "D81001", "R8000")]},
    {"login": "cara", "uid": "900000000003", "roles": [_cis2_role("910000000031", "RGT", "R8000")]},
    {"login": "fay", "uid": "900000000005", "roles": [_cis2_role("910000000051", "QUE", "R0001")]},
]


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory, live_server):
    """A real local provider for the session, for the test client (testserver) and the live server alike."""
    from sharedcare.embedded.oidc import ProviderUnavailable, oidc_provider_start, oidc_provider_stop

    callback = "/accounts/nhs-care-identity/callback/"
    accounts = [
        {"given_name": "", "family_name": "", **account, "password": OIDC_PASSWORD}
        for account in OIDC_ACCOUNTS
    ]
    try:
        provider = oidc_provider_start(
            tmp_path_factory.mktemp("oidc"),
            client_secret="client-secret-for-tests-only",
            redirect_uris=[f"http://testserver{callback}", f"{live_server.url}{callback}"],
            accounts=accounts,
        )
    except ProviderUnavailable as error:
        if os.environ.get("CI") == "true":
            pytest.fail(str(error))
        pytest.skip(str(error))
    yield provider
    oidc_provider_stop(provider.process)


@pytest.fixture
def oidc_cast(cast, settings, oidc_provider) -> Cast:
    """The cast with the provider's ids on their role profiles, and sharedcare pointed at the provider."""
    from consent.models import StaffProfile

    for user, uid, role_id in (
        (cast.gp_ada, "900000000001", "910000000011"),
        (cast.gp_ben, "900000000002", "910000000021"),
        (cast.reception_dan, "900000000004", "910000000041"),
        (cast.ed_cara, "900000000003", "910000000031"),
        (cast.privacy_fay, "900000000005", "910000000051"),
    ):
        StaffProfile.objects.filter(user=user).update(sds_user_id=uid, sds_role_profile_id=role_id)
    settings.OIDC_ENABLED = True
    settings.OIDC_ISSUER = oidc_provider.issuer
    settings.OIDC_RP_CLIENT_ID = oidc_provider.client_id
    settings.OIDC_RP_CLIENT_SECRET = oidc_provider.client_secret
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{oidc_provider.issuer}/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{oidc_provider.issuer}/access_token"
    settings.OIDC_OP_USER_ENDPOINT = f"{oidc_provider.issuer}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{oidc_provider.issuer}/connect/jwk_uri"
    return cast
