"""The change history of who may see which patient: a patient's restricted flag as the feeds set it, relationships
(derived ones named by their feed and run), objections with their free text masked, a filter by kind, patients
named only by their opaque id; and the back office's change log, whose every reading is audited."""

from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent
from consent.grants import self_claim_create
from consent.models import LegitimateRelationship, Objection, SelfClaimedRelationship, StaffProfile
from consent.objections import objection_clinical_input_record, objection_identity_verify, objection_receive
from records.models import Patient
from tests.builders import NEWCOMER, OTHER_NEWCOMER, ingest, registration

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CLINICAL_TEXT = "Disclosed a termination of pregnancy last spring"
CLINICAL_OPINION = "Known to the perinatal mental health team"


def restricted(resource: dict) -> dict:
    return {**resource, "meta": {"security": [{"system": CONFIDENTIALITY, "code": "R"}]}}


def patient_history(patient: Patient) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Patient), object_id=patient.pk
        ).order_by("pk")
    )


# (a) The restricted flag, which the feeds write in bulk.


def test_a_patient_arriving_restricted_gets_one_entry_naming_the_feed_and_run_and_nothing_else(cast):
    run = ingest(
        cast.gp_a_feed,
        restricted(registration("p1", NEWCOMER, "D81001")),
        registration("p2", OTHER_NEWCOMER, "D81001"),
    )

    arrived = Patient.objects.get(nhs_number=NEWCOMER)
    (entry,) = patient_history(arrived)
    assert entry.actor is None
    assert entry.action == LogEntry.Action.CREATE
    assert entry.changes_dict == {"is_restricted": ["None", "True"]}
    assert entry.additional_data == {
        "feed": cast.gp_a_feed.code,
        "feed_id": cast.gp_a_feed.pk,
        "run_id": run.pk,
    }
    assert entry.object_repr == f"Patient {arrived.public_id}"
    assert NEWCOMER not in str(entry.changes) and "Newcomer" not in entry.object_repr
    assert patient_history(Patient.objects.get(nhs_number=OTHER_NEWCOMER)) == []


def test_a_change_of_the_restricted_flag_is_an_entry_and_other_changes_are_not(cast):
    ingest(cast.gp_a_feed, registration("p1", NEWCOMER, "D81001"))
    patient = Patient.objects.get(nhs_number=NEWCOMER)
    moved = {**registration("p1", NEWCOMER, "D81001"), "address": [{"line": ["1 Fen Road"], "city": "Ely"}]}
    ingest(cast.gp_a_feed, moved)
    assert patient_history(patient) == []

    run = ingest(cast.gp_a_feed, restricted(moved))

    (entry,) = patient_history(patient)
    assert entry.action == LogEntry.Action.UPDATE
    assert entry.changes_dict == {"is_restricted": ["False", "True"]}
    assert entry.additional_data["run_id"] == run.pk
    assert "Fen Road" not in str(entry.changes)


# (b) Free text that can hold clinical detail is masked.


def _objection(cast) -> Objection:
    objection, _ = objection_receive(
        channel=Objection.Channel.LETTER,
        given_name=cast.patient_a.given_name,
        family_name=cast.patient_a.family_name,
        birth_date=cast.patient_a.birth_date,
        nhs_number=cast.patient_a.nhs_number,
        address="",
        postcode="",
        contact_by=Objection.ContactBy.EMAIL,
        contact_detail="someone@example.org",
        on_behalf=Objection.OnBehalf.SELF,
        requester_name="",
        reason_text=CLINICAL_TEXT,
        scope_whole_record=True,
        scope_sections=(),
        scope_from_partners=(),
        scope_to_partners=(),
        received_at=timezone.now(),
    )
    with set_actor(cast.privacy_fay):
        objection_identity_verify(
            objection_id=objection.pk, by=cast.privacy_fay, patient_id=cast.patient_a.pk, note="Checked."
        )
        objection_clinical_input_record(
            objection_id=objection.pk, by=cast.privacy_fay, clinician="Dr Who", text=CLINICAL_OPINION
        )
    return objection


def test_an_objections_reason_and_who_it_names_are_masked_in_the_log(cast):
    objection = _objection(cast)

    logged = " ".join(str(entry.changes) for entry in LogEntry.objects.get_for_object(objection))

    assert CLINICAL_TEXT not in logged
    assert cast.patient_a.nhs_number not in logged and cast.patient_a.family_name not in logged
    assert "(given, not copied here)" in logged and "under-review" in logged


def test_a_self_claims_reason_is_masked_in_the_log(cast):
    profile = StaffProfile.objects.filter(user=cast.gp_ben).first()
    grant = self_claim_create(
        profile=profile,
        patient=cast.patient_a,
        reason_code=SelfClaimedRelationship.Reason.choices[0][0],
        reason_text=CLINICAL_TEXT,
        hours=1,
        max_hours=8,
    )

    logged = " ".join(str(entry.changes) for entry in LogEntry.objects.get_for_object(grant))

    assert CLINICAL_TEXT not in logged and "(given, not copied here)" in logged


# (c) The privacy officer's page.


def _derived_entry(cast) -> LogEntry:
    relationship = LegitimateRelationship.objects.filter(content_object=cast.patient_b).first()
    return LogEntry.objects.create(
        content_type=ContentType.objects.get_for_model(LegitimateRelationship),
        object_pk=str(relationship.pk),
        object_id=relationship.pk,
        object_repr=str(relationship),
        action=LogEntry.Action.UPDATE,
        changes={"basis": ["care-event", "registered-practice"]},
        actor=None,
        additional_data={"feed": "gp-d81002", "feed_id": cast.gp_b_feed.pk, "run_id": 42},
    )


def test_the_page_shows_relationships_objections_and_the_restricted_flag_naming_patients_by_public_id_only(
    client, cast
):
    _derived_entry(cast)
    _objection(cast)
    ingest(cast.gp_a_feed, restricted(registration("p1", NEWCOMER, "D81001")))
    newcomer = Patient.objects.get(nhs_number=NEWCOMER)
    client.force_login(cast.privacy_fay)

    page = client.get(reverse("records:change-history")).content.decode()

    assert "derived by feed gp-d81002, run 42" in page
    assert "Objection: Objection" in page and "Patient: Patient" in page
    for patient in (cast.patient_a, cast.patient_b, newcomer):
        assert reverse("records:access-report-patient", kwargs={"public_id": patient.public_id}) in page
        assert patient.nhs_number not in page and patient.family_name not in page
    assert CLINICAL_TEXT not in page and CLINICAL_OPINION not in page
    assert "(changed, not shown here)" in page
    read = AccessEvent.objects.get(username="privacy.fay")
    assert (read.action, read.outcome, read.patient_id) == (AccessEvent.Action.READ_AUDIT, "allowed", None)


def test_the_page_is_narrowed_by_the_kind_of_thing_changed(client, cast):
    _derived_entry(cast)
    _objection(cast)
    client.force_login(cast.privacy_fay)

    only_relationships = client.get(
        reverse("records:change-history"), {"kind": "relationships"}
    ).content.decode()
    only_objections = client.get(reverse("records:change-history"), {"kind": "objections"}).content.decode()

    assert (
        "derived by feed gp-d81002" in only_relationships and "Objection: Objection" not in only_relationships
    )
    assert "Objection: Objection" in only_objections and "derived by feed" not in only_objections
    queries = list(
        AccessEvent.objects.filter(username="privacy.fay").order_by("pk").values_list("query", flat=True)
    )
    assert queries == ["change history of relationships", "change history of objections"]


def test_the_page_reads_in_an_exact_number_of_queries(client, cast, django_assert_num_queries):
    _derived_entry(cast)
    ingest(cast.gp_a_feed, restricted(registration("p1", NEWCOMER, "D81001")))
    client.force_login(cast.privacy_fay)
    url = reverse("records:change-history")
    client.get(url, {"kind": "restricted"})

    # Session and user, the session's second-factor device, the role frame, the audit write under its lock,
    # the entries, their patients, the nav.
    with django_assert_num_queries(13):
        response = client.get(url, {"kind": "restricted"})

    assert response.status_code == 200


def test_no_one_but_a_privacy_officer_reads_relationship_or_objection_changes(client, cast):
    _derived_entry(cast)
    _objection(cast)
    # Signed in once first: signing admin.gus in gives him his second-factor device, itself a logged change.
    for user in (cast.gp_ada, cast.admin_gus):
        client.force_login(user)
    entries_before = LogEntry.objects.count()
    for user in (cast.gp_ada, cast.admin_gus):
        client.force_login(user)

        response = client.get(reverse("records:change-history"), {"kind": "relationships"})

        assert response.status_code == 404
        body = response.content.decode()
        assert "derived by feed" not in body and str(cast.patient_b.public_id) not in body
    denied = AccessEvent.objects.filter(
        outcome=AccessEvent.Outcome.DENIED, action=AccessEvent.Action.READ_AUDIT
    )
    assert sorted(denied.values_list("username", flat=True)) == ["admin.gus", "gp.ada"]
    assert LogEntry.objects.count() == entries_before


# The back office's change log.


def test_reading_the_admin_change_log_writes_read_audit_events(client, cast):
    client.force_login(cast.admin_gus)
    entry = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(StaffProfile)).first()

    listed = client.get(reverse("admin:auditlog_logentry_changelist"))
    opened = client.get(reverse("admin:auditlog_logentry_change", args=[entry.pk]))

    assert (listed.status_code, opened.status_code) == (200, 200)
    reads = AccessEvent.objects.filter(username="admin.gus").order_by("pk")
    assert [(event.action, event.purpose, event.patient_id) for event in reads] == [
        (AccessEvent.Action.READ_AUDIT, AccessEvent.Purpose.AUDIT, None)
    ] * 2
    assert reads.last().reason == f"change log entry {entry.pk}"


def test_the_admin_change_log_turns_clinicians_away_and_audits_nothing(client, cast):
    client.force_login(cast.gp_ada)

    response = client.get(reverse("admin:auditlog_logentry_changelist"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    assert not AccessEvent.objects.exists()
