"""The HTTP pull source, against a real FHIR-speaking HTTP server on 127.0.0.1 started by each test."""

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from records.feeds.results import Outcome
from records.feeds.scheduling import feed_run
from records.feeds.sources import TransientSourceError
from records.ingest.pipeline import ingest_texts
from records.models import Feed, IngestRun, RecordEntry
from sharedcare.celery import app as celery_app
from tests.builders import NHS

TOKEN = "Bearer partner-token-for-tests"


class FakeFhirServer:
    """Serves `pages[path?query]` as (status, JSON body); remembers every request's path, query and headers."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, object]] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                server.requests.append((parts.path, parse_qs(parts.query), dict(self.headers.items())))
                key = parts.path if "page=" not in parts.query else f"{parts.path}?{parts.query}"
                if key in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[key])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, body = server.pages.get(key, (404, {"resourceType": "OperationOutcome"}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def searchset(self, path: str, entries: list[dict], next_page: str | None = None) -> dict:
        links = [{"relation": "self", "url": f"{self.base}{path}"}]
        if next_page is not None:
            links.append({"relation": "next", "url": next_page})
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": links,
            "entry": [{"fullUrl": f"{self.base}/fhir/Condition/{e['id']}", "resource": e} for e in entries],
        }


@pytest.fixture
def partner():
    server = FakeFhirServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def feed(cast, partner, monkeypatch) -> Feed:
    monkeypatch.setenv("CUH_FHIR_AUTHORIZATION", TOKEN)
    IngestRun.objects.filter(feed=cast.cuh_feed).update(started_at=timezone.now() - timedelta(days=7))
    Feed.objects.filter(pk=cast.cuh_feed.pk).update(
        source=Feed.Source.HTTP_PULL,
        state=Feed.State.LIVE,
        endpoint_url=f"{partner.base}/fhir/Condition?category=problem-list-item",
        endpoint_auth_env="CUH_FHIR_AUTHORIZATION",
    )
    cast.cuh_feed.refresh_from_db()
    return cast.cuh_feed


def condition(resource_id: str, patient, updated: str) -> dict:
    return {
        "resourceType": "Condition",
        "id": resource_id,
        "meta": {"lastUpdated": updated},
        "code": {"text": f"Problem {resource_id}"},
        "subject": {"identifier": {"system": NHS, "value": patient.nhs_number}},
    }


def three_pages(partner: FakeFhirServer, patient, *, page_two_status: int = 200) -> None:
    page = f"{partner.base}/fhir/Condition?page="
    partner.pages["/fhir/Condition"] = (
        200,
        partner.searchset(
            "/fhir/Condition",
            [
                condition("c1", patient, "2025-03-01T09:00:00Z"),
                condition("c2", patient, "2025-03-01T10:00:00Z"),
            ],
            f"{page}2",
        ),
    )
    partner.pages["/fhir/Condition?page=2"] = (
        page_two_status,
        partner.searchset(
            "/fhir/Condition?page=2",
            # The latest change is on the middle page: the watermark is the latest seen, not the last.
            [
                condition("c3", patient, "2025-03-02T08:30:00.5+01:00"),
                condition("c4", patient, "2025-03-01T11:00:00Z"),
            ],
            f"{page}3",
        )
        if page_two_status == 200
        else {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "database unavailable"}]},
    )
    partner.pages["/fhir/Condition?page=3"] = (
        200,
        partner.searchset("/fhir/Condition?page=3", [condition("c5", patient, "2025-03-01T12:00:00Z")]),
    )


def pulled_ids(feed: Feed) -> list[str]:
    return sorted(
        RecordEntry.objects.filter(feed=feed, source_id__regex=r"^c\d$").values_list("source_id", flat=True)
    )


def test_a_pull_follows_next_links_and_ingests_every_page_in_one_run(cast, feed, partner):
    three_pages(partner, cast.patient_a)

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert result.outcome == Outcome.SUCCEEDED
    [run] = result.runs
    assert (run.status, run.trigger, run.resources_read, run.created) == ("succeeded", "schedule", 5, 5)
    assert run.duration_seconds is not None and run.resources_per_second is not None
    assert pulled_ids(feed) == ["c1", "c2", "c3", "c4", "c5"]
    assert [(path, query.get("page")) for path, query, _ in partner.requests] == [
        ("/fhir/Condition", None),
        ("/fhir/Condition", ["2"]),
        ("/fhir/Condition", ["3"]),
    ]
    feed.refresh_from_db()
    assert feed.watermark == datetime(2025, 3, 2, 7, 30, 0, 500000, tzinfo=UTC)
    assert feed.last_success_at == run.finished_at


def test_the_first_pull_asks_for_everything_and_the_next_only_for_changes_since_the_watermark(
    cast, feed, partner
):
    three_pages(partner, cast.patient_a)
    feed_run(feed, trigger=IngestRun.Trigger.COMMAND)
    partner.requests.clear()
    partner.pages["/fhir/Condition"] = (200, partner.searchset("/fhir/Condition", []))

    feed_run(feed, trigger=IngestRun.Trigger.COMMAND)

    [(path, query, headers)] = partner.requests
    assert path == "/fhir/Condition"
    assert query == {"category": ["problem-list-item"], "_lastUpdated": ["gt2025-03-02T07:30:00.500000Z"]}
    assert headers["Accept"] == "application/fhir+json"


def test_every_page_is_asked_for_with_the_authorization_from_the_named_environment_variable(
    cast, feed, partner
):
    three_pages(partner, cast.patient_a)

    feed_run(feed, trigger=IngestRun.Trigger.COMMAND)

    assert [headers.get("Authorization") for _, _, headers in partner.requests] == [TOKEN, TOKEN, TOKEN]


def test_a_feed_naming_an_unset_variable_for_its_authorization_fails_without_asking(
    cast, feed, partner, monkeypatch
):
    monkeypatch.delenv("CUH_FHIR_AUTHORIZATION")

    result = feed_run(feed, trigger=IngestRun.Trigger.COMMAND)

    assert result.outcome == Outcome.FAILED
    assert "CUH_FHIR_AUTHORIZATION" in result.runs[0].error
    assert partner.requests == []


def test_a_server_error_mid_pull_keeps_nothing_leaves_the_watermark_and_is_retried(cast, feed, partner):
    watermark = datetime(2025, 1, 1, tzinfo=UTC)
    Feed.objects.filter(pk=feed.pk).update(watermark=watermark)
    three_pages(partner, cast.patient_a, page_two_status=500)

    with pytest.raises(TransientSourceError, match=r"page=2 answered 500 Internal Server Error$"):
        feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    feed.refresh_from_db()
    assert feed.watermark == watermark
    assert pulled_ids(feed) == []
    failed = IngestRun.objects.get(feed=feed, status=IngestRun.Status.FAILED)
    assert (failed.trigger, failed.resources_read) == ("schedule", 0)
    assert "500" in failed.error
    assert len(partner.requests) == 2


def test_a_next_link_to_another_host_is_refused_and_never_followed(cast, feed, partner):
    three_pages(partner, cast.patient_a)
    elsewhere = f"http://localhost:{partner.port}/fhir/Condition?page=2"
    partner.pages["/fhir/Condition"] = (
        200,
        partner.searchset(
            "/fhir/Condition", [condition("c1", cast.patient_a, "2025-03-01T09:00:00Z")], elsewhere
        ),
    )

    result = feed_run(feed, trigger=IngestRun.Trigger.COMMAND)

    assert result.outcome == Outcome.FAILED
    assert "links its next page to another host (localhost:" in result.message
    assert len(partner.requests) == 1
    assert pulled_ids(feed) == []
    feed.refresh_from_db()
    assert feed.watermark is None


def test_a_redirect_to_another_host_is_not_followed_with_the_partners_credentials(cast, feed, partner):
    partner.redirects["/fhir/Condition"] = f"http://localhost:{partner.port}/fhir/Condition?page=1"

    result = feed_run(feed, trigger=IngestRun.Trigger.COMMAND)

    assert result.outcome == Outcome.FAILED
    assert "redirected to another host (localhost:" in result.message
    assert [path for path, _, _ in partner.requests] == ["/fhir/Condition"]


def test_a_client_error_is_a_failed_run_with_the_reason_and_not_retried(cast, feed, partner):
    partner.pages["/fhir/Condition"] = (
        403,
        {"resourceType": "OperationOutcome", "issue": [{"details": {"text": "client not authorised"}}]},
    )

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    assert result.outcome == Outcome.FAILED
    [run] = result.runs
    assert run.status == IngestRun.Status.FAILED
    assert "403 Forbidden: client not authorised" in run.error


def test_a_page_that_is_not_a_bundle_fails_the_pull(cast, feed, partner):
    partner.pages["/fhir/Condition"] = (200, [{"resourceType": "Condition"}])

    result = feed_run(feed, trigger=IngestRun.Trigger.COMMAND)

    assert result.outcome == Outcome.FAILED
    assert "did not answer with a FHIR Bundle" in result.message


def test_an_empty_search_succeeds_and_moves_the_watermark_to_when_the_pull_started(cast, feed, partner):
    partner.pages["/fhir/Condition"] = (200, partner.searchset("/fhir/Condition", []))
    before = timezone.now()

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    feed.refresh_from_db()
    assert result.outcome == Outcome.SUCCEEDED
    assert result.runs[0].resources_read == 0
    assert before <= feed.watermark <= result.runs[0].finished_at


def test_a_refused_connection_is_transient(cast, feed, partner):
    partner.httpd.shutdown()
    partner.httpd.server_close()

    with pytest.raises(TransientSourceError, match="could not be read"):
        feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)


@pytest.fixture
def eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_the_run_task_retries_a_transient_error_and_not_a_terminal_one(cast, feed, partner, eager_tasks):
    from records.tasks import feed_run_task

    partner.pages["/fhir/Condition"] = (503, {"resourceType": "OperationOutcome"})
    transient = feed_run_task.apply(args=[feed.pk])
    asked_when_transient = len(partner.requests)
    partner.requests.clear()
    partner.pages["/fhir/Condition"] = (404, {"resourceType": "OperationOutcome"})
    terminal = feed_run_task.apply(args=[feed.pk])

    assert isinstance(transient.result, TransientSourceError)
    assert asked_when_transient == 1 + feed_run_task.max_retries
    assert terminal.get()["outcome"] == "failed"
    assert len(partner.requests) == 1


def test_a_pulled_resource_finds_a_patient_the_partner_sent_in_another_feed_before(cast, feed, partner):
    """A partner serving Patient and Condition as separate searches: the conditions pulled since the watermark
    refer to `Patient/<id>` at that server, sent earlier by the partner's patient feed."""
    patients = Feed.objects.create(code="cuh-patients", organisation=cast.cuh, name="CUH patients")
    patient = {
        "resourceType": "Patient",
        "id": "rgt-42",
        "identifier": [{"system": NHS, "value": cast.patient_a.nhs_number}],
        "name": [{"family": "Ashby"}],
        "birthDate": "1950-03-14",
    }
    assert ingest_texts(patients, [("patients.json", json.dumps(patient).encode())]).quarantined == 0
    pulled = condition("c1", cast.patient_a, "2025-03-01T09:00:00Z")
    pulled["subject"] = {"reference": "Patient/rgt-42"}
    partner.pages["/fhir/Condition"] = (200, partner.searchset("/fhir/Condition", [pulled]))

    result = feed_run(feed, trigger=IngestRun.Trigger.SCHEDULE)

    [run] = result.runs
    assert (run.created, run.quarantined) == (1, 0)
    assert RecordEntry.objects.get(feed=feed, source_id="c1").patient == cast.patient_a
