"""Merging two records of one person: HL7 v2 A40, and a FHIR Patient whose `link` says it was `replaced-by` another.

What always holds:
- the retired Patient row is never deleted: it keeps its NHS number and demographics and points at the survivor
  through `merged_into`, so every later record naming the old NHS number reaches the survivor;
- its record entries move to the survivor unchanged (same partner, resource type and source id), so a partner's
  later update of one of them still finds it;
- chains stay one step long: records merged into the retired one are pointed at the survivor too;
- a merge never creates a patient, and a merge that would make a circle is refused;
- merging again into the same survivor changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django.utils import timezone

from records.ingest.fhir import JsonObject, as_list, as_object, text
from records.ingest.matching import Reason, Unmatched
from records.models import Patient, RecordEntry

# Deeper than any real chain of merges; a longer one can only be a circle written by hand in the database.
_MAX_CHAIN = 20

Outcome = Literal["updated", "unchanged"]


@dataclass(frozen=True)
class MergeResult:
    outcome: Outcome
    # Where the retired record's data now lives.
    survivor_id: int
    # Patients whose record or relationships the merge changed.
    touched_patient_ids: frozenset[int]


def replaced_by(resource: JsonObject) -> JsonObject | None:
    """The `other` reference of a Patient's first `link` of type replaced-by, or None when it has none."""
    for link in as_list(resource.get("link")):
        link = as_object(link)
        if text(link.get("type")) == "replaced-by":
            return as_object(link.get("other"))
    return None


def survivors(patient_ids: set[int]) -> dict[int, int]:
    """Each patient's survivor: the end of its `merged_into` chain, or the patient itself when never merged.

    One query when none of the patients was merged, which is nearly always.
    """
    result = {patient_id: patient_id for patient_id in patient_ids}
    pending = set(patient_ids)
    for _ in range(_MAX_CHAIN):
        links = dict(
            Patient.objects.filter(pk__in=pending, merged_into__isnull=False).values_list(
                "pk", "merged_into_id"
            )
        )
        if not links:
            return result
        for patient_id, end in result.items():
            if end in links:
                result[patient_id] = links[end]
        pending = set(links.values())
    raise RuntimeError(f"merged_into chains longer than {_MAX_CHAIN} from patients {sorted(patient_ids)}")


def patients_merge(retired_number: str, survivor_id: int) -> MergeResult | Unmatched:
    """Merge the patient held under `retired_number` into the patient `survivor_id` (or into its own survivor).

    A retired NHS number we do not hold has nothing to merge: unchanged, and no error.
    """
    survivor_id = survivors({survivor_id})[survivor_id]
    retired = Patient.objects.filter(nhs_number=retired_number).first()
    if retired is None:
        return MergeResult("unchanged", survivor_id, frozenset())
    if retired.pk == survivor_id:
        detail = (
            "A patient cannot be merged into itself."
            if retired.merged_into_id is None
            else "The survivor was itself merged into this record earlier; merging back would make a circle."
        )
        return Unmatched(Reason.INVALID_RESOURCE, detail, retired_number)
    moving = RecordEntry.objects.filter(patient=retired)
    if retired.merged_into_id == survivor_id and not moving.exists():
        return MergeResult("unchanged", survivor_id, frozenset())
    now = timezone.now()
    touched = {retired.pk, survivor_id}
    moving.update(patient_id=survivor_id, updated_at=now)
    # Keep every chain one step long, so a look-up never walks far.
    earlier = list(Patient.objects.filter(merged_into=retired).values_list("pk", flat=True))
    Patient.objects.filter(pk__in=earlier).update(merged_into_id=survivor_id, updated_at=now)
    touched |= set(earlier)
    Patient.objects.filter(pk=retired.pk).update(merged_into_id=survivor_id, updated_at=now)
    return MergeResult("updated", survivor_id, frozenset(touched))
