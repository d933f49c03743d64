"""The Django admin: partners, users and roles, runs, quarantine, and a read-only audit that is itself audited."""

import pytest
from django.urls import reverse

from audit.models import AccessEvent
from records.models import Organisation


@pytest.mark.parametrize(
    "name",
    [
        "admin:records_organisation_changelist",
        "admin:records_feed_changelist",
        "admin:records_ingestrun_changelist",
        "admin:records_quarantinedrecord_changelist",
        "admin:auth_user_changelist",
        "admin:audit_accessevent_changelist",
    ],
)
def test_back_office_pages_open_for_the_administrator(admin_client, name):
    assert admin_client.get(reverse(name)).status_code == 200


def test_admin_has_no_patient_or_record_pages(admin_client):
    from django.contrib import admin

    registered = {model._meta.label for model in admin.site._registry}
    assert "records.Patient" not in registered
    assert "records.RecordEntry" not in registered
    assert "consent.LegitimateRelationship" not in registered


def test_access_events_are_read_only_in_the_admin(admin_client, cast):
    admin_client.get(reverse("admin:audit_accessevent_changelist"))
    event = AccessEvent.objects.first()
    url = reverse("admin:audit_accessevent_change", args=[event.pk])
    response = admin_client.post(url, {"username": "tampered"})
    assert response.status_code == 403
    assert admin_client.post(reverse("admin:audit_accessevent_delete", args=[event.pk])).status_code == 403
    assert admin_client.get(reverse("admin:audit_accessevent_add")).status_code == 403
    event.refresh_from_db()
    assert event.username == "admin.gus"


def test_reading_the_audit_is_audited(admin_client, cast):
    admin_client.get(reverse("admin:audit_accessevent_changelist"))
    event = AccessEvent.objects.get()
    assert event.action == AccessEvent.Action.READ_AUDIT
    assert event.purpose == AccessEvent.Purpose.AUDIT
    assert event.username == "admin.gus"


def test_organisation_added_in_admin_gets_its_group(admin_client):
    response = admin_client.post(
        reverse("admin:records_organisation_add"),
        {"ods_code": "RGN", "name": "North West Anglia", "kind": "acute-trust", "is_active": "on"},
    )
    assert response.status_code == 302
    assert Organisation.objects.get(ods_code="RGN").group.name == "organisation:RGN"


def test_bad_ods_code_is_refused_with_a_message(admin_client):
    response = admin_client.post(
        reverse("admin:records_organisation_add"),
        {"ods_code": "rgn!", "name": "Bad", "kind": "acute-trust", "is_active": "on"},
    )
    assert response.status_code == 200
    assert b"An ODS code is 3 to 6 capital letters" in response.content
    assert not Organisation.objects.filter(name="Bad").exists()


def test_clinician_cannot_open_the_back_office(client, cast):
    client.force_login(cast.gp_ada)
    response = client.get(reverse("admin:audit_accessevent_changelist"))
    assert response.status_code == 302
    assert not AccessEvent.objects.exists()


def test_changes_to_partners_and_roles_are_recorded_by_auditlog(admin_client, cast):
    from auditlog.models import LogEntry

    from consent.models import StaffProfile

    organisation = cast.cuh
    response = admin_client.post(
        reverse("admin:records_organisation_change", args=[organisation.pk]),
        {"ods_code": "RGT", "name": "CUH renamed", "kind": "acute-trust", "is_active": "on"},
    )
    assert response.status_code == 302
    change = LogEntry.objects.get_for_object(organisation).latest("timestamp")
    assert change.actor == cast.admin_gus
    assert change.changes_dict["name"] == ["Cambridge University Hospitals", "CUH renamed"]

    profile = StaffProfile.objects.get(user=cast.gp_ben)
    profile.job_role = "R8008"
    profile.save()
    assert LogEntry.objects.get_for_object(profile).latest("timestamp").changes_dict["job_role"] == [
        "R8000",
        "R8008",
    ]


def test_the_user_page_assigns_the_partners_a_user_supports_and_auditlog_records_it(admin_client, cast):
    from auditlog.models import LogEntry

    from consent.models import FeedSupportAssignment
    from consent.services import feed_support_grant

    feed_support_grant(user_id=cast.admin_gus.pk, organisations=[cast.cuh])

    page = admin_client.get(reverse("admin:auth_user_change", args=[cast.admin_gus.pk])).content.decode()

    assert "Partners whose feeds this user supports" in page
    assert "Can support partner feeds" in page
    assignment = FeedSupportAssignment.objects.get(user=cast.admin_gus)
    assert assignment.organisation == cast.cuh
    assert LogEntry.objects.get_for_object(assignment).exists()
