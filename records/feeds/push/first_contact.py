"""First contact: a pushed batch whose care events made the first relationship between its partner and a patient
that partner never sent data about before. Such a relationship opens the patient's whole record to the partner's
staff on the partner's word alone, so the privacy officers are told.

What always holds:
- judged once per pushed run, inside the run's own transaction, so the alert commits with the run or not at all;
- a first contact is a relationship this run created (its provenance names the run, and it began during the run)
  held by the partner or one of its teams, for a patient about whom the partner had sent no care event or referral
  (the data relationships are derived from) before the run began. Other data sent earlier does not count: a
  condition sent first and an encounter after would otherwise open the record unseen;
- one FIRST_CONTACT alert per partner and patient, ever: its reference names both; the check and the write run under
  the audit chain's lock, as `audit.alerts.alert_raise_once` does, so two runs at once raise one;
- the alert names the partner, feed, run and batch, and the patient only by id (reached from the alert's page,
  through the door); no user raised it.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from audit.models import Alert
from consent.derivation import CARE_EVENT_TYPES, REFERRAL_TYPES
from consent.models import LegitimateRelationship
from records.models import IngestRun, PushedBatch, RecordEntry
from sharedcare import advisory_locks

KIND = Alert.Kind.FIRST_CONTACT


def first_contact_reference(organisation_id: int, patient_id: int) -> str:
    return f"FC-{organisation_id}-{patient_id}"


def first_contact_patients(run: IngestRun) -> list[int]:
    """The patients this run made first contact with, for the run's partner (see the module); in id order."""
    organisation_id = run.feed.organisation_id
    created = set(
        LegitimateRelationship.objects.filter(source_run_id=run.pk, valid_from__gte=run.started_at)
        .filter(
            Q(group__organisation__id=organisation_id) | Q(group__care_team__organisation_id=organisation_id)
        )
        .values_list("content_object_id", flat=True)
    )
    if not created:
        return []
    known = set(
        RecordEntry.objects.filter(
            organisation_id=organisation_id,
            patient_id__in=created,
            resource_type__in=(*CARE_EVENT_TYPES, *REFERRAL_TYPES),
            created_at__lt=run.started_at,
        ).values_list("patient_id", flat=True)
    )
    return sorted(created - known)


def first_contacts_alert(batch: PushedBatch, run: IngestRun) -> int:
    """Raise one FIRST_CONTACT alert for each patient this batch's run made first contact with, unless one stands
    for that partner and patient already; return how many were raised. Call inside the run's transaction."""
    patients = first_contact_patients(run)
    if not patients:
        return 0
    feed = run.feed
    partner = feed.organisation
    references = {first_contact_reference(partner.pk, patient_id): patient_id for patient_id in patients}
    advisory_locks.audit_chain_lock()
    raised = set(
        Alert.objects.filter(kind=KIND, reference__in=references).values_list("reference", flat=True)
    )
    now = timezone.now()
    reason = (
        f"{partner.name} ({partner.ods_code}) sent its first data about this patient in batch {batch.public_id} "
        f"to {feed.code} (run {run.pk}), and the relationship derived from it opens the record to its staff."
    )
    alerts = [
        Alert(kind=KIND, reference=reference, patient_id=patient_id, reason=reason, raised_at=now)
        for reference, patient_id in references.items()
        if reference not in raised
    ]
    Alert.objects.bulk_create(alerts)
    return len(alerts)
