"""The partner push API: who may push where, what is refused and how, and that every attempt is recorded."""

import io
import uuid

import pytest
from django.urls import reverse

from audit.services import RequestContext
from records.feeds.push.keys import partner_credential_create
from records.feeds.push.process import pushed_batch_process
from records.feeds.push.receive import PushFacts, PushRefused, pushed_batch_receive
from records.models import Feed, PartnerCredential, PushAttempt, PushedBatch
from tests.builders import bundle, condition, push, push_url, status_of

# Nothing a view queues reaches the broker; tests run the service themselves.
pytestmark = pytest.mark.usefixtures("_no_queueing")
Outcome = PushAttempt.Outcome


@pytest.fixture
def practice_b_key(cast) -> str:
    _, key = partner_credential_create(organisation=cast.practice_b, name="Fenland GP system")
    return key


def only_attempt() -> PushAttempt:
    assert PushAttempt.objects.count() == 1
    return PushAttempt.objects.get()


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    return body


# Accepted.


def test_a_partner_pushes_a_bundle_and_gets_a_batch_id_status_url_and_location(
    api, cast, hospital_feed, hospital_key, django_capture_on_commit_callbacks, _no_queueing
):
    payload = bundle(condition("c1", cast.patient_a), condition("c2", cast.patient_a, "Hay fever"))

    with django_capture_on_commit_callbacks(execute=True):
        response = push(api, hospital_feed.code, payload, hospital_key)

    assert response.status_code == 202
    body = response.json()
    batch = PushedBatch.objects.get()
    assert body["batch_id"] == str(batch.public_id)
    assert body["status"] == "pending"
    assert body["status_url"] == f"http://testserver/api/batches/{batch.public_id}/"
    assert response["Location"] == body["status_url"]
    assert bytes(batch.payload) == payload
    assert (batch.size, batch.content_type, batch.status) == (
        len(payload),
        "application/fhir+json",
        "pending",
    )
    assert batch.checksum == body["sha256"]
    assert batch.feed == hospital_feed
    attempt = only_attempt()
    assert (attempt.outcome, attempt.status_code, attempt.batch) == (Outcome.ACCEPTED, 202, batch)
    assert attempt.credential == batch.credential
    assert attempt.key_prefix == hospital_key[:12]
    assert (attempt.feed_code, attempt.content_type, attempt.size) == (
        "cuh-epr",
        "application/fhir+json",
        len(payload),
    )
    assert attempt.request_id == response["X-Request-ID"]
    assert attempt.client_address == "127.0.0.1"
    # The worker is asked only after the batch has committed, and is given its id, nothing else.
    assert _no_queueing == [batch.pk]


def test_nothing_is_queued_before_the_batch_commits(
    api, cast, hospital_feed, hospital_key, django_capture_on_commit_callbacks, _no_queueing
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)

    assert response.status_code == 202
    assert len(callbacks) == 1
    assert _no_queueing == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/fhir+json; charset=utf-8",
        "application/json",
        "application/fhir+ndjson",
        "application/x-ndjson",
        "application/fhir+xml",
        "application/xml",
    ],
)
def test_a_fhir_feed_takes_every_fhir_content_type(api, cast, hospital_feed, hospital_key, content_type):
    response = push(
        api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key, content_type
    )

    assert response.status_code == 202
    assert PushedBatch.objects.get().content_type == content_type.split(";")[0]


def test_a_partner_asking_for_fhir_json_back_still_gets_an_answer(api, cast, hospital_feed, hospital_key):
    response = push(
        api,
        hospital_feed.code,
        bundle(condition("c1", cast.patient_a)),
        hospital_key,
        HTTP_ACCEPT="application/fhir+json",
    )

    assert response.status_code == 202


def test_a_csv_feed_takes_csv(api, cast, practice_b_key):
    feed = Feed.objects.create(
        code="fenland-csv",
        organisation=cast.practice_b,
        name="CSV",
        format=Feed.Format.CSV,
        source=Feed.Source.PUSH,
    )

    response = push(api, feed.code, b"NHS No,DOB\n9990000026,1962-07-01\n", practice_b_key, "text/csv")

    assert response.status_code == 202


def test_a_push_marks_when_the_key_was_last_used(api, cast, hospital_feed, hospital_key):
    push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)

    assert PartnerCredential.objects.get(organisation=cast.cuh).last_used_at is not None


# Refused before anything is known of the caller: 401, whatever the feed.


def test_a_push_without_a_key_is_401_recorded_and_stores_nothing(api, cast, hospital_feed):
    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), None)

    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    attempt = only_attempt()
    assert (attempt.outcome, attempt.status_code, attempt.feed_code) == (
        Outcome.UNAUTHENTICATED,
        401,
        "cuh-epr",
    )
    assert (attempt.credential, attempt.key_prefix) == (None, "")
    assert not PushedBatch.objects.exists()


@pytest.mark.parametrize(
    "key",
    [
        "sc_" + "A" * 43,  # looks like a key, is not one
        "not-a-key-at-all",
        "sc_short",
    ],
)
def test_a_push_with_a_wrong_key_is_401_recorded_with_its_prefix_and_stores_nothing(
    api, cast, hospital_feed, key
):
    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), key)

    assert_problem(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Bearer")
    attempt = only_attempt()
    assert (attempt.outcome, attempt.status_code, attempt.credential) == (Outcome.UNAUTHENTICATED, 401, None)
    assert attempt.key_prefix == key[:12]
    assert not PushedBatch.objects.exists()


def test_a_right_prefix_with_the_wrong_secret_is_401(api, cast, hospital_feed, hospital_key):
    forged = hospital_key[:12] + "x" * (len(hospital_key) - 12)

    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), forged)

    assert_problem(response, 401, "authentication_failed")
    assert only_attempt().credential is None
    assert not PushedBatch.objects.exists()


def test_a_withdrawn_key_is_401_and_the_attempt_names_its_credential(api, cast, hospital_feed, hospital_key):
    credential = PartnerCredential.objects.get(organisation=cast.cuh)
    credential.is_active = False
    credential.save()

    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)

    assert_problem(response, 401, "authentication_failed")
    attempt = only_attempt()
    assert (attempt.outcome, attempt.credential, attempt.key_prefix) == (
        Outcome.UNAUTHENTICATED,
        credential,
        hospital_key[:12],
    )
    assert not PushedBatch.objects.exists()


def test_the_key_of_a_partner_that_left_is_401(api, cast, hospital_feed, hospital_key):
    cast.cuh.is_active = False
    cast.cuh.save()

    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)

    assert_problem(response, 401, "authentication_failed")
    assert not PushedBatch.objects.exists()


@pytest.mark.parametrize("code", ["no-such-feed", "gp-d81001", "x" * 300, "nul\x00code"])
def test_an_unauthenticated_caller_gets_401_whatever_the_feed_code(api, cast, hospital_feed, code):
    response = push(api, code, bundle(condition("c1", cast.patient_a)), "sc_" + "B" * 43)

    assert_problem(response, 401, "authentication_failed")
    assert only_attempt().outcome == Outcome.UNAUTHENTICATED


def test_a_signed_in_back_office_session_does_not_open_the_api(api, cast, hospital_feed):
    api.force_login(cast.admin_gus)

    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), None)

    assert_problem(response, 401, "not_authenticated")
    assert not PushedBatch.objects.exists()


def test_other_methods_on_the_push_url_need_a_key_and_are_not_attempts(
    api, cast, hospital_feed, hospital_key
):
    assert api.get(push_url(hospital_feed.code)).status_code == 401
    response = api.get(push_url(hospital_feed.code), HTTP_AUTHORIZATION=f"Bearer {hospital_key}")
    assert_problem(response, 405, "method_not_allowed")
    assert not PushAttempt.objects.exists()


# Refused once the partner is known.


def test_a_partner_pushing_into_another_partners_feed_gets_403_recorded_and_nothing_stored(
    api, cast, hospital_feed, practice_b_key
):
    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), practice_b_key)

    assert_problem(response, 403, "forbidden")
    attempt = only_attempt()
    assert (attempt.outcome, attempt.status_code) == (Outcome.FORBIDDEN, 403)
    assert attempt.credential == PartnerCredential.objects.get(organisation=cast.practice_b)
    assert not PushedBatch.objects.exists()


def test_an_unknown_feed_is_404_once_authenticated(api, cast, hospital_key):
    response = push(api, "no-such-feed", bundle(condition("c1", cast.patient_a)), hospital_key)

    assert_problem(response, 404, "unknown-feed")
    assert (only_attempt().outcome, only_attempt().feed_code) == (Outcome.UNKNOWN_FEED, "no-such-feed")
    assert not PushedBatch.objects.exists()


@pytest.mark.parametrize(
    ("content_type", "feed_format"),
    [
        ("text/plain", Feed.Format.FHIR),
        ("", Feed.Format.FHIR),
        ("multipart/form-data; boundary=x", Feed.Format.FHIR),
        ("text/csv", Feed.Format.FHIR),
        ("application/hl7-v2", Feed.Format.FHIR),
        ("application/fhir+xml", Feed.Format.CSV),
        ("application/fhir+json", Feed.Format.HL7V2),
    ],
)
def test_a_content_type_that_does_not_fit_the_feed_is_415(
    api, cast, hospital_feed, hospital_key, content_type, feed_format
):
    hospital_feed.format = feed_format
    hospital_feed.save()

    response = push(api, hospital_feed.code, b"<Bundle/>", hospital_key, content_type)

    body = assert_problem(response, 415, "unsupported-media-type")
    assert "send it as one of" in body["detail"]
    attempt = only_attempt()
    assert (attempt.outcome, attempt.status_code) == (Outcome.UNSUPPORTED_MEDIA_TYPE, 415)
    assert not PushedBatch.objects.exists()


def test_a_body_over_the_limit_is_413_and_stores_nothing(api, cast, hospital_feed, hospital_key, settings):
    settings.PUSH_MAX_BYTES = 100

    response = push(api, hospital_feed.code, b"{" + b" " * 100 + b"}", hospital_key)

    assert_problem(response, 413, "too-large")
    attempt = only_attempt()
    assert (attempt.outcome, attempt.status_code, attempt.size) == (Outcome.TOO_LARGE, 413, 102)
    assert not PushedBatch.objects.exists()


def test_a_body_at_the_limit_is_accepted(api, cast, hospital_feed, hospital_key, settings):
    settings.PUSH_MAX_BYTES = 100

    response = push(api, hospital_feed.code, b"{" + b" " * 98 + b"}", hospital_key)

    assert response.status_code == 202


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_a_body_without_a_declared_length_is_read_no_further_than_the_limit(cast, hospital_feed, settings):
    settings.PUSH_MAX_BYTES = 1000
    credential, _ = partner_credential_create(organisation=cast.cuh, name="EPR")
    stream = CountingStream(b"x" * 1_000_000)
    facts = PushFacts(
        feed_code=hospital_feed.code,
        content_type="application/fhir+json",
        declared_size=None,
        context=RequestContext(),
        credential=credential,
    )

    with pytest.raises(PushRefused) as refused:
        pushed_batch_receive(facts, stream)

    assert refused.value.status_code == 413
    assert stream.bytes_read == 1001
    assert only_attempt().outcome == Outcome.TOO_LARGE
    assert not PushedBatch.objects.exists()


def test_an_empty_body_is_400(api, cast, hospital_feed, hospital_key):
    response = push(api, hospital_feed.code, b"", hospital_key)

    assert_problem(response, 400, "invalid")
    assert (only_attempt().outcome, only_attempt().status_code) == (Outcome.INVALID, 400)
    assert not PushedBatch.objects.exists()


def test_a_paused_feed_is_409_and_says_so(api, cast, hospital_feed, hospital_key):
    hospital_feed.state = Feed.State.PAUSED
    hospital_feed.save()

    response = push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)

    body = assert_problem(response, 409, "feed-closed")
    assert "paused" in body["detail"]
    assert (only_attempt().outcome, only_attempt().status_code) == (Outcome.FEED_CLOSED, 409)
    assert not PushedBatch.objects.exists()


def test_a_feed_that_does_not_take_pushes_is_409_and_says_so(api, cast, hospital_key):
    response = push(api, cast.cuh_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)

    body = assert_problem(response, 409, "feed-closed")
    assert "does not take pushes" in body["detail"]
    assert (only_attempt().outcome, only_attempt().status_code) == (Outcome.FEED_CLOSED, 409)
    assert not PushedBatch.objects.exists()


# The status URL.


def push_and_get_status_url(api, cast, feed, key, payload: bytes | None = None) -> str:
    response = push(api, feed.code, payload or bundle(condition("c1", cast.patient_a)), key)
    assert response.status_code == 202
    return response.json()["status_url"]


def test_the_status_url_says_pending_until_the_worker_has_run_then_done_with_counts(
    api, cast, hospital_feed, hospital_key
):
    payload = bundle(
        condition("c1", cast.patient_a), condition("c2", cast.patient_a), {"resourceType": "Location"}
    )
    url = push_and_get_status_url(api, cast, hospital_feed, hospital_key, payload)

    pending = status_of(api, url, hospital_key)
    assert pending.status_code == 200
    assert (pending.json()["status"], pending.json()["result"]) == ("pending", None)

    pushed_batch_process(PushedBatch.objects.get().pk)

    done = status_of(api, url, hospital_key).json()
    assert done["status"] == "done"
    assert done["feed"] == "cuh-epr"
    result = done["result"]
    assert result["ingest_status"] == "succeeded"
    assert (
        result["read"],
        result["created"],
        result["updated"],
        result["unchanged"],
        result["quarantined"],
    ) == (
        3,
        2,
        0,
        0,
        1,
    )
    assert result["quarantine_reasons"] == {"unsupported-type": 1}
    assert result["error"] == ""


def test_the_status_carries_no_patient_data_and_no_payload(api, cast, hospital_feed, hospital_key):
    url = push_and_get_status_url(api, cast, hospital_feed, hospital_key)
    pushed_batch_process(PushedBatch.objects.get().pk)

    text = status_of(api, url, hospital_key).content.decode()

    for leak in (cast.patient_a.nhs_number, "Asthma", "Condition", cast.patient_a.family_name):
        assert leak not in text


def test_another_partner_cannot_read_the_status_of_a_batch(
    api, cast, hospital_feed, hospital_key, practice_b_key
):
    url = push_and_get_status_url(api, cast, hospital_feed, hospital_key)

    response = status_of(api, url, practice_b_key)

    assert_problem(response, 404, "not_found")
    assert "cuh-epr" not in response.content.decode()


def test_a_missing_batch_and_another_partners_batch_look_the_same(
    api, cast, hospital_feed, hospital_key, practice_b_key
):
    url = push_and_get_status_url(api, cast, hospital_feed, hospital_key)
    missing = reverse("api:batch-detail", kwargs={"public_id": uuid.uuid4()})

    theirs = status_of(api, url, practice_b_key)
    nothing = status_of(api, missing, practice_b_key)

    assert (theirs.status_code, nothing.status_code) == (404, 404)
    assert {k: v for k, v in theirs.json().items() if k != "request_id"} == {
        k: v for k, v in nothing.json().items() if k != "request_id"
    }


def test_another_key_of_the_same_partner_reads_the_status(api, cast, hospital_feed, hospital_key):
    url = push_and_get_status_url(api, cast, hospital_feed, hospital_key)
    _, rotated = partner_credential_create(organisation=cast.cuh, name="EPR interface, new key")

    assert status_of(api, url, rotated).status_code == 200


def test_the_status_needs_a_key(api, cast, hospital_feed, hospital_key):
    url = push_and_get_status_url(api, cast, hospital_feed, hospital_key)
    api.force_login(cast.admin_gus)

    response = status_of(api, url, None)

    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert PushAttempt.objects.count() == 1  # the push; reading a status is not a push attempt
