"""What one ingest run counts as it goes, shared by every part of the run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Tally:
    """The run's counts. Every resource read ends up in exactly one of created, updated, unchanged or quarantined
    (Patient resources included); the run checks that they add up before it may succeed."""

    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    patients_created: int = 0
    patients_updated: int = 0
    clinical: int = 0  # resources left for the second pass, for its progress bar
    # Resources that went through FHIR validation, here or in a worker, valid or not (for `make bench`).
    validated: int = 0
    touched_patient_ids: set[int] = field(default_factory=set)
    created_patient_ids: set[int] = field(default_factory=set)
    # Patients a partner's Patient id led to for the first time (or anew): what waits for that id can be replayed.
    named_patient_ids: set[int] = field(default_factory=set)

    @property
    def accounted(self) -> int:
        return self.created + self.updated + self.unchanged + self.quarantined

    @property
    def arrived_patient_ids(self) -> tuple[int, ...]:
        """The patients records quarantined as unknown-patient may now be waiting for, in order."""
        return tuple(sorted(self.created_patient_ids | self.named_patient_ids))
