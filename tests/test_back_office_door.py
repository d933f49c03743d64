"""Feed support through the door: who may open and reveal what a partner sent, masking, and the audit of both."""

import re
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent
from consent.models import FeedSupportAssignment, LegitimateRelationship
from consent.policy import feed_support_decide, supported_organisations
from consent.services import feed_support_grant
from records.backoffice.quarantine import NHS_NUMBER_SEARCH_FIELD
from records.backoffice.support import REVEAL_BUTTON
from records.models import IngestRun, PartnerCredential, PushedBatch, QuarantinedRecord

Action = AccessEvent.Action
Outcome = AccessEvent.Outcome
PAYLOAD = '{"resourceType": "Condition", "id": "payload-marker-7d1f", "note": "PAYLOAD-TEXT-ONLY"}'
DETAIL = "DETAIL-QUOTING-PAYLOAD: subject 9990000018 is not held"
ERROR = "ERROR-QUOTING-PAYLOAD: cannot parse Ms Ashby, 9990000018"


def _back_office_user(username: str):
    """A staff user who may view quarantined records, ingest runs and pushed batches in the admin."""
    user = get_user_model().objects.create_user(username=username, password="x", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="records",
            codename__in=["view_quarantinedrecord", "view_ingestrun", "view_pushedbatch"],
        )
    )
    return user


@pytest.fixture
def supporter(cast):
    """A back-office user with the feed-support permission, supporting the hospital only."""
    user = _back_office_user("support.hal")
    feed_support_grant(user_id=user.pk, organisations=[cast.cuh])
    return user


@pytest.fixture
def records_(cast):
    """What the hospital's feed sent: a quarantined record naming patient A, a failed run and a failed batch."""
    run = IngestRun.objects.create(feed=cast.cuh_feed, status=IngestRun.Status.FAILED, error=ERROR)
    record = QuarantinedRecord.objects.create(
        feed=cast.cuh_feed,
        ingest_run=run,
        reason=QuarantinedRecord.Reason.UNKNOWN_PATIENT,
        detail=DETAIL,
        resource_type="Condition",
        source_id="payload-marker-7d1f",
        raw_payload=PAYLOAD,
        payload_hash="0" * 64,
        nhs_number=cast.patient_a.nhs_number,
    )
    credential = PartnerCredential.objects.create(
        organisation=cast.cuh, name="EPR", key_prefix="sc_abcdefgh", key_hash="1" * 64
    )
    batch = PushedBatch.objects.create(
        feed=cast.cuh_feed,
        credential=credential,
        content_type="application/fhir+json",
        payload=PAYLOAD.encode(),
        size=len(PAYLOAD),
        checksum="2" * 64,
        status=PushedBatch.Status.FAILED,
        error=ERROR,
    )
    return {"quarantinedrecord": record, "ingestrun": run, "pushedbatch": batch}


# Each admin page that shows what a partner sent, with the texts it masks.
PAGES = {"quarantinedrecord": (DETAIL, PAYLOAD), "ingestrun": (ERROR,), "pushedbatch": (ERROR,)}


def _change(model: str, pk: int) -> str:
    return reverse(f"admin:records_{model}_change", args=[pk])


def _reveal(model: str, pk: int) -> str:
    return reverse(f"admin:records_{model}_reveal", args=[pk])


def _leaks(body: str, texts) -> bool:
    return any(text in body or text.replace('"', "&quot;") in body for text in texts)


@pytest.mark.parametrize("model", sorted(PAGES))
def test_a_supporter_opens_the_page_masked_and_the_opening_is_audited(
    client, cast, supporter, records_, model
):
    obj = records_[model]
    client.force_login(supporter)

    response = client.get(_change(model, obj.pk))

    assert response.status_code == 200
    body = response.content.decode()
    assert not _leaks(body, PAGES[model])
    assert "Masked:" in body
    assert f'formaction="{_reveal(model, obj.pk)}"' in body and REVEAL_BUTTON in body
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.purpose, event.user_id) == (
        Action.VIEW_DOCUMENT,
        Outcome.ALLOWED,
        AccessEvent.Purpose.FEED_SUPPORT,
        supporter.pk,
    )
    assert event.basis == "feed-support:RGT"
    assert event.reason == f"{obj._meta.verbose_name} {obj.pk}"


@pytest.mark.parametrize("model", sorted(PAGES))
def test_a_supporter_reveals_by_post_and_the_reveal_is_its_own_event(
    client, cast, supporter, records_, model
):
    obj = records_[model]
    client.force_login(supporter)

    response = client.post(_reveal(model, obj.pk))

    assert response.status_code == 200
    body = response.content.decode()
    for text in PAGES[model]:
        assert text.replace('"', "&quot;") in body or text in body
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.purpose) == (
        Action.REVEAL,
        Outcome.ALLOWED,
        AccessEvent.Purpose.FEED_SUPPORT,
    )


@pytest.mark.parametrize("model", sorted(PAGES))
def test_a_reveal_is_never_a_get(client, supporter, records_, model):
    client.force_login(supporter)

    response = client.get(_reveal(model, records_[model].pk))

    assert response.status_code == 405
    assert not _leaks(response.content.decode(), PAGES[model])
    assert not AccessEvent.objects.exists()


def _without_permission(cast):
    # The superuser of the back office, assigned to the hospital but not holding the permission.
    FeedSupportAssignment.objects.create(user=cast.admin_gus, organisation=cast.cuh)
    return cast.admin_gus


def _without_assignment(cast):
    # Holding the permission, but supporting another partner.
    user = _back_office_user("support.ivy")
    feed_support_grant(user_id=user.pk, organisations=[cast.cpft])
    return user


@pytest.mark.parametrize("who", [_without_permission, _without_assignment])
@pytest.mark.parametrize("model", sorted(PAGES))
def test_without_permission_and_assignment_the_page_is_as_missing_and_the_denial_audited(
    client, cast, records_, model, who
):
    user = who(cast)
    obj = records_[model]
    client.force_login(user)
    before = {model: obj.__class__.objects.filter(pk=obj.pk).values().get()}

    opened = client.get(_change(model, obj.pk), follow=True)
    revealed = client.post(_reveal(model, obj.pk), follow=True)
    missing = client.get(_change(model, 999999), follow=True)

    as_missing = [str(message).replace("999999", str(obj.pk)) for message in missing.context["messages"]]
    assert as_missing
    for response in (opened, revealed):
        assert response.redirect_chain == [(reverse("admin:index"), 302)]
        assert not _leaks(response.content.decode(), PAGES[model])
        assert [str(message) for message in response.context["messages"]] == as_missing
    events = list(AccessEvent.objects.order_by("id").values_list("action", "outcome", "purpose", "user_id"))
    assert events == [
        (Action.VIEW_DOCUMENT, Outcome.DENIED, AccessEvent.Purpose.FEED_SUPPORT, user.pk),
        (Action.REVEAL, Outcome.DENIED, AccessEvent.Purpose.FEED_SUPPORT, user.pk),
    ]
    assert obj.__class__.objects.filter(pk=obj.pk).values().get() == before[model]


def test_opening_a_quarantined_record_is_in_the_access_report_of_the_patient_it_names(
    client, cast, supporter, records_
):
    client.force_login(supporter)

    client.get(_change("quarantinedrecord", records_["quarantinedrecord"].pk))
    client.post(_reveal("quarantinedrecord", records_["quarantinedrecord"].pk))

    assert list(AccessEvent.objects.values_list("patient_id", flat=True)) == [cast.patient_a.pk] * 2


def test_a_superuser_alone_sees_no_quarantined_record_and_no_payload(client, cast, records_):
    client.force_login(cast.admin_gus)

    listed = client.get(reverse("admin:records_quarantinedrecord_changelist"))

    assert listed.status_code == 200
    body = listed.content.decode()
    assert "payload-marker-7d1f" not in body
    assert not _leaks(body, PAGES["quarantinedrecord"])


def test_the_quarantine_list_holds_only_the_partners_a_user_supports(client, cast, supporter, records_):
    other_run = IngestRun.objects.create(feed=cast.cpft_feed, status=IngestRun.Status.SUCCEEDED)
    QuarantinedRecord.objects.create(
        feed=cast.cpft_feed,
        ingest_run=other_run,
        reason=QuarantinedRecord.Reason.INVALID_RESOURCE,
        detail="invalid",
        source_id="cpft-only",
        raw_payload="{}",
        payload_hash="3" * 64,
    )
    client.force_login(supporter)

    body = client.get(reverse("admin:records_quarantinedrecord_changelist")).content.decode()

    assert set(re.findall(r'<td class="field-source_id">([^<]*)</td>', body)) == {"payload-marker-7d1f"}


def test_an_nhs_number_search_without_the_permission_finds_nothing_and_is_audited_as_denied(
    client, cast, records_
):
    client.force_login(cast.admin_gus)

    response = client.post(
        reverse("admin:records_quarantinedrecord_changelist"),
        {NHS_NUMBER_SEARCH_FIELD: cast.patient_a.nhs_number},
    )

    assert response.status_code == 200
    assert "payload-marker-7d1f" not in response.content.decode()
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.purpose, event.query, event.patient_id) == (
        Action.SEARCH,
        Outcome.DENIED,
        AccessEvent.Purpose.FEED_SUPPORT,
        cast.patient_a.nhs_number,
        cast.patient_a.pk,
    )


def test_an_nhs_number_search_by_a_supporter_is_audited_as_allowed(client, cast, supporter, records_):
    client.force_login(supporter)

    response = client.post(
        reverse("admin:records_quarantinedrecord_changelist"),
        {NHS_NUMBER_SEARCH_FIELD: cast.patient_a.nhs_number},
    )

    assert "payload-marker-7d1f" in response.content.decode()
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.basis, event.patient_id) == (
        Action.SEARCH,
        Outcome.ALLOWED,
        "feed-support:RGT",
        cast.patient_a.pk,
    )


def test_the_change_log_shows_no_relationship_or_quarantined_record(client, cast, records_):
    relationship = LegitimateRelationship.objects.filter(content_object=cast.patient_a).first()
    relationship.valid_until = timezone.now() + timedelta(days=1)
    relationship.save()
    hidden = LogEntry.objects.get_for_object(relationship).filter(action=LogEntry.Action.UPDATE).get()
    assert LogEntry.objects.get_for_object(records_["quarantinedrecord"]).exists()
    shown = LogEntry.objects.get_for_object(cast.cuh).first()
    client.force_login(cast.admin_gus)

    listed = client.get(reverse("admin:auditlog_logentry_changelist"))
    opened = client.get(reverse("admin:auditlog_logentry_change", args=[hidden.pk]))

    assert listed.status_code == 200
    body = listed.content.decode()
    assert reverse("admin:auditlog_logentry_change", args=[shown.pk]) in body
    assert reverse("admin:auditlog_logentry_change", args=[hidden.pk]) not in body
    assert str(relationship) not in body and cast.patient_a.nhs_number not in body
    assert opened.status_code == 302


def test_feed_support_rules_and_list_never_disagree(cast, supporter):
    users = [supporter, _without_assignment(cast), _without_permission(cast), cast.gp_ada, cast.privacy_fay]
    for user in users:
        for action in AccessEvent.Action:
            for purpose in AccessEvent.Purpose:
                listed = set(supported_organisations(user, action, purpose))
                for organisation in [cast.cuh, cast.cpft, cast.practice_a]:
                    decided = feed_support_decide(user, organisation, action, purpose).allowed
                    assert decided == (organisation in listed), (user, action, purpose, organisation)


def test_feed_support_is_refused_to_inactive_and_non_staff_users(cast, supporter):
    assert feed_support_decide(supporter, cast.cuh, Action.REVEAL).allowed
    supporter.is_staff = False
    assert not feed_support_decide(supporter, cast.cuh, Action.REVEAL).allowed
    supporter.is_staff, supporter.is_active = True, False
    assert not feed_support_decide(supporter, cast.cuh, Action.REVEAL).allowed
    supporter.is_active = True
    assert not feed_support_decide(supporter, None, Action.REVEAL).allowed
    assert not feed_support_decide(supporter, cast.cuh, Action.VIEW_RECORD).allowed
    assert not feed_support_decide(
        supporter, cast.cuh, Action.REVEAL, AccessEvent.Purpose.DIRECT_CARE
    ).allowed


@pytest.mark.parametrize("model", sorted(PAGES))
def test_staff_without_the_admins_view_permission_are_refused_before_anything_is_looked_up(
    client, cast, records_, model
):
    user = get_user_model().objects.create_user(username="staff.joe", password="x", is_staff=True)
    feed_support_grant(user_id=user.pk, organisations=[cast.cuh])
    client.force_login(user)

    for response in (
        client.get(_change(model, records_[model].pk)),
        client.post(_reveal(model, records_[model].pk)),
    ):
        assert response.status_code == 403
        assert not _leaks(response.content.decode(), PAGES[model])
    assert not AccessEvent.objects.exists()
