"""Partner keys: made by a command or the back office, shown once, stored as a hash; the back office pages."""

import hashlib
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from consent.services import feed_support_grant
from records.models import PartnerCredential, PushAttempt, PushedBatch
from tests.builders import bundle, condition, push

# Nothing a view queues reaches the broker; tests run the service themselves.
pytestmark = pytest.mark.usefixtures("_no_queueing")

KEY = re.compile(r"sc_[A-Za-z0-9_-]{43}")


def test_the_command_prints_a_key_once_that_authenticates(api, cast, hospital_feed):
    out, err = StringIO(), StringIO()

    call_command(
        "partner_credential_create",
        "--organisation",
        "rgt",
        "--name",
        "EPR interface",
        stdout=out,
        stderr=err,
    )

    key = out.getvalue().strip()
    assert KEY.fullmatch(key)
    assert "shown again" in err.getvalue() and key not in err.getvalue()
    credential = PartnerCredential.objects.get()
    assert (credential.organisation, credential.name, credential.is_active) == (
        cast.cuh,
        "EPR interface",
        True,
    )
    assert credential.key_prefix == key[:12]
    assert credential.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), key).status_code == 202


def test_the_command_refuses_a_partner_that_does_not_exist(cast):
    with pytest.raises(CommandError, match="no partner with the ODS code 'NOPE'"):
        call_command("partner_credential_create", "--organisation", "NOPE", "--name", "x", stdout=StringIO())

    assert not PartnerCredential.objects.exists()


def test_the_command_refuses_a_partner_that_left(cast):
    cast.cuh.is_active = False
    cast.cuh.save()

    with pytest.raises(CommandError, match="not an active partner"):
        call_command("partner_credential_create", "--organisation", "RGT", "--name", "x", stdout=StringIO())


def test_the_back_office_creates_a_key_and_shows_it_once(client, api, cast, hospital_feed):
    client.force_login(cast.admin_gus)

    response = client.post(
        reverse("admin:records_partnercredential_add"),
        {"organisation": cast.cuh.pk, "name": "EPR interface"},
        follow=True,
    )

    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    keys = [match for message in shown for match in KEY.findall(message)]
    assert len(keys) == 1
    credential = PartnerCredential.objects.get()
    assert credential.key_hash == hashlib.sha256(keys[0].encode()).hexdigest()
    assert keys[0] not in client.get(reverse("admin:records_partnercredential_changelist")).content.decode()
    page = client.get(
        reverse("admin:records_partnercredential_change", args=[credential.pk])
    ).content.decode()
    assert keys[0] not in page and credential.key_hash not in page
    assert push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), keys[0]).status_code == 202


def test_the_back_office_withdraws_a_key_and_it_stops_working(client, api, cast, hospital_feed, hospital_key):
    client.force_login(cast.admin_gus)
    credential = PartnerCredential.objects.get()

    client.post(
        reverse("admin:records_partnercredential_changelist"),
        {"action": "withdraw", "_selected_action": [credential.pk]},
    )

    credential.refresh_from_db()
    assert credential.is_active is False
    assert (
        push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key).status_code
        == 401
    )


def test_the_back_office_lists_batches_and_attempts_without_payloads(
    client, api, cast, hospital_feed, hospital_key
):
    push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)
    push(api, hospital_feed.code, b"{}", "sc_" + "C" * 43)
    batch, attempt = PushedBatch.objects.get(), PushAttempt.objects.filter(outcome="accepted").get()
    client.force_login(cast.admin_gus)
    feed_support_grant(user_id=cast.admin_gus.pk, organisations=[hospital_feed.organisation])

    pages = [
        client.get(reverse("admin:records_pushedbatch_changelist")),
        client.get(reverse("admin:records_pushedbatch_change", args=[batch.pk])),
        client.get(reverse("admin:records_pushattempt_changelist") + "?outcome=unauthenticated"),
        client.get(reverse("admin:records_pushattempt_change", args=[attempt.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        assert cast.patient_a.nhs_number not in page.content.decode()
    assert "sc_CCCCCCCCC" in pages[2].content.decode()


def test_the_back_office_cannot_add_change_or_delete_attempts_or_batches(
    client, api, cast, hospital_feed, hospital_key
):
    push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)
    attempt, batch = PushAttempt.objects.get(), PushedBatch.objects.get()
    client.force_login(cast.admin_gus)

    assert client.get(reverse("admin:records_pushattempt_add")).status_code == 403
    assert client.get(reverse("admin:records_pushedbatch_add")).status_code == 403
    assert client.post(reverse("admin:records_pushattempt_delete", args=[attempt.pk])).status_code == 403
    assert client.post(reverse("admin:records_pushedbatch_delete", args=[batch.pk])).status_code == 403
    client.post(reverse("admin:records_pushattempt_change", args=[attempt.pk]), {"outcome": "forbidden"})
    attempt.refresh_from_db()
    assert attempt.outcome == "accepted"


def test_the_back_office_requeues_a_failed_batch(
    client, api, cast, hospital_feed, hospital_key, _no_queueing, django_capture_on_commit_callbacks
):
    push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)
    batch = PushedBatch.objects.get()
    PushedBatch.objects.filter(pk=batch.pk).update(status=PushedBatch.Status.FAILED, error="it broke")
    client.force_login(cast.admin_gus)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:records_pushedbatch_changelist"),
            {"action": "process_again", "_selected_action": [batch.pk]},
            follow=True,
        )

    batch.refresh_from_db()
    assert (batch.status, batch.error) == (PushedBatch.Status.PENDING, "")
    assert batch.pk in _no_queueing
    assert "Queued 1" in " ".join(str(message) for message in response.context["messages"])


def test_clinicians_do_not_reach_the_partner_key_pages(client, cast):
    client.force_login(cast.gp_ada)

    response = client.get(reverse("admin:records_partnercredential_changelist"))

    assert response.status_code == 302


@pytest.mark.parametrize("query", ["batch", "not-a-uuid", "0" * 64])
def test_the_back_office_finds_a_batch_by_its_id_and_survives_anything_else(
    client, api, cast, hospital_feed, hospital_key, query
):
    push(api, hospital_feed.code, bundle(condition("c1", cast.patient_a)), hospital_key)
    batch = PushedBatch.objects.get()
    client.force_login(cast.admin_gus)
    changelist = reverse("admin:records_pushedbatch_changelist")

    found = client.get(changelist, {"q": str(batch.public_id)})
    other = client.get(changelist, {"q": query})

    assert found.status_code == 200 and str(batch.public_id) in found.content.decode()
    assert other.status_code == 200
