"""The privacy officers' daily digest: each privacy officer with an e-mail address gets one a day saying how many
alerts are open by kind, how long the oldest has waited and how many objections and subject access requests are
open and overdue, with a link to where they are worked, and nothing naming a patient; no one else gets it."""

import socket
from datetime import UTC, date, datetime, timedelta

import pytest
from celery.schedules import crontab
from django.core import mail
from django.core.cache import cache
from django.urls import NoReverseMatch, reverse

from audit.models import Alert
from consent.digest import alert_digest_send
from consent.models import Objection, SubjectAccessRequest
from consent.roles import JobRole
from consent.tasks import alert_digest_send_task
from sharedcare.celery import app
from tests.builders import make_user

NOW = datetime(2031, 3, 2, 7, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh(settings) -> None:
    cache.clear()  # the day's sent marks live in Redis
    settings.SITE_URL = "https://sharedcare.example.nhs.uk"


@pytest.fixture
def officer(cast):
    cast.privacy_fay.email = "fay@example.nhs.uk"
    cast.privacy_fay.save(update_fields=["email"])
    for user in (cast.gp_ada, cast.admin_gus):
        user.email = f"{user.username}@example.nhs.uk"
        user.save(update_fields=["email"])
    return cast.privacy_fay


def objection(reference: str, *, due_at: datetime, status: str = Objection.Status.RECEIVED) -> Objection:
    return Objection.objects.create(
        reference=reference,
        channel=Objection.Channel.LETTER,
        status=status,
        given_name="Tamsin",
        family_name="Sedgwick",
        nhs_number="9449306613",
        birth_date=date(1980, 5, 1),
        contact_by=Objection.ContactBy.POST,
        contact_detail="1 Mill Road, Cambridge",
        received_at=due_at - timedelta(days=30),
        due_at=due_at,
    )


def access_request(reference: str, *, due_at: datetime) -> SubjectAccessRequest:
    return SubjectAccessRequest.objects.create(
        reference=reference,
        channel=Objection.Channel.LETTER,
        requester_name="Brian Barton",
        contact_by=Objection.ContactBy.POST,
        contact_detail="2 Mill Road, Cambridge",
        nhs_number="9990000026",
        received_at=due_at - timedelta(days=30),
        due_at=due_at,
    )


def alert(kind: str, raised_at: datetime, *, reviewed: bool = False) -> Alert:
    return Alert.objects.create(
        kind=kind,
        reference=f"R{Alert.objects.count()}",
        username="ed.cara",
        patient_id=1,
        reason="Referral received: Brian Barton",
        raised_at=raised_at,
        reviewed_at=raised_at if reviewed else None,
        outcome=Alert.Outcome.APPROPRIATE if reviewed else "",
    )


def open_work() -> None:
    alert(Alert.Kind.SELF_CLAIM, NOW - timedelta(days=3, hours=2))
    alert(Alert.Kind.SELF_CLAIM, NOW - timedelta(hours=5))
    alert(Alert.Kind.BREAK_GLASS, NOW - timedelta(days=1))
    alert(Alert.Kind.UNUSUAL_VOLUME, NOW - timedelta(days=9), reviewed=True)
    objection("OB-OVERDUE1", due_at=NOW - timedelta(days=2))
    objection("OB-OPEN0001", due_at=NOW + timedelta(days=10))
    objection("OB-DONE0001", due_at=NOW - timedelta(days=20), status=Objection.Status.UPHELD)
    access_request("SAR-OVERDUE", due_at=NOW - timedelta(hours=1))


def console_url() -> str:
    try:
        return reverse("records:audit-console")
    except NoReverseMatch:
        return reverse("records:alert-list")


def test_each_privacy_officer_gets_a_plain_summary_of_what_is_open(officer, cast):
    open_work()

    assert alert_digest_send(now=NOW) == 1

    [message] = mail.outbox
    assert message.to == ["fay@example.nhs.uk"]
    assert message.subject == "sharedcare daily digest, 2 March 2031: 3 open alerts, 2 overdue cases"
    body = message.body
    assert "Open alerts: 3\n  Self-claimed relationship: 2\n  Break-glass access: 1\n" in body
    assert "Far more patients" not in body
    assert "The oldest has waited 3 days." in body
    assert "Objections: 2 open, 1 overdue" in body
    assert "Subject access requests: 1 open, 1 overdue" in body
    assert f"https://sharedcare.example.nhs.uk{console_url()}" in body


def test_the_digest_names_no_patient_case_or_user(officer, cast):
    open_work()
    alert_digest_send(now=NOW)
    [message] = mail.outbox
    for value in (
        "Tamsin",
        "Sedgwick",
        "9449306613",
        "944 930 6613",
        "Brian",
        "Barton",
        "9990000026",
        "OB-OVERDUE1",
        "SAR-OVERDUE",
        "ed.cara",
        "Mill Road",
        cast.patient_a.family_name,
        cast.patient_a.nhs_number,
    ):
        assert value not in message.subject + message.body


def test_no_one_but_privacy_officers_with_an_address_gets_it(officer, cast):
    make_user("privacy.gil", cast.icb, JobRole.PRIVACY_OFFICER)  # no e-mail address
    make_user("privacy.hal", cast.icb, JobRole.PRIVACY_OFFICER, email="hal@example.nhs.uk", is_active=False)

    alert_digest_send(now=NOW)

    assert [message.to for message in mail.outbox] == [["fay@example.nhs.uk"]]


def test_an_officer_gets_one_digest_a_day_however_often_it_runs(officer):
    open_work()
    assert alert_digest_send(now=NOW) == 1
    assert alert_digest_send(now=NOW + timedelta(hours=10)) == 0
    assert len(mail.outbox) == 1

    assert alert_digest_send(now=NOW + timedelta(days=1)) == 1
    assert len(mail.outbox) == 2
    assert "3 March 2031" in mail.outbox[1].subject


def test_a_quiet_day_says_nothing_is_open(officer):
    alert_digest_send(now=NOW)
    [message] = mail.outbox
    assert "Open alerts: 0\n\n" in message.body
    assert "oldest" not in message.body
    assert "Objections: 0 open, 0 overdue" in message.body


def test_a_failed_sending_is_sent_again_on_the_retry(officer, settings):
    open_work()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 2

    with pytest.raises(ConnectionRefusedError):
        alert_digest_send(now=NOW)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert alert_digest_send(now=NOW) == 1
    assert len(mail.outbox) == 1


def test_the_task_is_on_the_beat_schedule_at_seven_and_sends(officer):
    [entry] = [e for e in app.conf.beat_schedule.values() if e["task"] == "consent.alert_digest_send_task"]
    assert entry["schedule"] == crontab(hour=7, minute=0)

    assert alert_digest_send_task.apply().get() == 1
    assert len(mail.outbox) == 1
