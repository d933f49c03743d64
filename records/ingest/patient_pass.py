"""The run's Patient resources: checked as the first pass reads them, applied once it has read them all.

What always holds:
- every Patient resource is counted once: created, updated or unchanged when applied (or merged), quarantined
  with its reason otherwise;
- a Patient that is `replaced-by` another (or an HL7 A40) merges the two records (`merges`), after every other
  Patient of the run is applied, so a survivor sent in the same run is found;
- the run's patient index (`matching.PatientIndex`) leads every reference to a Patient of the run to the patient
  applied for it (a retired one's survivor), or to why it could not be used: a resource that refers to a Patient
  that was quarantined is quarantined with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from records import nhs_number as nhs_numbers
from records.ingest.fhir import InvalidResource, JsonObject, text
from records.ingest.items import ResourceUnit
from records.ingest.matching import (
    NHS_NUMBER_SYSTEM,
    PatientIndex,
    Reason,
    Unmatched,
    check_nhs_number,
    named_nhs_number,
    nhs_number_of,
)
from records.ingest.merges import patients_merge, replaced_by, survivors
from records.ingest.patients import PatientCandidate, PatientResult, partner_ids_record, patients_upsert
from records.ingest.rejections import Rejections
from records.ingest.run_validation import RunValidation
from records.ingest.tally import Tally
from records.models import Feed, Patient

# Reasons a referenced Patient resource passes on to the resources that refer to it; any other becomes
# unknown-patient, because the referring resource itself is not invalid.
_PASSED_ON = frozenset(
    {Reason.NO_NHS_NUMBER, Reason.INVALID_NHS_NUMBER, Reason.UNKNOWN_PATIENT, Reason.DEMOGRAPHIC_MISMATCH}
)


@dataclass(frozen=True)
class _MergeCandidate:
    """A Patient resource saying its record is replaced by another: the retired record, to merge."""

    unit: ResourceUnit
    retired_number: str
    survivor: JsonObject  # the link's `other` reference
    raw: str


class PatientPass:
    """The Patient resources of one run, from reading to the patient index the clinical resources are matched by."""

    def __init__(
        self,
        feed: Feed,
        tally: Tally,
        index: PatientIndex,
        rejections: Rejections,
        validation: RunValidation,
    ) -> None:
        self.feed = feed
        self.tally = tally
        self.index = index
        self.rejections = rejections
        self.validation = validation
        self.candidates: list[PatientCandidate] = []
        self.merges: list[_MergeCandidate] = []

    def add(self, unit: ResourceUnit, position: int) -> None:
        """Check a Patient resource as it is read: quarantine it, or keep it to apply or merge."""
        try:
            resource = self.validation.validate(unit)
        except InvalidResource as error:
            self.rejections.of_unit(unit, Reason.INVALID_RESOURCE, str(error))
            self.index_patient(unit, Unmatched(Reason.INVALID_RESOURCE, str(error)))
            return
        number = check_nhs_number(nhs_number_of(resource), "The Patient resource")
        if isinstance(number, Unmatched):
            self.rejections.of_unit(unit, number.reason, number.detail, number.nhs_number)
            self.index_patient(unit, number)
            return
        # Keep the validated JSON and the raw text, not the XML element, which would hold its whole file in memory.
        light = replace(unit, json=resource, element=None)
        survivor = replaced_by(resource)
        if survivor is not None:
            self.merges.append(
                _MergeCandidate(unit=light, retired_number=number, survivor=survivor, raw=unit.raw())
            )
            return
        self.candidates.append(
            PatientCandidate(
                unit=light, resource=resource, nhs_number=number, occurrence=position, raw=unit.raw()
            )
        )

    def apply(self) -> None:
        """Apply every Patient resource kept, then the merges."""
        self.apply_patients()
        self.apply_merges()

    def apply_patients(self) -> None:
        candidates = self.candidates
        results = patients_upsert(self.feed, candidates, self.rejections.run)
        self.tally.named_patient_ids |= partner_ids_record(self.feed, candidates, results)
        # A patient merged into another earlier: what refers to it in this run belongs to the survivor.
        ends = survivors({r.patient_id for r in results.values() if isinstance(r, PatientResult)})
        for candidate in candidates:
            result = results[candidate.occurrence]
            if isinstance(result, Unmatched):
                # The raw text as sent: the light unit no longer holds an XML resource's element.
                self.rejections.of_unit(
                    candidate.unit, result.reason, result.detail, result.nhs_number, candidate.raw
                )
                self.index_patient(candidate.unit, result)
                continue
            self.count_patient(result)
            self.index.add(
                container=candidate.unit.container,
                full_url=candidate.unit.full_url,
                source_id=candidate.unit.source_id,
                target=ends[result.patient_id],
            )

    def apply_merges(self) -> None:
        """Merge each retired patient into its survivor, after every Patient of the run is applied.

        The survivor is found by the link's reference to a Patient of this run when it has one (so a survivor
        quarantined in this run stops the merge), else by the NHS number identifier on the link.
        """
        for merge in self.merges:
            unit = merge.unit
            survivor = self.survivor_target(merge)
            if isinstance(survivor, Unmatched):
                number = survivor.nhs_number or merge.retired_number
                self.rejections.of_unit(unit, survivor.reason, survivor.detail, number, merge.raw)
                self.index_patient(unit, survivor)
                continue
            result = patients_merge(merge.retired_number, survivor)
            if isinstance(result, Unmatched):
                self.rejections.of_unit(unit, result.reason, result.detail, merge.retired_number, merge.raw)
                self.index_patient(unit, result)
                continue
            if result.outcome == "updated":
                self.tally.updated += 1
                self.tally.patients_updated += 1
            else:
                self.tally.unchanged += 1
            self.tally.touched_patient_ids |= result.touched_patient_ids
            self.index.add(
                container=unit.container,
                full_url=unit.full_url,
                source_id=unit.source_id,
                target=result.survivor_id,
            )

    def survivor_target(self, merge: _MergeCandidate) -> int | Unmatched:
        reference = text(merge.survivor.get("reference"))
        if reference:
            found = self.index.resolve(reference, merge.unit.container)
            if isinstance(found, int):
                return found
            if isinstance(found, Unmatched):
                return Unmatched(
                    found.reason,
                    f"The patient it is replaced by could not be used. {found.detail}",
                    found.nhs_number,
                )
        identifier = merge.survivor.get("identifier")
        value = text(identifier.get("value")) if isinstance(identifier, dict) else ""
        if not isinstance(identifier, dict) or identifier.get("system") != NHS_NUMBER_SYSTEM:
            return Unmatched(
                Reason.UNKNOWN_PATIENT,
                "The patient it is replaced by is named neither by a Patient resource of this run nor by an "
                "NHS number identifier.",
            )
        checked = check_nhs_number(nhs_numbers.normalise(value), "The replaced-by link")
        if isinstance(checked, Unmatched):
            return checked
        held = Patient.objects.filter(nhs_number=checked).values_list("pk", flat=True).first()
        if held is None:
            return Unmatched(
                Reason.UNKNOWN_PATIENT,
                "No patient is held for the NHS number of the patient it is replaced by, so nothing was merged.",
                checked,
            )
        return held

    def count_patient(self, result: PatientResult) -> None:
        if result.outcome == "created":
            self.tally.created += 1
            self.tally.patients_created += 1
            self.tally.created_patient_ids.add(result.patient_id)
        elif result.outcome == "updated":
            self.tally.updated += 1
            self.tally.patients_updated += 1
        else:
            self.tally.unchanged += 1
        if result.outcome != "unchanged":
            self.tally.touched_patient_ids.add(result.patient_id)

    def index_patient(self, unit: ResourceUnit, problem: Unmatched) -> None:
        """Resources that refer to a Patient resource we could not use are quarantined with its reason."""
        reason = problem.reason if problem.reason in _PASSED_ON else Reason.UNKNOWN_PATIENT
        name = f"Patient/{unit.source_id}" if unit.source_id else unit.full_url or unit.location
        detail = f"The patient it refers to ({name}, at {unit.location}) was quarantined: {problem.detail}"
        self.index.add(
            container=unit.container,
            full_url=unit.full_url,
            source_id=unit.source_id,
            target=Unmatched(reason, detail, problem.nhs_number or named_nhs_number(unit.json or {})),
        )
