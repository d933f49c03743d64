"""The scan of the access trail for suspicious patterns: each rule fires on what it is about and not just short of
it, each finding raises one alert however often the scan runs, the alert names no patient in the queue, and the
relationships a feed's run derives are in the change history with the feed and run.

Events are written with the moment they are about (`occurred_at`), and the scan is given its `now`: nothing here
depends on the clock or on how fast the machine is.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pytest
import redis
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.urls import reverse

from audit.models import AccessEvent, Alert, AlertScan
from consent.models import LegitimateRelationship, StaffIdentity
from consent.surveillance import RULES, is_household_record, suspicious_access_scan
from consent.surveillance_feeds import RULE as FEED_RULE
from consent.tasks import suspicious_access_scan_task
from records.demo.generator import demo_patients
from records.demo.partners import HOUSEHOLD_FAMILY_NAME, HOUSEHOLD_PATIENT_INDEX
from records.models import IngestRun, Patient
from records.nhs_number import check_digit
from records.services import feed_upsert
from sharedcare.celery import app
from tests.builders import encounter, in_own_thread, ingest

LONDON = ZoneInfo("Europe/London")
# A Tuesday in winter (London on UTC) and a Saturday in summer (London an hour ahead of UTC).
TUESDAY = datetime(2026, 1, 13, tzinfo=LONDON)
SATURDAY = datetime(2026, 6, 13, tzinfo=LONDON)
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=LONDON)
REGISTERED = "registered-practice:D81001 relationship 7 (feed gp-a, run 3)"
SELF_CLAIM = "self-claim:RGT SC-7Q2K"
Kind = Alert.Kind


def numbers(count: int, start: int = 500) -> list[str]:
    found: list[str] = []
    serial = start
    while len(found) < count:
        first_nine = f"999{serial:06d}"
        serial += 1
        digit = check_digit(first_nine)
        if digit is not None:
            found.append(f"{first_nine}{digit}")
    return found


def patients(count: int, start: int = 500, **fields: object) -> list[Patient]:
    return Patient.objects.bulk_create(
        Patient(nhs_number=number, given_name="Pat", family_name=f"Person{n}", **fields)
        for n, number in enumerate(numbers(count, start))
    )


def view(
    user,
    patient: Patient,
    at: datetime,
    *,
    basis: str = REGISTERED,
    action: str = AccessEvent.Action.VIEW_RECORD,
    outcome: str = AccessEvent.Outcome.ALLOWED,
    purpose: str = AccessEvent.Purpose.DIRECT_CARE,
) -> AccessEvent:
    """An access event at `at`, as the door writes one (outside the hash chain, which the scan does not read)."""
    profile = user.staff_profiles.select_related("organisation").first()
    return AccessEvent.objects.create(
        occurred_at=at,
        user_id=user.pk,
        username=user.username,
        job_role=profile.job_role if profile else "",
        organisation_ods=profile.organisation.ods_code if profile else "",
        patient_id=patient.pk,
        action=action,
        outcome=outcome,
        purpose=purpose,
        basis=basis if outcome == AccessEvent.Outcome.ALLOWED else "",
        previous_hash="0" * 64,
        hash=uuid.uuid4().hex,
    )


def kinds() -> list[str]:
    return sorted(Alert.objects.values_list("kind", flat=True))


def identity(user, **fields: object) -> StaffIdentity:
    values = {
        "family_name": "Ashby",
        "birth_date": date(1950, 3, 14),
        "postcode": "CB1 2AB",
        "address_line": "1 Mill Road",
        **fields,
    }
    return StaffIdentity.objects.create(user=user, **values)


# Own and family records.


def test_a_user_opening_their_own_record_by_nhs_number_is_alerted(cast):
    identity(cast.gp_ada, nhs_number="9990000018", family_name="Other", postcode="ZZ1 1ZZ")
    event = view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))

    assert suspicious_access_scan(now=NOW) == 1

    alert = Alert.objects.get()
    assert (alert.kind, alert.user_id, alert.patient_id, alert.event_id) == (
        Kind.OWN_RECORD,
        cast.gp_ada.pk,
        cast.patient_a.pk,
        event.pk,
    )
    assert alert.raised_at == event.occurred_at
    assert len(alert.reference) <= 32 and alert.reference.startswith("OWN-20260113-")
    for value in ("Alice", "Ashby", "9990000018", "Mill"):
        assert value not in alert.reason


def test_a_user_opening_their_own_record_by_name_birth_date_and_postcode_is_alerted(cast):
    identity(cast.gp_ada, family_name="ASHBY", postcode="cb12ab", address_line="Flat 2")
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))

    suspicious_access_scan(now=NOW)

    assert kinds() == [Kind.OWN_RECORD]


def test_a_namesake_at_the_same_postcode_born_another_day_is_not_the_users_own_record(cast):
    identity(cast.gp_ada, birth_date=date(1951, 3, 14), address_line="3 Other Street")
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))

    assert suspicious_access_scan(now=NOW) == 0
    assert kinds() == []


def test_a_user_opening_a_record_with_their_surname_at_their_address_is_alerted_as_family(cast):
    identity(
        cast.gp_ada,
        family_name="ashby ",
        birth_date=date(1980, 1, 1),
        postcode="cb1 2ab",
        address_line="1, Mill Road.",
    )
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))

    suspicious_access_scan(now=NOW)

    alert = Alert.objects.get()
    assert (alert.kind, alert.patient_id) == (Kind.FAMILY_RECORD, cast.patient_a.pk)
    assert "Ashby" not in alert.reason and "Mill" not in alert.reason


def test_the_same_surname_at_another_house_on_the_street_is_not_family(cast):
    identity(cast.gp_ada, birth_date=date(1980, 1, 1), address_line="3 Mill Road")
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))

    suspicious_access_scan(now=NOW)

    assert kinds() == []


def test_a_user_without_an_identity_is_never_matched(cast):
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))

    suspicious_access_scan(now=NOW)

    assert kinds() == []


def test_the_demo_household_user_shares_surname_and_address_with_the_demo_patient():
    home = demo_patients(HOUSEHOLD_PATIENT_INDEX + 1, 20261121, date(2026, 12, 6))[HOUSEHOLD_PATIENT_INDEX]
    held = Patient(
        nhs_number=home.nhs_number,
        family_name=home.family_name,
        birth_date=home.birth_date,
        postcode=home.postcode,
        address=f"{home.address_line}, {home.town}",
    )
    staff = StaffIdentity(
        family_name=HOUSEHOLD_FAMILY_NAME,
        birth_date=date(1986, 5, 9),
        postcode=home.postcode,
        address_line=home.address_line,
    )

    assert home.family_name == HOUSEHOLD_FAMILY_NAME
    assert is_household_record(staff, held)


# Unusual volume.


def test_more_patients_in_an_hour_than_the_minimum_is_alerted_with_the_count(cast):
    seen = patients(31)
    hour = TUESDAY.replace(hour=14)
    for minute, patient in enumerate(seen):
        view(cast.gp_ada, patient, hour + timedelta(minutes=minute, seconds=30))

    suspicious_access_scan(now=NOW)

    alert = Alert.objects.get()
    assert alert.kind == Kind.UNUSUAL_VOLUME
    assert (
        alert.reason
        == "31 patients between 14:00 and 15:00 on 13 January 2026; usual 0 an hour (alerted above 30)."
    )
    assert alert.patient_id == seen[-1].pk


def test_as_many_patients_as_the_minimum_in_an_hour_is_not_alerted(cast):
    hour = TUESDAY.replace(hour=14)
    seen = patients(30)
    for minute, patient in enumerate(seen):
        view(cast.gp_ada, patient, hour + timedelta(minutes=minute))
    # The same patients again in the hour count once; the next hour is an hour of its own.
    for minute, patient in enumerate(seen):
        view(cast.gp_ada, patient, hour + timedelta(minutes=minute, seconds=40))
        view(cast.gp_ada, patient, hour + timedelta(hours=1, minutes=minute))

    suspicious_access_scan(now=NOW)

    assert kinds() == []


def test_a_user_who_usually_sees_many_patients_is_judged_against_their_usual(cast, settings):
    settings.ALERT_VOLUME_MINIMUM, settings.ALERT_VOLUME_FACTOR = 3, 3
    seen = patients(10)
    hour = TUESDAY.replace(hour=10)
    # Usually 2 patients in each of their active hours (and none in the many idle ones): alerted above 6.
    for days_before in (1, 2, 27):
        for patient in seen[:2]:
            view(cast.gp_ada, patient, hour - timedelta(days=days_before))
    # Long ago: outside the 28 days.
    for patient in seen[:1]:
        view(cast.gp_ada, patient, hour - timedelta(days=29))
    for patient in seen[:6]:
        view(cast.gp_ada, patient, hour + timedelta(minutes=5))

    suspicious_access_scan(now=NOW)
    assert kinds() == []

    view(cast.gp_ada, seen[6], hour + timedelta(minutes=50))
    suspicious_access_scan(now=NOW)

    alert = Alert.objects.get()
    assert alert.kind == Kind.UNUSUAL_VOLUME
    assert alert.reason.startswith("7 patients between 10:00 and 11:00 on 13 January 2026; usual 2 an hour")


def test_refused_views_and_searches_do_not_count_towards_volume(cast, settings):
    settings.ALERT_VOLUME_MINIMUM = 3
    hour = TUESDAY.replace(hour=10)
    seen = patients(8)
    for patient in seen[:4]:
        view(cast.gp_ada, patient, hour, outcome=AccessEvent.Outcome.DENIED)
    for patient in seen[4:]:
        view(cast.gp_ada, patient, hour, action=AccessEvent.Action.SEARCH)

    suspicious_access_scan(now=NOW)

    assert kinds() == []


# Out of hours.


@pytest.mark.parametrize(
    "at",
    [
        SATURDAY.replace(hour=11),
        TUESDAY.replace(hour=7, minute=59),
        TUESDAY.replace(hour=18, minute=30),
        TUESDAY.replace(hour=2),
    ],
    ids=["saturday", "just-before-eight", "half-past-six", "night"],
)
def test_a_self_claimed_view_outside_working_hours_is_alerted(cast, at):
    view(cast.ed_cara, cast.patient_b, at, basis=SELF_CLAIM)

    suspicious_access_scan(now=NOW)

    alert = Alert.objects.get()
    assert alert.kind == Kind.OUT_OF_HOURS
    assert f"at {at:%H:%M} on {at:%A}" in alert.reason
    assert "a self-claimed relationship SC-7Q2K" in alert.reason
    assert "Barton" not in alert.reason


def test_the_summer_clock_is_londons(cast):
    # 07:30 UTC is 08:30 in London in June: inside working hours on a weekday.
    view(cast.ed_cara, cast.patient_b, datetime(2026, 6, 16, 7, 30, tzinfo=ZoneInfo("UTC")), basis=SELF_CLAIM)

    suspicious_access_scan(now=NOW)

    assert kinds() == []


@pytest.mark.parametrize(
    "at",
    [TUESDAY.replace(hour=8), TUESDAY.replace(hour=18, minute=29)],
    ids=["eight", "just-before-half-six"],
)
def test_a_self_claimed_view_inside_working_hours_is_not_alerted(cast, at):
    view(cast.ed_cara, cast.patient_b, at, basis=SELF_CLAIM)

    suspicious_access_scan(now=NOW)

    assert kinds() == []


@pytest.mark.parametrize(
    "basis",
    [
        REGISTERED,
        "care-event:RGT relationship 9 (feed cuh-epr, run 4, entry 12)",
        "caseload:CCC relationship 10",
        "referral:RT1 relationship 11",
    ],
)
def test_a_night_view_on_a_care_relationship_is_not_alerted(cast, basis):
    view(cast.gp_ada, cast.patient_a, SATURDAY.replace(hour=3), basis=basis)

    suspicious_access_scan(now=NOW)

    assert kinds() == []


def test_a_break_glass_at_night_is_alerted_and_working_hours_come_from_settings(cast, settings):
    settings.ALERT_WORKING_WEEKDAYS = [0, 1, 2, 3, 4, 5, 6]
    view(cast.ed_cara, cast.patient_b, SATURDAY.replace(hour=11), basis="break-glass:RGT BG-4KD9")
    view(cast.ed_cara, cast.patient_a, SATURDAY.replace(hour=22), basis="break-glass:RGT BG-4KD9")

    suspicious_access_scan(now=NOW)

    alert = Alert.objects.get()
    assert (alert.kind, alert.patient_id) == (Kind.OUT_OF_HOURS, cast.patient_a.pk)
    assert "break-glass access BG-4KD9" in alert.reason


# Restricted patients.


def test_opening_a_restricted_patients_record_through_the_door_is_alerted(client, cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    client.force_login(cast.gp_ada)
    client.get(reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id}))

    suspicious_access_scan(now=NOW)

    alert = Alert.objects.get(kind=Kind.RESTRICTED_PATIENT)
    assert (alert.user_id, alert.username, alert.patient_id) == (cast.gp_ada.pk, "gp.ada", cast.patient_a.pk)
    assert alert.event.action == AccessEvent.Action.VIEW_RECORD
    assert "Ashby" not in alert.reason


def test_a_refused_view_or_a_search_of_a_restricted_patient_is_not_alerted(client, cast):
    Patient.objects.filter(pk=cast.patient_b.pk).update(is_restricted=True)
    client.force_login(cast.gp_ada)
    client.get(reverse("records:patient-detail", kwargs={"public_id": cast.patient_b.public_id}))
    view(cast.gp_ada, cast.patient_b, TUESDAY.replace(hour=10), action=AccessEvent.Action.SEARCH)

    suspicious_access_scan(now=NOW)

    assert AccessEvent.objects.filter(outcome=AccessEvent.Outcome.DENIED).exists()
    assert kinds() == []


def test_an_unrestricted_patients_record_is_not_alerted(cast):
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))

    suspicious_access_scan(now=NOW)

    assert kinds() == []


# The scan itself.


def test_the_scan_is_safe_to_run_twice_and_advances_every_mark(cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))
    last = view(cast.gp_ada, cast.patient_b, TUESDAY.replace(hour=11))

    assert suspicious_access_scan(now=NOW) == 1
    assert suspicious_access_scan(now=NOW + timedelta(minutes=5)) == 0

    assert kinds() == [Kind.RESTRICTED_PATIENT]
    marks = {
        scan.rule: (scan.last_event_id, scan.scanned_at) for scan in AlertScan.objects.exclude(rule=FEED_RULE)
    }
    assert marks == {rule: (last.pk, NOW + timedelta(minutes=5)) for rule in RULES}


def test_the_same_finding_met_in_a_later_scan_raises_no_second_alert(cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    first = view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))
    suspicious_access_scan(now=NOW)
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=16))
    suspicious_access_scan(now=NOW)
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10) + timedelta(days=1))
    suspicious_access_scan(now=NOW)

    alerts = list(Alert.objects.order_by("raised_at"))
    assert [alert.kind for alert in alerts] == [Kind.RESTRICTED_PATIENT] * 2  # one a day
    assert alerts[0].event_id == first.pk


def test_events_are_read_in_batches_and_each_is_judged_once(cast, monkeypatch):
    import consent.surveillance as surveillance

    monkeypatch.setattr(surveillance, "BATCH", 2)
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    events = [
        view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10) + timedelta(days=day)) for day in range(5)
    ]

    assert suspicious_access_scan(now=NOW) == 5

    assert AlertScan.objects.get(rule=Kind.RESTRICTED_PATIENT).last_event_id == events[-1].pk
    assert sorted(Alert.objects.values_list("event_id", flat=True)) == [event.pk for event in events]


def test_the_scan_task_is_on_the_beat_schedule_every_five_minutes():
    entries = [
        entry
        for entry in app.conf.beat_schedule.values()
        if entry["task"] == "consent.suspicious_access_scan_task"
    ]
    assert len(entries) == 1
    assert entries[0]["schedule"].minute == set(range(0, 60, 5))
    assert "consent.suspicious_access_scan_task" in app.tasks


def test_the_scan_task_raises_the_alerts(cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))

    result = suspicious_access_scan_task.apply()

    assert result.successful() and result.result == 1
    assert kinds() == [Kind.RESTRICTED_PATIENT]


# The privacy officer's pages.


@pytest.fixture
def every_pattern(cast, settings) -> list[Alert]:
    """One alert of each access pattern, all about patient A or B, by gp.ada and ed.cara."""
    settings.ALERT_VOLUME_MINIMUM = 1
    Patient.objects.filter(pk=cast.patient_b.pk).update(is_restricted=True)
    identity(cast.gp_ada, nhs_number="9990000018")
    identity(cast.ed_cara, birth_date=date(1980, 1, 1))
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))
    view(cast.ed_cara, cast.patient_a, TUESDAY.replace(hour=10))
    view(cast.gp_ada, cast.patient_b, SATURDAY.replace(hour=23), basis=SELF_CLAIM)
    view(cast.gp_ada, cast.patient_sensitive, SATURDAY.replace(hour=23, minute=10))
    suspicious_access_scan(now=NOW)
    assert kinds() == sorted(
        [Kind.OWN_RECORD, Kind.FAMILY_RECORD, Kind.OUT_OF_HOURS, Kind.RESTRICTED_PATIENT, Kind.UNUSUAL_VOLUME]
    )
    return list(Alert.objects.all())


PATIENT_FIELDS = ("Alice", "ASHBY", "Ashby", "9990000018", "999 000 0018", "Brian", "Barton", "9990000026")


def test_the_queue_shows_each_pattern_in_words_and_what_was_found_naming_no_patient(
    client, cast, every_pattern
):
    client.force_login(cast.privacy_fay)
    events_before = AccessEvent.objects.count()

    response = client.get(reverse("records:alert-list"))

    assert response.status_code == 200
    text = response.content.decode()
    for alert in every_pattern:
        assert alert.reference in text
        assert str(alert.get_kind_display()).replace("'", "&#x27;") in text
    assert "2 patients between 23:00 and 00:00 on 13 June 2026" in text
    assert "outside working hours, by a self-claimed relationship SC-7Q2K" in text
    for value in PATIENT_FIELDS:
        assert value not in text
    assert AccessEvent.objects.count() == events_before


def test_the_queue_takes_the_same_queries_for_one_pattern_alert_as_for_many(
    client, cast, every_pattern, django_assert_num_queries
):
    client.force_login(cast.privacy_fay)
    client.get(reverse("records:alert-list"))
    with django_assert_num_queries(QUEUE_QUERIES):
        client.get(reverse("records:alert-list"))
    Alert.objects.exclude(pk=every_pattern[0].pk).delete()
    with django_assert_num_queries(QUEUE_QUERIES):
        client.get(reverse("records:alert-list"))


# Session and its user, the session's second-factor device, the acting role profile and role, the reviewer
# check, the alerts, the frame's grants.
QUEUE_QUERIES = 7


def test_a_pattern_alerts_page_names_the_patient_and_its_review_is_recorded_once(client, cast, every_pattern):
    volume = Alert.objects.get(kind=Kind.UNUSUAL_VOLUME)
    client.force_login(cast.privacy_fay)
    url = reverse("records:alert-detail", kwargs={"alert_id": volume.pk})

    page = client.get(url).content.decode()
    reviewed = client.post(url, {"outcome": "appropriate", "note": "Vaccination clinic"})
    again = client.post(url, {"outcome": "inappropriate", "note": "second thoughts"})

    assert "Far more patients in an hour than usual" in page
    assert "Patient of the latest access that hour" in page and "Found" in page
    assert "2 patients between 23:00 and 00:00" in page
    assert reviewed.status_code == again.status_code == 303
    volume.refresh_from_db()
    assert (volume.outcome, volume.review_note, volume.reviewed_by_username) == (
        Alert.Outcome.APPROPRIATE,
        "Vaccination clinic",
        "privacy.fay",
    )
    opened = AccessEvent.objects.filter(action=AccessEvent.Action.READ_AUDIT, user_id=cast.privacy_fay.pk)
    assert opened.filter(patient_id=volume.patient_id, outcome=AccessEvent.Outcome.ALLOWED).exists()


@pytest.mark.parametrize("who", ["gp_ada", "ed_cara", "admin_gus"])
def test_no_one_but_a_privacy_officer_sees_a_pattern_alert(client, cast, every_pattern, who):
    own = Alert.objects.get(kind=Kind.OWN_RECORD)
    client.force_login(getattr(cast, who))
    url = reverse("records:alert-detail", kwargs={"alert_id": own.pk})

    responses = [
        client.get(reverse("records:alert-list")),
        client.get(url),
        client.post(url, {"outcome": "appropriate"}),
    ]

    assert [response.status_code for response in responses] == [404, 404, 404]
    for response in responses:
        text = response.content.decode()
        assert own.reference not in text
        for value in PATIENT_FIELDS:
            assert value not in text
    refused = AccessEvent.objects.get(action=AccessEvent.Action.READ_AUDIT)
    assert (refused.outcome, refused.user_id, refused.patient_id) == (
        AccessEvent.Outcome.DENIED,
        getattr(cast, who).pk,
        None,
    )
    own.refresh_from_db()
    assert own.is_open


# A feed's relationship rate, and the change history of derived relationships.


@pytest.fixture
def ed_feed(cast):
    return feed_upsert(code="cuh-ed", organisation=cast.cuh, name="Emergency department", sections=[])


def attendances(feed, held: list[Patient], tag: str) -> IngestRun:
    return ingest(feed, *(encounter(f"{tag}-{patient.pk}", patient) for patient in held))


def test_a_run_creating_far_more_relationships_than_its_feed_usually_does_is_alerted(cast, settings, ed_feed):
    settings.ALERT_FEED_RELATIONSHIPS_MINIMUM, settings.ALERT_FEED_RELATIONSHIPS_FACTOR = 3, 2
    held = patients(9)
    attendances(ed_feed, held[:2], "first")
    attendances(ed_feed, held[2:4], "second")
    surge = attendances(ed_feed, held[4:9], "surge")

    assert suspicious_access_scan(now=surge.finished_at + timedelta(minutes=1)) == 1

    alert = Alert.objects.get()
    assert (alert.kind, alert.reference, alert.user_id, alert.patient_id) == (
        Kind.FEED_RELATIONSHIP_RATE,
        f"FEED-{surge.pk}",
        None,
        None,
    )
    assert alert.reason == (
        f"Run {surge.pk} of Emergency department (cuh-ed) created 5 relationships; the median of its previous 2 "
        "runs is 2 (alerted above 4)."
    )
    assert AlertScan.objects.get(rule=FEED_RULE).last_event_id == surge.pk
    assert suspicious_access_scan(now=surge.finished_at + timedelta(minutes=6)) == 0


def test_a_run_at_its_feeds_threshold_or_a_feeds_first_run_is_not_alerted(cast, settings, ed_feed):
    settings.ALERT_FEED_RELATIONSHIPS_MINIMUM, settings.ALERT_FEED_RELATIONSHIPS_FACTOR = 3, 2
    held = patients(12)
    attendances(ed_feed, held[:8], "first")
    attendances(ed_feed, held[8:10], "second")
    attendances(ed_feed, held[10:12], "third")
    # The median of 8, 2 and 2 is 2: alerted above 4.
    last = attendances(ed_feed, patients(4, start=700), "fourth")

    suspicious_access_scan(now=last.finished_at + timedelta(minutes=1))

    assert kinds() == []


def test_the_feed_rule_waits_for_a_run_still_going_and_passes_one_a_dead_worker_left(cast, ed_feed):
    done = attendances(ed_feed, patients(1), "done")
    going = IngestRun.objects.create(feed=ed_feed, started_at=done.finished_at)
    now = done.finished_at + timedelta(minutes=5)

    suspicious_access_scan(now=now)
    assert AlertScan.objects.get(rule=FEED_RULE).last_event_id < going.pk

    suspicious_access_scan(now=going.started_at + timedelta(days=1))
    assert AlertScan.objects.get(rule=FEED_RULE).last_event_id == going.pk


def _history(relationship_id: int) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(LegitimateRelationship), object_id=relationship_id
        ).order_by("pk")
    )


def test_relationships_a_run_creates_changes_and_removes_are_in_the_change_history_with_feed_and_run(
    cast, ed_feed
):
    (patient,) = patients(1)
    seen = attendances(ed_feed, [patient], "visit")
    relationship = LegitimateRelationship.objects.get(content_object=patient)
    admitted = ingest(
        ed_feed, encounter(f"visit-{patient.pk}", patient, status="in-progress", encounter_class="IMP")
    )
    withdrawn = ingest(ed_feed, encounter(f"visit-{patient.pk}", patient, status="entered-in-error"))

    assert not LegitimateRelationship.objects.filter(content_object=patient).exists()
    created, changed, removed = _history(relationship.pk)
    assert [entry.action for entry in (created, changed, removed)] == [
        LogEntry.Action.CREATE,
        LogEntry.Action.UPDATE,
        LogEntry.Action.DELETE,
    ]
    assert {entry.actor_id for entry in (created, changed, removed)} == {None}
    assert created.object_repr == f"Open or recent care event relationship {relationship.pk}"
    assert created.changes["basis"] == ["None", "care-event"]
    assert created.changes["source_feed"] == ["None", str(ed_feed.pk)]
    assert created.changes["source_run"] == ["None", str(seen.pk)]
    assert created.additional_data == {
        "derived_by": f"derived by sharedcare from feed cuh-ed run {seen.pk}",
        "feed_id": ed_feed.pk,
        "feed": "cuh-ed",
        "run_id": seen.pk,
    }
    assert changed.changes["valid_until"][1] == "None" and changed.changes["valid_until"][0] != "None"
    assert changed.changes["source_run"] == [str(seen.pk), str(admitted.pk)]
    assert "basis" not in changed.changes
    assert changed.additional_data["run_id"] == admitted.pk
    assert removed.changes["basis"] == ["care-event", "None"]
    assert removed.additional_data["run_id"] == admitted.pk
    assert withdrawn.status == IngestRun.Status.SUCCEEDED
    # The description names the partner's resource; it is masked here as on a relationship saved one by one.
    assert relationship.source_description
    assert created.changes["source_description"] == ["None", "(given, not copied here)"]
    for entry in (created, changed, removed):
        assert patient.nhs_number not in str(entry.changes) + entry.object_repr
        assert relationship.source_description not in str(entry.changes)


def test_a_refresh_writes_its_history_in_one_insert(cast, ed_feed, django_assert_max_num_queries):
    from consent.services import relationships_refresh

    held = patients(20)
    attendances(ed_feed, held, "batch")
    LegitimateRelationship.objects.filter(content_object__in=held).delete()

    with django_assert_max_num_queries(20) as captured:
        relationships_refresh([patient.pk for patient in held])

    inserts = [
        query for query in captured.captured_queries if 'INSERT INTO "auditlog_logentry"' in query["sql"]
    ]
    assert len(inserts) == 1
    assert (
        LogEntry.objects.filter(action=LogEntry.Action.CREATE, additional_data__feed="cuh-ed").count() == 40
    )


# The back office: a user's identity, and its masked history.


def test_a_staff_identity_is_edited_on_the_users_page_and_its_history_shows_no_value(admin_client, cast):
    page = admin_client.get(reverse("admin:auth_user_change", args=[cast.gp_ada.pk]))
    saved = identity(cast.gp_ada, nhs_number="9990000018")

    assert page.status_code == 200 and "Identity (as HR holds it" in page.content.decode()
    entry = LogEntry.objects.get_for_object(saved).get()
    for field in ("nhs_number", "family_name", "birth_date", "postcode", "address_line"):
        assert entry.changes[field] == ["", "(recorded)"]
    assert "Ashby" not in str(entry.changes) and "9990000018" not in str(entry.changes)


def test_a_feed_rate_alert_reads_as_raised_by_sharedcare_and_names_no_patient(
    client, cast, settings, ed_feed
):
    settings.ALERT_FEED_RELATIONSHIPS_MINIMUM, settings.ALERT_FEED_RELATIONSHIPS_FACTOR = 1, 1
    held = patients(3)
    attendances(ed_feed, held[:1], "first")
    surge = attendances(ed_feed, held[1:], "surge")
    suspicious_access_scan(now=surge.finished_at + timedelta(minutes=1))
    alert = Alert.objects.get()
    client.force_login(cast.privacy_fay)

    listing = client.get(reverse("records:alert-list")).content.decode()
    detail = client.get(reverse("records:alert-detail", kwargs={"alert_id": alert.pk})).content.decode()

    for page in (listing, detail):
        assert "Raised by sharedcare (feed check)" in page
        assert "A feed created relationships at an unusual rate" in page
        assert f"Run {surge.pk} of Emergency department (cuh-ed) created 2 relationships" in page
    assert "None named: the alert is about a feed's run, not an access" in detail
    assert "did with this patient" not in detail


# Two scans at once, and the task through a real Celery worker: these commit, as other processes must see the
# rows.


def test_two_scans_at_once_raise_one_alert_and_judge_each_event_once(transactional_db, cast):
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    last = view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))
    start = threading.Barrier(2)
    raised: list[int] = []

    def scan() -> None:
        start.wait()
        raised.append(suspicious_access_scan(now=NOW))

    threads = [threading.Thread(target=in_own_thread, args=(scan,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(raised) == [0, 1]
    assert kinds() == [Kind.RESTRICTED_PATIENT]
    assert set(AlertScan.objects.exclude(rule=FEED_RULE).values_list("last_event_id", flat=True)) == {last.pk}


WORKER_OPTIONS = ("--pool", "solo", "--without-mingle", "--without-gossip", "--loglevel", "INFO")


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path) -> Iterator[str]:
    """A Celery worker in a process of its own, on the test database and a Redis database of its own; yields the
    broker's URL."""
    database = urlsplit(os.environ["DATABASE_URL"])
    redis_url = re.sub(r"/\d+$", "/3", os.environ["REDIS_URL"])
    redis.Redis.from_url(redis_url).flushdb()
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "sharedcare", "worker", *WORKER_OPTIONS],
        env={
            **os.environ,
            "DATABASE_URL": urlunsplit(database._replace(path="/" + connection.settings_dict["NAME"])),
            "REDIS_URL": redis_url,
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield redis_url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        print(log.read_text(errors="replace")[-4000:])


def test_the_scan_task_runs_on_a_real_worker(cast, celery_worker_process):
    Patient.objects.filter(pk=cast.patient_a.pk).update(is_restricted=True)
    view(cast.gp_ada, cast.patient_a, TUESDAY.replace(hour=10))

    with app.connection_for_write(celery_worker_process) as broker:
        suspicious_access_scan_task.apply_async(connection=broker)

    # Waits for the worker, however slow the machine; the deadline only ends a test that would otherwise hang.
    deadline = time.monotonic() + 120
    while not Alert.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kinds() == [Kind.RESTRICTED_PATIENT]
    assert AlertScan.objects.filter(rule=Kind.RESTRICTED_PATIENT, scanned_at__isnull=False).exists()
