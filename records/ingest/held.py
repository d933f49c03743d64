"""What the partner already holds: resources stored with the same content, and the patients NHS numbers lead to.

A resource whose content (hash) and patient are those of the entry the partner already holds is counted unchanged
without being validated, mapped or written again (`HeldContent.unchanged`): it was validated when it was stored,
and the upsert would not write it (same content, same patient, not deleted at source), so nothing unvalidated is
ever stored. After an upgrade of fhir.resources, such a resource keeps the verdict it had when stored until its
content changes.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from records.ingest.fhir import content_hash
from records.ingest.items import ResourceUnit
from records.ingest.matching import NhsNumber, PatientIndex, Unmatched, subject_target
from records.ingest.merges import survivors
from records.ingest.upsert import entries_held
from records.models import Feed, Patient, RecordEntry

# What the first pass found stored for a resource, besides the patient of a stored entry with the same content.
UNKNOWN = -1  # not looked up, or stored with other content
ABSENT = -2  # nothing stored: the upsert need not look again


@dataclass(frozen=True)
class HeldPatient:
    survivor_id: int  # the patient itself, or the one it was merged into
    family_name: str
    birth_date: date | None


class HeldContent:
    """By position in the run, what is stored for each resource; and, by NHS number, the patient held for it."""

    def __init__(self, feed: Feed, index: PatientIndex) -> None:
        self.feed = feed
        self.index = index
        # By position: the stored entry's patient when its content (hash) is the same, ABSENT when nothing was
        # stored, else UNKNOWN.
        self.held = array("q")
        self.holds_entries: bool | None = None  # whether the partner holds any entry: asked once, when needed
        # Resources still to check, with their source index and position.
        self.unchecked: list[tuple[int, int, ResourceUnit]] = []
        # By source index: the positions of its resources found held (until handed to the validation pool).
        self.held_in: list[list[int]] = []
        self.nhs_numbers: dict[str, HeldPatient | None] = {}

    def is_absent(self, position: int) -> bool:
        return self.held[position] == ABSENT

    def check(self) -> None:
        """Note the resources whose content (hash) is that of the entry this partner holds for them, in one query.

        What was read before any patient was applied: a merge in this run can only make a held patient differ
        from the one the resource leads to, which means validating it after all. A partner that holds no entry at
        all (its first load) is asked once, not 500 keys at a time: the first pass writes no entry.
        """
        if self.holds_entries is None:
            self.holds_entries = RecordEntry.objects.filter(
                organisation_id=self.feed.organisation_id
            ).exists()
        held = (
            entries_held(self.feed, {(unit.resource_type, unit.source_id) for _, _, unit in self.unchecked})
            if self.holds_entries
            else {}
        )
        for index, position, unit in self.unchecked:
            stored = held.get((unit.resource_type, unit.source_id))
            if stored is None:
                self.held[position] = ABSENT
            elif not stored.is_deleted_at_source and content_hash(unit.json or {}) == stored.content_hash:
                self.held[position] = stored.patient_id
                self.held_in[index].append(position)
        self.unchecked.clear()

    def unchanged(self, units: list[tuple[int, ResourceUnit]]) -> set[int]:
        """Positions of the JSON resources whose content (hash) and patient are those of the entry stored for them
        (see the module docstring)."""
        matches: list[tuple[int, int | NhsNumber, int]] = []
        for position, unit in units:
            patient_id = self.held[position]
            if patient_id < 0 or unit.json is None:
                continue
            target = subject_target(unit.json, unit.container, self.index)
            if not isinstance(target, Unmatched):
                matches.append((position, target, patient_id))
        self.look_up_nhs_numbers({t.value for _, t, _ in matches if isinstance(t, NhsNumber)})
        same = set()
        for position, target, patient_id in matches:
            if isinstance(target, NhsNumber):
                found = self.nhs_numbers[target.value]
                if found is None:
                    continue
                target = found.survivor_id
            if target == patient_id:
                same.add(position)
        return same

    def look_up_nhs_numbers(self, numbers: Iterable[str]) -> None:
        """Find the patients held for these NHS numbers (see `patient`), those not looked up before."""
        wanted = {number for number in numbers if number not in self.nhs_numbers}
        if not wanted:
            return
        found = {
            number: (pk, merged_into_id, family_name, birth_date)
            for number, pk, merged_into_id, family_name, birth_date in Patient.objects.filter(
                nhs_number__in=wanted
            ).values_list("nhs_number", "pk", "merged_into_id", "family_name", "birth_date")
        }
        # Only a batch that names a merged patient costs a look-up of survivors.
        merged = {pk for pk, merged_into_id, _, _ in found.values() if merged_into_id is not None}
        ends = survivors(merged) if merged else {}
        for number in wanted:
            row = found.get(number)
            self.nhs_numbers[number] = (
                None if row is None else HeldPatient(ends.get(row[0], row[0]), row[2], row[3])
            )

    def patient(self, number: str) -> HeldPatient | None:
        """The patient held for an NHS number looked up before (None: none is held)."""
        return self.nhs_numbers[number]
