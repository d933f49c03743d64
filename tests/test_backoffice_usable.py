"""The back office as its users work it: branded and reached from the portal, a feed run now or paused (never a live
one deleted), its sections ticked from the PRSB headings, its CSV mapping edited as a checked form and previewed on a
sample, and a quarantined record fixed and replayed, or discarded, from its own page; each step recorded."""

import base64
import json
import os
import re
import time
from datetime import date

import pytest
import redis
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.admin import helpers
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AccessEvent
from consent.services import feed_support_grant
from records.demo.generator import caseload_extract, demo_patients
from records.demo.partners import CASELOAD_MAPPING
from records.models import Feed, IngestRun, QuarantinedRecord, RecordEntry
from records.sections import SECTION_ORDER, Section
from records.tasks import feed_run_task
from tests.builders import NEWCOMER, condition, ingest, invalid_condition, ndjson

Status = QuarantinedRecord.Status
FEEDS = "admin:records_feed_changelist"
REFERENCE = date(2025, 3, 1)


def _change(feed: Feed) -> str:
    return reverse("admin:records_feed_change", args=[feed.pk])


def _messages(response) -> list[str]:
    return [str(message) for message in response.wsgi_request._messages]


def _feed_entries(feed: Feed) -> list[LogEntry]:
    return list(LogEntry.objects.get_for_object(feed).order_by("pk"))


# Branding and the way in from the portal.


def test_the_back_office_is_branded_and_leads_back_to_the_portal(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()

    assert "<title>Partners, feeds, users and the audit | sharedcare back office</title>" in page
    assert '<div id="site-name"><a href="/admin/">sharedcare back office</a></div>' in page
    assert f'<a href="{reverse("records:home")}">Back to the portal</a>' in page
    assert "css/backoffice.css" in page


def test_the_portal_shows_the_back_office_link_to_staff_only(client, cast):
    link = f'<a class="nav-link" href="{reverse("admin:index")}">Back office</a>'
    client.force_login(cast.admin_gus)
    assert link in client.get(reverse("records:home")).content.decode()

    for clinician in (cast.gp_ada, cast.privacy_fay):
        client.force_login(clinician)
        assert link not in client.get(reverse("records:home")).content.decode()


# Run now.


@pytest.fixture
def inbox_feed(cast, settings, tmp_path) -> Feed:
    """The hospital's feed, live and taking files from an inbox folder holding one file that is ready."""
    settings.FEED_INBOX_ROOT = tmp_path
    feed = cast.cuh_feed
    feed.source, feed.state = Feed.Source.INBOX, Feed.State.LIVE
    feed.save(update_fields=["source", "state"])
    incoming = tmp_path / feed.code / "incoming"
    incoming.mkdir(parents=True)
    path = incoming / "conditions.ndjson"
    path.write_bytes(ndjson(condition("run-now-1", cast.patient_a)))
    settled = time.time() - 60
    os.utime(path, (settled, settled))
    return feed


def _queued_runs(feed: Feed) -> list[tuple[list, dict]]:
    """The feed_run_task messages for `feed` waiting in the broker's default queue: their (args, kwargs)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    found = []
    for raw in broker.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] != "records.feed_run_task":
            continue
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        if args == [feed.pk]:
            found.append((args, kwargs))
    return found


@pytest.fixture
def broker_clean(cast):
    """No feed_run_task message for the cast's feeds left over in the broker by an earlier test."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for raw in broker.lrange("celery", 0, -1):
        if json.loads(raw)["headers"]["task"] == "records.feed_run_task":
            broker.lrem("celery", 0, raw)


def test_run_now_queues_the_scheduled_task_records_who_asked_and_the_worker_ingests(
    admin_client, cast, inbox_feed, broker_clean, django_capture_on_commit_callbacks
):
    # It ran successfully a minute ago: beat would not run it yet; Run now does.
    IngestRun.objects.create(feed=inbox_feed, status=IngestRun.Status.SUCCEEDED)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:records_feed_run_now", args=[inbox_feed.pk]))

    assert response.status_code == 302
    assert response["Location"] == _change(inbox_feed)
    assert any(message.startswith("Queued a run of cuh-epr.") for message in _messages(response))
    queued = _queued_runs(inbox_feed)
    assert queued == [([inbox_feed.pk], {"now": True})]
    entry = _feed_entries(inbox_feed)[-1]
    assert (entry.action, entry.changes_dict, entry.actor) == (
        LogEntry.Action.ACCESS,
        {"run now": ["", "queued"]},
        cast.admin_gus,
    )
    assert (
        AdminLogEntry.objects.get(object_id=str(inbox_feed.pk)).change_message == "Run now: a run was queued."
    )

    # What the worker does with that message: the feed's run, now.
    args, kwargs = queued[0]
    outcome = feed_run_task.apply(args, kwargs).get()

    assert outcome["outcome"] == "succeeded"
    assert RecordEntry.objects.filter(source_id="run-now-1", feed=inbox_feed).exists()
    assert IngestRun.objects.filter(feed=inbox_feed).latest("pk").trigger == IngestRun.Trigger.COMMAND


@pytest.mark.parametrize(
    ("state", "source", "words"),
    [
        (Feed.State.PAUSED, Feed.Source.INBOX, "is paused, so it does not run"),
        (Feed.State.ONBOARDING, Feed.Source.INBOX, "is still onboarding"),
        (Feed.State.LIVE, Feed.Source.PUSH, "there is nothing to fetch"),
    ],
)
def test_run_now_is_refused_with_the_reason_and_queues_nothing(
    admin_client, cast, broker_clean, django_capture_on_commit_callbacks, state, source, words
):
    feed = cast.cuh_feed
    feed.state, feed.source = state, source
    feed.save(update_fields=["state", "source"])
    before = len(_feed_entries(feed))

    page = admin_client.get(_change(feed)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:records_feed_run_now", args=[feed.pk]))

    assert "Run now is not available." in page and words in page
    assert f'action="/admin/records/feed/{feed.pk}/run-now/"' not in page
    assert any(words in message for message in _messages(response))
    assert _queued_runs(feed) == []
    assert len(_feed_entries(feed)) == before


def test_run_now_from_the_list_queues_live_feeds_and_says_why_others_were_not(
    admin_client, cast, inbox_feed, broker_clean, django_capture_on_commit_callbacks
):
    paused = cast.cpft_feed
    paused.state, paused.source = Feed.State.PAUSED, Feed.Source.INBOX
    paused.save(update_fields=["state", "source"])

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse(FEEDS),
            {"action": "run_now_selected", helpers.ACTION_CHECKBOX_NAME: [inbox_feed.pk, paused.pk]},
        )

    assert response.status_code == 302
    said = _messages(response)
    assert any("cpft-mh is paused" in message for message in said)
    assert any(message.startswith("Queued a run of cuh-epr.") for message in said)
    assert _queued_runs(inbox_feed) == [([inbox_feed.pk], {"now": True})]
    assert _queued_runs(paused) == []


def test_a_run_now_message_for_a_feed_paused_since_does_nothing(cast, inbox_feed):
    inbox_feed.state = Feed.State.PAUSED
    inbox_feed.save(update_fields=["state"])

    runs = IngestRun.objects.count()

    assert feed_run_task.apply([inbox_feed.pk], {"now": True}).get()["outcome"] == "not live"
    assert IngestRun.objects.count() == runs


def test_run_now_and_pause_are_posts_for_staff_only(client, cast):
    feed = cast.cuh_feed
    client.force_login(cast.gp_ada)
    for name in ("admin:records_feed_run_now", "admin:records_feed_pause"):
        response = client.post(reverse(name, args=[feed.pk]))
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    client.force_login(cast.admin_gus)
    assert client.get(reverse("admin:records_feed_pause", args=[feed.pk])).status_code == 405
    feed.refresh_from_db()
    assert feed.state == Feed.State.LIVE
    assert not AccessEvent.objects.exists()


# Pause, never delete a live feed.


def test_a_live_feed_cannot_be_deleted_and_the_list_has_no_bulk_delete(admin_client, cast):
    feed = cast.cuh_feed
    assert feed.state == Feed.State.LIVE

    page = admin_client.get(_change(feed)).content.decode()
    listing = admin_client.get(reverse(FEEDS)).content.decode()

    assert reverse("admin:records_feed_delete", args=[feed.pk]) not in page
    assert (
        admin_client.post(reverse("admin:records_feed_delete", args=[feed.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert 'value="delete_selected"' not in listing
    response = admin_client.post(
        reverse(FEEDS), {"action": "delete_selected", helpers.ACTION_CHECKBOX_NAME: [feed.pk], "post": "yes"}
    )
    assert "No action selected." in _messages(response)
    assert Feed.objects.filter(pk=feed.pk).exists()


def test_a_paused_feed_offers_delete(admin_client, cast):
    feed = cast.cuh_feed
    feed.state = Feed.State.PAUSED
    feed.save(update_fields=["state"])

    assert (
        reverse("admin:records_feed_delete", args=[feed.pk])
        in admin_client.get(_change(feed)).content.decode()
    )


def test_pause_stops_a_live_feed_and_the_change_log_names_who(admin_client, cast):
    feed = cast.cuh_feed

    response = admin_client.post(reverse("admin:records_feed_pause", args=[feed.pk]))

    feed.refresh_from_db()
    assert feed.state == Feed.State.PAUSED
    assert any(message.startswith("Paused cuh-epr") for message in _messages(response))
    entry = _feed_entries(feed)[-1]
    assert (entry.action, entry.changes_dict["state"], entry.actor) == (
        LogEntry.Action.UPDATE,
        ["live", "paused"],
        cast.admin_gus,
    )
    page = admin_client.get(_change(feed)).content.decode()
    assert f'action="/admin/records/feed/{feed.pk}/pause/"' not in page


def test_pause_from_the_list(admin_client, cast):
    admin_client.post(
        reverse(FEEDS),
        {"action": "pause_selected", helpers.ACTION_CHECKBOX_NAME: [cast.cuh_feed.pk, cast.cpft_feed.pk]},
    )

    assert set(Feed.objects.filter(state=Feed.State.PAUSED).values_list("code", flat=True)) == {
        "cuh-epr",
        "cpft-mh",
    }


# The list.


@pytest.mark.parametrize("extra_feeds", [0, 6])
def test_the_list_shows_partner_feed_format_state_last_success_and_pending_quarantine(
    admin_client, cast, django_assert_num_queries, extra_feeds
):
    ingest(cast.cuh_feed, condition("waits", NEWCOMER), condition("waits-too", NEWCOMER, display="Eczema"))
    for number in range(extra_feeds):
        extra = Feed.objects.create(code=f"extra-{number}", organisation=cast.county, name=f"Extra {number}")
        ingest(extra, condition(f"extra-{number}", NEWCOMER))

    with django_assert_num_queries(8):
        page = admin_client.get(reverse(FEEDS)).content.decode()

    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', page)
    assert headers == [
        "feed",
        "organisation",
        "format_and_source",
        "state",
        "last_success",
        "quarantine_pending",
    ]
    results = page.split('id="result_list"')[1].split("</table>")[0]
    row = next(row for row in results.split("<tr") if "cuh-epr" in row)
    assert "Cambridge University Hospitals" in row and "FHIR, files" in row and "Live" in row
    assert '<span class="stale-badge">Stale</span>' not in row  # it has just run
    never_ran = next(row for row in results.split("<tr") if "cpft-mh" in row)
    assert 'never <span class="stale-badge">Stale</span>' in never_ran
    assert 'aria-label="2 pending for cuh-epr">2</a>' in row


# Sections.


def test_sections_are_checkboxes_of_the_prsb_headings_in_the_standards_order(admin_client, cast):
    page = admin_client.get(_change(cast.cuh_feed)).content.decode()

    boxes = re.findall(r'<input type="checkbox" name="sections" value="([^"]+)"', page)
    assert boxes == [section.value for section in SECTION_ORDER]


def _feed_form(feed: Feed, **changes) -> dict:
    data = {
        "organisation": feed.organisation_id,
        "code": feed.code,
        "name": feed.name,
        "format": feed.format,
        "source": feed.source,
        "schedule_minutes": feed.schedule_minutes,
        "endpoint_url": "",
        "endpoint_auth_env": "",
        "state": feed.state,
    }
    data.update(changes)
    return data


def test_ticked_sections_are_kept_in_the_standards_order(admin_client, cast):
    feed = cast.cuh_feed
    ticked = [Section.ENCOUNTERS.value, Section.ALLERGIES.value, Section.PROBLEMS.value]

    response = admin_client.post(_change(feed), _feed_form(feed, sections=ticked))

    assert response.status_code == 302
    feed.refresh_from_db()
    assert feed.sections == [Section.PROBLEMS, Section.ALLERGIES, Section.ENCOUNTERS]


def test_a_section_not_in_the_standard_is_refused(admin_client, cast):
    feed = cast.cuh_feed

    response = admin_client.post(
        _change(feed), _feed_form(feed, sections=["problems-and-issues", "horoscope"])
    )

    assert response.status_code == 200
    assert (
        "Select a valid choice. horoscope is not one of the available choices." in response.content.decode()
    )
    feed.refresh_from_db()
    assert feed.sections == []


# The CSV mapping.


@pytest.fixture
def caseload_feed(cast) -> Feed:
    return Feed.objects.create(
        code="county-caseload",
        organisation=cast.county,
        name="Adult social care caseload extract",
        format=Feed.Format.CSV,
        state=Feed.State.LIVE,
        csv_mapping=dict(CASELOAD_MAPPING),
    )


def _mapping_url(feed: Feed) -> str:
    return reverse("admin:records_feed_csv_mapping", args=[feed.pk])


def _mapping_post(**columns) -> dict:
    data = {
        "types-TOTAL_FORMS": "2",
        "types-INITIAL_FORMS": "0",
        "types-0-word": "caseload",
        "types-0-resource": "EpisodeOfCare",
        "statuses-TOTAL_FORMS": "1",
        "statuses-INITIAL_FORMS": "0",
        "statuses-0-word": "Awaiting allocation",
        "statuses-0-meaning": "open",
    }
    fields = {
        "nhs_number": "NHS Number",
        "record_type": "Record Type",
        "record_id": "Case Ref",
        "date": "Start Date",
        "date_format": "%d/%m/%Y",
        "status": "Status",
        "team_code": "Team",
        "team_name": "Team Name",
    }
    fields.update(columns)
    data.update({f"map-{key}": value for key, value in fields.items() if value is not None})
    return data


def _caseload_sample() -> bytes:
    """The demo council's caseload extract, with a second case (another patient's) after the demo's own."""
    extract = caseload_extract(demo_patients(60, 7, REFERENCE), REFERENCE).decode()
    header, first = extract.splitlines()[:2]
    second = first.split(",")
    second[0], second[2] = "999 000 0026", "ASC-SECOND"
    return "\r\n".join([header, first, ",".join(second), ""]).encode()


def test_the_mapping_is_a_form_with_one_field_per_column_filled_from_the_saved_one(
    admin_client, caseload_feed
):
    page = admin_client.get(_mapping_url(caseload_feed)).content.decode()

    assert 'name="map-nhs_number" value="NHS Number"' in page
    assert 'name="map-date_format" value="%d/%m/%Y"' in page
    assert '<option value="EpisodeOfCare" selected>' in page
    for required in ("nhs_number", "record_type", "record_id"):
        assert re.search(rf'<label for="id_map-{required}" class="required">', page)
    assert '<label for="id_map-family_name">' in page
    assert (
        "csv_mapping"
        not in admin_client.get(_change(caseload_feed))
        .content.decode()
        .split("<form")[1]
        .split("Columns:")[0]
    )


def test_a_valid_mapping_is_saved_as_the_ingester_reads_it_and_recorded(admin_client, cast, caseload_feed):
    response = admin_client.post(_mapping_url(caseload_feed), {**_mapping_post(), "_save": "1"})

    assert response.status_code == 302
    caseload_feed.refresh_from_db()
    assert caseload_feed.csv_mapping == {
        **{key: value for key, value in CASELOAD_MAPPING.items() if key != "end_date"},
        "statuses": {"Awaiting allocation": "open"},
    }
    entry = _feed_entries(caseload_feed)[-1]
    assert "csv_mapping" in entry.changes_dict and entry.actor == cast.admin_gus


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({"nhs_number": ""}, "Name the column that holds the nhs number."),
        ({"date": None}, "date_format is given but no date column is mapped"),
        ({"date_format": "%Y"}, "date_format &#x27;%Y&#x27; cannot read back the dates it writes"),
    ],
)
def test_a_mapping_with_a_problem_is_refused_with_the_problem_named(
    admin_client, caseload_feed, columns, problem
):
    response = admin_client.post(_mapping_url(caseload_feed), {**_mapping_post(**columns), "_save": "1"})

    assert response.status_code == 200
    assert problem in response.content.decode()
    caseload_feed.refresh_from_db()
    assert caseload_feed.csv_mapping == dict(CASELOAD_MAPPING)


def test_a_saved_mapping_with_unknown_keys_says_so(admin_client, caseload_feed):
    caseload_feed.csv_mapping = {**CASELOAD_MAPPING, "nhs_numbr": "NHS No"}
    caseload_feed.save(update_fields=["csv_mapping"])

    page = admin_client.get(_mapping_url(caseload_feed)).content.decode()

    assert "The saved mapping has keys the ingester does not know, so its runs fail: nhs_numbr." in page
    assert "unknown key &#x27;nhs_numbr&#x27;" in admin_client.get(_change(caseload_feed)).content.decode()


def _preview(client, feed: Feed, data: bytes, **columns):
    sample = SimpleUploadedFile("caseload.csv", data, content_type="text/csv")
    return client.post(_mapping_url(feed), {**_mapping_post(**columns), "_preview": "1", "sample": sample})


def test_the_preview_shows_the_demo_extract_as_it_would_map_and_stores_nothing(admin_client, caseload_feed):
    sample = _caseload_sample()
    first = sample.decode().splitlines()[1].split(",")

    runs = IngestRun.objects.count()

    response = _preview(admin_client, caseload_feed, sample)

    page = response.content.decode()
    assert response.status_code == 200
    assert (
        "Columns in the sample: NHS Number, Record Type, Case Ref, Start Date, End Date, Status, Team, Team Name."
        in page
    )
    assert "Missing from the sample" not in page
    assert f"<dt>NHS number</dt><dd>{first[0]}</dd>" in page
    assert f"<dt>Team code</dt><dd>{first[6]}</dd>" in page
    assert f'<span class="row-ok">EpisodeOfCare {first[2]}</span>' in page
    assert IngestRun.objects.count() == runs
    assert not QuarantinedRecord.objects.exists()
    assert not RecordEntry.objects.filter(feed=caseload_feed).exists()
    caseload_feed.refresh_from_db()
    assert caseload_feed.csv_mapping == dict(CASELOAD_MAPPING)


def test_the_preview_names_missing_columns_and_row_errors(admin_client, caseload_feed):
    lines = _caseload_sample().decode().splitlines()
    header = lines[0].replace("Team Name", "Team Title")
    bad = lines[1].split(",")
    bad[0] = "9990000017"  # fails the Modulus 11 check
    sample = "\r\n".join([lines[0], ",".join(bad), lines[2]]).encode()

    missing = _preview(admin_client, caseload_feed, "\r\n".join([header, *lines[1:3]]).encode())
    row_error = _preview(admin_client, caseload_feed, sample)

    assert "Missing from the sample: Team Name (for team name)." in missing.content.decode()
    assert "The whole file would be quarantined: The header does not fit" in missing.content.decode()
    page = row_error.content.decode()
    assert "Quarantined: Line 2: the NHS Number column fails the Modulus 11 check." in page
    assert '<span class="row-ok">EpisodeOfCare' in page


def test_the_mapping_page_is_for_csv_feeds_and_staff(client, admin_client, cast, caseload_feed):
    response = admin_client.get(_mapping_url(cast.cuh_feed))
    assert response["Location"] == _change(cast.cuh_feed)
    client.force_login(cast.gp_ada)
    assert client.get(_mapping_url(caseload_feed))["Location"].startswith(reverse("admin:login"))


# A quarantined record's page.


@pytest.fixture
def support_client(client, cast):
    """The back-office user, supporting the hospital's feeds."""
    feed_support_grant(user_id=cast.admin_gus.pk, organisations=[cast.cuh])
    client.force_login(cast.admin_gus)
    return client


@pytest.fixture
def invalid(cast) -> QuarantinedRecord:
    ingest(cast.cuh_feed, invalid_condition("fix-me", cast.patient_a))
    return QuarantinedRecord.objects.get(source_id="fix-me")


def _record_url(record: QuarantinedRecord, view: str = "change") -> str:
    return reverse(f"admin:records_quarantinedrecord_{view}", args=[record.pk])


def test_the_record_page_offers_replay_fix_and_discard_and_no_save(support_client, invalid):
    page = support_client.get(_record_url(invalid)).content.decode()

    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert f'action="{_record_url(invalid, "replay")}"' in page
    assert f'action="{_record_url(invalid, "fix")}"' in page
    assert f'action="{_record_url(invalid, "discard")}"' in page
    assert re.search(r'<textarea name="reason"[^>]* required', page)
    assert "clinicalStatus" not in page  # the payload is still masked


def test_fix_opens_the_payload_through_an_audited_reveal(support_client, cast, invalid):
    response = support_client.post(_record_url(invalid, "fix"))

    assert response.status_code == 200
    assert "&quot;clinicalStatus&quot;: &quot;active&quot;" in response.content.decode()
    event = AccessEvent.objects.latest("pk")
    assert (event.action, event.outcome, event.patient_id) == (
        AccessEvent.Action.REVEAL,
        AccessEvent.Outcome.ALLOWED,
        cast.patient_a.pk,
    )


def test_check_names_what_is_still_wrong_and_changes_nothing(support_client, invalid):
    response = support_client.post(
        _record_url(invalid, "fix"), {"payload": invalid.raw_payload, "_check": "1"}
    )

    page = response.content.decode()
    assert "It would not be read as it is; nothing was saved or replayed." in page
    assert "clinicalStatus" in page
    invalid.refresh_from_db()
    assert invalid.status == Status.PENDING


def test_a_fixed_payload_is_replayed_through_the_pipeline_and_recorded(support_client, cast, invalid):
    fixed = json.dumps(condition("fix-me", cast.patient_a, display="Asthma, corrected"))
    checked = support_client.post(_record_url(invalid, "fix"), {"payload": fixed, "_check": "1"})
    assert "The feed would read it as:" in checked.content.decode()
    old_hash = invalid.payload_hash

    response = support_client.post(_record_url(invalid, "fix"), {"payload": fixed, "_replay": "1"})

    assert response["Location"] == _record_url(invalid)
    said = _messages(response)
    assert "Saved the corrected payload." in said
    assert any("1 ingested, 0 quarantined again" in message for message in said)
    invalid.refresh_from_db()
    assert (invalid.status, invalid.raw_payload) == (Status.REPLAYED, fixed)
    assert invalid.replayed_by.trigger == IngestRun.Trigger.REPLAY
    entry = RecordEntry.objects.get(source_id="fix-me")
    assert entry.display == "Asthma, corrected"
    changes = [log.changes_dict for log in LogEntry.objects.get_for_object(invalid).order_by("pk")]
    assert changes[-3]["payload_hash"] == [old_hash, invalid.payload_hash]
    assert changes[-1]["status"] == ["replaying", "replayed"]
    assert all(log.actor == cast.admin_gus for log in LogEntry.objects.get_for_object(invalid))
    page = support_client.get(_record_url(invalid)).content.decode()
    assert "Replayed by" in page and "nothing more to do" in page


def test_replay_as_it_is_from_the_page_shows_a_record_still_bad(support_client, invalid):
    response = support_client.post(_record_url(invalid, "replay"))

    said = _messages(response)
    again = QuarantinedRecord.objects.get(status=Status.PENDING)
    assert any("0 ingested, 1 quarantined again" in message for message in said)
    assert any(
        f'<a href="{_record_url(again)}">quarantined record {again.pk}</a>' in message for message in said
    )
    invalid.refresh_from_db()
    assert invalid.status == Status.REPLAYED


def test_discard_from_the_page_needs_a_reason(support_client, cast, invalid):
    refused = support_client.post(_record_url(invalid, "discard"), {"reason": "  "})
    invalid.refresh_from_db()
    assert invalid.status == Status.PENDING
    assert "Give a reason for discarding" in _messages(refused)[0]

    support_client.post(_record_url(invalid, "discard"), {"reason": "Test message from the partner"})

    invalid.refresh_from_db()
    assert (invalid.status, invalid.discarded_reason, invalid.discarded_by) == (
        Status.DISCARDED,
        "Test message from the partner",
        cast.admin_gus,
    )
    assert LogEntry.objects.get_for_object(invalid).latest("pk").actor == cast.admin_gus


@pytest.mark.parametrize("view", ["replay", "fix", "discard"])
def test_a_user_not_supporting_the_partner_is_answered_as_if_the_record_did_not_exist(
    client, cast, invalid, view
):
    feed_support_grant(user_id=cast.admin_gus.pk, organisations=[cast.cpft])
    client.force_login(cast.admin_gus)

    response = client.post(_record_url(invalid, view), {"payload": "{}", "_replay": "1", "reason": "no"})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    assert "clinicalStatus" not in client.get(response["Location"]).content.decode()
    event = AccessEvent.objects.latest("pk")
    assert event.outcome == AccessEvent.Outcome.DENIED
    assert event.reason == f"quarantined record {invalid.pk}: user does not support this partner"
    invalid.refresh_from_db()
    assert (invalid.status, invalid.raw_payload) == (Status.PENDING, invalid.raw_payload)
    assert QuarantinedRecord.objects.count() == 1
