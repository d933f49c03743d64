"""The national data opt-out: recorded per patient by staff or from a partner's feed, listed for the back office.

What always holds: a patient has at most one opt-out, and recording it again changes nothing; an opt-out from a feed
names its feed and one staff recorded names who did; a feed lifts only an opt-out it recorded itself. It governs uses
beyond individual care: whether it also hides the record from direct care is `consent.policy`'s, by setting.
"""

from datetime import date, datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from consent.models import (
    NationalOptOut,
)
from consent.subject_access import refuse_unless
from records import nhs_number
from records.models import Feed, Patient, RecordEntry, patient_survivor

# The national data opt-out.


def patient_matching(nhs_number_text: str, birth_date: date) -> Patient | None:
    """The patient held under this NHS number (or the record it was merged into), if their birth date is this one."""
    patient = patient_survivor(
        Patient.objects.filter(nhs_number=nhs_number.normalise(nhs_number_text)).first()
    )
    if patient is None or patient.birth_date != birth_date:
        return None
    return patient


def national_opt_out_record(
    patient: Patient,
    source: str,
    *,
    source_feed: Feed | None = None,
    recorded_by_id: int | None = None,
    note: str = "",
    recorded_at: datetime | None = None,
) -> tuple[NationalOptOut, bool]:
    """Record that the patient has a national data opt-out; return it and whether it is new.

    What a feed says comes with its feed (`source_feed`), what staff record with who they are (`recorded_by_id`);
    `CaseStepRefused` otherwise, and for a source not on the list. An opt-out already recorded is returned as it is.
    """
    refuse_unless(source in NationalOptOut.Source.values, f"{source!r} is not a source of an opt-out.")
    refuse_unless(
        source != NationalOptOut.Source.FEED or source_feed is not None,
        "An opt-out from a feed names its feed.",
    )
    refuse_unless(
        source != NationalOptOut.Source.STAFF or recorded_by_id is not None,
        "An opt-out recorded by staff names who recorded it.",
    )
    with transaction.atomic():
        opt_out, created = NationalOptOut.objects.get_or_create(
            patient=patient,
            defaults={
                "source": source,
                "source_feed": source_feed,
                "recorded_by_id": recorded_by_id,
                "note": note.strip(),
                "recorded_at": recorded_at or timezone.now(),
            },
        )
    return opt_out, created


def national_opt_out_remove(patient: Patient) -> bool:
    """Remove the patient's national data opt-out; return whether there was one. django-auditlog keeps what it was."""
    opt_out = NationalOptOut.objects.filter(patient=patient).first()
    if opt_out is None:
        return False
    opt_out.delete()
    return True


def national_opt_out_get(opt_out_id: int) -> NationalOptOut | None:
    return NationalOptOut.objects.select_related("patient").filter(pk=opt_out_id).first()


def national_opt_outs() -> QuerySet[NationalOptOut]:
    """Every recorded opt-out with its patient, most recently recorded first."""
    return NationalOptOut.objects.select_related("patient", "source_feed__organisation").order_by(
        "-recorded_at", "-pk"
    )


# National data opt-outs a partner's feed sends, as NHS England's opt-out Consent (profile NDOP-Consent-1, with its
# opt-out source extension): active means the patient has opted out; any other status, or the resource deleted at
# the source, means the opt-out that feed recorded is lifted. An opt-out staff recorded is never lifted by a feed.
NDOP_MARKERS = ("NDOP-Consent", "Extension-NDOP-OptOutSource")


def _is_national_opt_out(resource: dict[str, Any]) -> bool:
    profiles = (resource.get("meta") or {}).get("profile") or []
    extensions = [extension.get("url", "") for extension in resource.get("extension") or []]
    return any(marker in text for marker in NDOP_MARKERS for text in [*profiles, *extensions])


def national_opt_outs_from_run(run_id: int) -> tuple[int, int]:
    """Record or lift the opt-outs an ingest run's Consent resources say; return how many of each.

    Called by the ingest as a run finishes, in its transaction, so an opt-out stands or falls with the run.
    """
    recorded = lifted = 0
    entries = (
        RecordEntry.objects.filter(ingest_run_id=run_id, resource_type="Consent")
        .select_related("patient", "feed")
        .order_by("pk")
    )
    for entry in entries:
        if not _is_national_opt_out(entry.resource):
            continue
        if entry.resource.get("status") == "active" and not entry.is_deleted_at_source:
            recorded += national_opt_out_record(
                entry.patient, NationalOptOut.Source.FEED, source_feed=entry.feed
            )[1]
        else:
            held = NationalOptOut.objects.filter(
                patient=entry.patient, source=NationalOptOut.Source.FEED, source_feed=entry.feed
            )
            lifted += bool(held.delete()[0])
    return recorded, lifted
