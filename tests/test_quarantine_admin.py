"""The quarantine in the back office: filters, search (NHS number by POST only), replay and discard actions, the
outcome of closed records, and the audited detail page, for a user who supports the partners' feeds."""

import re

import pytest
from auditlog.models import LogEntry
from django.contrib.admin import helpers
from django.urls import reverse

import records.backoffice.quarantine
from audit.models import AccessEvent
from consent.services import feed_support_grant
from records.backoffice.quarantine import NHS_NUMBER_SEARCH_FIELD
from records.ingest.quarantine import DISCARD_REASON_REQUIRED, quarantine_discard, quarantine_replay
from records.models import IngestRun, QuarantinedRecord, RecordEntry
from tests.builders import NEWCOMER, condition, ingest, invalid_condition, newcomer

Status = QuarantinedRecord.Status
CHANGELIST = "admin:records_quarantinedrecord_changelist"


@pytest.fixture
def admin_client(client, cast):
    """The back-office user, supporting the feeds of the hospital and the mental-health trust."""
    feed_support_grant(user_id=cast.admin_gus.pk, organisations=[cast.cuh, cast.cpft])
    client.force_login(cast.admin_gus)
    return client


@pytest.fixture
def quarantined(cast) -> dict[str, QuarantinedRecord]:
    """An unknown patient's record at the hospital, and an invalid one at the mental-health trust."""
    ingest(cast.cuh_feed, condition("cuh-unknown", NEWCOMER))
    ingest(cast.cpft_feed, invalid_condition("cpft-invalid", cast.patient_a.nhs_number))
    return {record.source_id: record for record in QuarantinedRecord.objects.all()}


def listed(response) -> set[str]:
    """The source ids in the list's rows."""
    assert response.status_code == 200
    return set(re.findall(r'<td class="field-source_id">([^<]*)</td>', response.content.decode()))


def act(client, action: str, records, **extra):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [record.pk for record in records], **extra}
    return client.post(reverse(CHANGELIST), data)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, {"cuh-unknown", "cpft-invalid"}),
        ({"reason__exact": "invalid-resource"}, {"cpft-invalid"}),
        ({"status__exact": "pending"}, {"cuh-unknown", "cpft-invalid"}),
        ({"status__exact": "discarded"}, set()),
        ({"q": "cuh-unknown"}, {"cuh-unknown"}),
        ({"q": "clinicalStatus"}, {"cpft-invalid"}),
    ],
)
def test_quarantine_list_filters_and_searches(admin_client, quarantined, query, expected):
    assert listed(admin_client.get(reverse(CHANGELIST), query)) == expected


def test_quarantine_list_filters_by_feed_and_date(admin_client, cast, quarantined):
    by_feed = admin_client.get(reverse(CHANGELIST), {"feed__id__exact": cast.cuh_feed.pk})
    assert listed(by_feed) == {"cuh-unknown"}
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "By created at" in page
    today = re.search(r'href="(\?created_at__gte=[^"]+)"', page).group(1).replace("&amp;", "&")
    assert listed(admin_client.get(reverse(CHANGELIST) + today)) == {"cuh-unknown", "cpft-invalid"}


def test_nhs_number_search_is_a_post_kept_out_of_urls_and_audited(admin_client, cast, quarantined):
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert f'name="{NHS_NUMBER_SEARCH_FIELD}"' in page
    assert 'form method="post" class="nhs-number-search"' in page

    response = admin_client.post(reverse(CHANGELIST), {NHS_NUMBER_SEARCH_FIELD: "944 930 5552"})

    assert listed(response) == {"cuh-unknown"}
    body = response.content.decode()
    assert "944 930 5552" in body
    for url in re.findall(r'(?:href|action|src)="([^"]*)"', body):
        assert "9449305552" not in url.replace(" ", "")
    event = AccessEvent.objects.get(action=AccessEvent.Action.SEARCH)
    assert (event.purpose, event.query, event.username) == (
        AccessEvent.Purpose.FEED_SUPPORT,
        NEWCOMER,
        "admin.gus",
    )


def test_nhs_number_search_of_something_that_is_not_ten_digits_shows_nothing_and_says_why(
    admin_client, quarantined
):
    response = admin_client.post(reverse(CHANGELIST), {NHS_NUMBER_SEARCH_FIELD: "12345"})

    assert listed(response) == set()
    assert "An NHS number has 10 digits." in response.content.decode()
    assert not AccessEvent.objects.filter(action=AccessEvent.Action.SEARCH).exists()


def test_replay_selected_replays_at_once_and_says_what_happened(admin_client, cast, quarantined):
    newcomer()
    records = list(quarantined.values())

    response = act(admin_client, "replay_selected", records, index=0)

    assert response.status_code == 302
    page = admin_client.get(response["Location"]).content.decode()
    assert "1 ingested, 0 quarantined again" in page
    assert "0 ingested, 1 quarantined again" in page
    assert RecordEntry.objects.filter(source_id="cuh-unknown").exists()
    for record in records:
        record.refresh_from_db()
        assert record.status == Status.REPLAYED
        assert LogEntry.objects.get_for_object(record).latest("timestamp").actor == cast.admin_gus
    again = QuarantinedRecord.objects.get(status=Status.PENDING)
    assert again.source_id == "cpft-invalid"
    assert again.ingest_run.trigger == IngestRun.Trigger.REPLAY


def test_replay_selected_skips_records_not_pending_and_says_so(admin_client, cast, quarantined):
    record = quarantined["cuh-unknown"]
    quarantine_discard([record.pk], user=cast.admin_gus, reason="Test data")

    response = act(admin_client, "replay_selected", [record], index=0)

    page = admin_client.get(response["Location"]).content.decode()
    assert "Skipped 1 quarantined record: only pending records are replayed." in page
    assert not IngestRun.objects.filter(trigger=IngestRun.Trigger.REPLAY).exists()


def test_replaying_more_than_the_limit_is_queued_for_a_worker_after_commit(
    admin_client, cast, quarantined, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(records.backoffice.quarantine, "REPLAY_IN_REQUEST_LIMIT", 1)
    queued: list[tuple[list[int], int | None]] = []
    monkeypatch.setattr(
        records.backoffice.quarantine.quarantine_replay_task,
        "delay",
        lambda record_ids, user_id=None: queued.append((record_ids, user_id)),
    )
    records_ = sorted(quarantined.values(), key=lambda record: record.pk)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = act(admin_client, "replay_selected", records_, index=0)
        assert queued == []

    assert response.status_code == 302
    for callback in callbacks:
        callback()
    assert queued == [([record.pk for record in records_], cast.admin_gus.pk)]
    assert set(QuarantinedRecord.objects.values_list("status", flat=True)) == {Status.PENDING}
    assert "Replay of 2 records queued" in admin_client.get(response["Location"]).content.decode()


def test_discard_selected_asks_for_a_reason_first(admin_client, quarantined):
    record = quarantined["cuh-unknown"]

    response = act(admin_client, "discard_selected", [record], index=0)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Why are these records being discarded?" in page
    assert '<textarea name="reason"' in page
    assert 'name="confirm" value="yes"' in page
    assert "cuh-unknown" in page
    record.refresh_from_db()
    assert record.status == Status.PENDING


@pytest.mark.parametrize("reason", ["", "   "])
def test_discard_without_a_reason_shows_the_error_and_changes_nothing(admin_client, quarantined, reason):
    record = quarantined["cuh-unknown"]

    response = act(admin_client, "discard_selected", [record], confirm="yes", reason=reason)

    assert response.status_code == 200
    assert DISCARD_REASON_REQUIRED in response.content.decode()
    record.refresh_from_db()
    assert record.status == Status.PENDING
    assert not LogEntry.objects.get_for_object(record).exists()


def test_discard_with_a_reason_closes_the_record_and_the_change_log_names_the_administrator(
    admin_client, cast, quarantined
):
    record = quarantined["cuh-unknown"]

    response = act(
        admin_client, "discard_selected", [record], confirm="yes", reason="Sent to the wrong trust"
    )

    assert response.status_code == 302
    assert "Discarded 1 quarantined record." in admin_client.get(response["Location"]).content.decode()
    record.refresh_from_db()
    assert (record.status, record.discarded_reason, record.discarded_by) == (
        Status.DISCARDED,
        "Sent to the wrong trust",
        cast.admin_gus,
    )
    change = LogEntry.objects.get_for_object(record).get()
    assert change.actor == cast.admin_gus
    assert change.changes_dict["status"] == ["pending", "discarded"]


def test_closed_records_show_their_replay_run_and_discard_reason(admin_client, cast, quarantined):
    newcomer()
    result = quarantine_replay([quarantined["cuh-unknown"].pk], user_id=None)
    quarantine_discard([quarantined["cpft-invalid"].pk], user=cast.admin_gus, reason="Partner withdrew it")

    page = admin_client.get(reverse(CHANGELIST)).content.decode()

    run = result.runs[0]
    assert (
        f'Replayed by <a href="{reverse("admin:records_ingestrun_change", args=[run.pk])}">run {run.pk}</a>'
        in page
    )
    assert "Discarded by admin.gus: Partner withdrew it" in page


def test_opening_a_quarantined_record_shows_it_with_the_payload_masked_and_is_audited(
    admin_client, quarantined
):
    record = quarantined["cuh-unknown"]

    response = admin_client.get(reverse("admin:records_quarantinedrecord_change", args=[record.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert "cuh-unknown" in body
    assert record.raw_payload not in body and record.raw_payload.replace('"', "&quot;") not in body
    assert reverse("admin:records_quarantinedrecord_reveal", args=[record.pk]) in body
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.purpose, event.reason, event.patient_id) == (
        AccessEvent.Action.VIEW_DOCUMENT,
        AccessEvent.Outcome.ALLOWED,
        AccessEvent.Purpose.FEED_SUPPORT,
        f"quarantined record {record.pk}",
        None,
    )


def test_opening_a_record_that_names_a_held_patient_is_in_that_patients_access_trail(
    admin_client, cast, quarantined
):
    record = quarantined["cpft-invalid"]
    QuarantinedRecord.objects.filter(pk=record.pk).update(nhs_number=cast.patient_a.nhs_number)

    admin_client.get(reverse("admin:records_quarantinedrecord_change", args=[record.pk]))

    assert AccessEvent.objects.get().patient_id == cast.patient_a.pk


def test_clinician_is_sent_to_log_in_and_can_neither_replay_nor_discard(client, cast, quarantined):
    client.force_login(cast.gp_ada)
    record = quarantined["cuh-unknown"]

    for response in (
        client.get(reverse(CHANGELIST)),
        act(client, "replay_selected", [record], index=0),
        act(client, "discard_selected", [record], confirm="yes", reason="no"),
        client.post(reverse(CHANGELIST), {NHS_NUMBER_SEARCH_FIELD: NEWCOMER}),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    assert set(QuarantinedRecord.objects.values_list("status", flat=True)) == {Status.PENDING}
    assert not AccessEvent.objects.exists()
    assert not IngestRun.objects.filter(trigger=IngestRun.Trigger.REPLAY).exists()
