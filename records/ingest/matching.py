"""Finding the patient a resource is about: NHS numbers, and references to Patient resources in the same run.

The NHS number is the only key that joins partners' data (DESIGN.md §5): nothing is matched on name, birth date or
a partner's own patient id, and a resource whose patient cannot be pinned to a valid NHS number is quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass

from records import nhs_number
from records.ingest.fhir import JsonObject, as_list, as_object, text
from records.models import PartnerPatientId, QuarantinedRecord

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
Reason = QuarantinedRecord.Reason


@dataclass(frozen=True)
class Unmatched:
    """Why a resource has no patient we can attach it to: a quarantine reason and a sentence for a person.

    `nhs_number` is the number the resource names when it is ten digits, so that the quarantined record can be
    found, and replayed once that patient arrives.
    """

    reason: str
    detail: str
    nhs_number: str = ""
    # The partner's Patient id of a relative `Patient/<id>` reference no patient was found for, to replay the
    # record once the partner sends that Patient.
    patient_reference: str = ""


@dataclass(frozen=True)
class NhsNumber:
    """A valid NHS number still to be looked up in the database."""

    value: str


# A patient's primary key, an NHS number to look up, or why there is no patient.
Target = int | NhsNumber | Unmatched


def nhs_number_of(resource: JsonObject) -> str | None:
    """The first NHS number identifier of a Patient resource, without spaces; None when it has none."""
    for identifier in as_list(resource.get("identifier")):
        identifier = as_object(identifier)
        if identifier.get("system") == NHS_NUMBER_SYSTEM:
            value = nhs_number.normalise(text(identifier.get("value")))
            if value:
                return value
    return None


def well_formed(value: str | None) -> str:
    """The number without spaces when it is ten digits (whether or not its check digit is right), else ""."""
    number = nhs_number.normalise(value or "")
    return number if len(number) == 10 and number.isascii() and number.isdigit() else ""


def check_nhs_number(value: str | None, whose: str) -> str | Unmatched:
    """The NHS number if it is present and passes the Modulus 11 check, or why not."""
    if not value:
        return Unmatched(Reason.NO_NHS_NUMBER, f"{whose} has no NHS number ({NHS_NUMBER_SYSTEM}).")
    if not nhs_number.is_valid(value):
        return Unmatched(
            Reason.INVALID_NHS_NUMBER,
            f"{whose} has an NHS number that fails the Modulus 11 check.",
            well_formed(value),
        )
    return value


def named_nhs_number(resource: JsonObject) -> str:
    """The ten-digit NHS number a resource names, on a Patient's identifier or a subject/patient reference."""
    if resource.get("resourceType") == "Patient":
        return well_formed(nhs_number_of(resource))
    for field in ("subject", "patient"):
        identifier = as_object(as_object(resource.get(field)).get("identifier"))
        if identifier.get("system") == NHS_NUMBER_SYSTEM:
            return well_formed(text(identifier.get("value")))
    return ""


def _reference_candidates(reference: str) -> list[str]:
    """The keys a reference may be indexed under: as written, and as `Patient/<id>` without server or version."""
    candidates = [reference]
    if reference.startswith("urn:uuid:"):
        candidates.append("Patient/" + reference.removeprefix("urn:uuid:"))
    path = reference.split("/_history/")[0]
    parts = path.split("/")
    if len(parts) >= 2 and parts[-2] == "Patient":
        candidates.append(f"Patient/{parts[-1]}")
    return list(dict.fromkeys(candidates))


def relative_patient_id(reference: str) -> str:
    """The id in a relative `Patient/<id>` (or `Patient/<id>/_history/<n>`) reference, else "".

    Only a relative reference names the partner's own server for certain: an absolute URL may name any other, and
    a `urn:uuid:` exists only within its Bundle.
    """
    parts = reference.split("/_history/")[0].split("/")
    return parts[1][:64] if len(parts) == 2 and parts[0] == "Patient" else ""


def _referenced_type(reference: str) -> str | None:
    """The resource type a literal reference names, or None when it cannot tell (urn:uuid:, urn:oid:)."""
    if reference.startswith(("urn:", "#")):
        return None
    parts = reference.split("/_history/")[0].split("/")
    return parts[-2] if len(parts) >= 2 else None


class PatientIndex:
    """Where each Patient resource of a run leads: a patient's primary key, or why it cannot be used.

    A reference is looked up first among the Patient resources of its own Bundle (or file), then across the run.
    A reference that matches different Patient resources in different files of the run is refused as ambiguous.
    """

    def __init__(self, organisation_id: int | None = None) -> None:
        self._local: dict[tuple[str, str], Target] = {}
        self._run: dict[str, Target] = {}
        self._ambiguous: set[str] = set()
        # Patient ids the partner sent in earlier runs (`PartnerPatientId`), looked up once each on a miss.
        self._organisation_id = organisation_id
        self._earlier: dict[str, int | None] = {}

    def add(self, *, container: str, full_url: str, source_id: str, target: Target) -> None:
        keys = {full_url} if full_url else set()
        if source_id:
            keys.add(f"Patient/{source_id}")
        for key in keys:
            self._local[(container, key)] = target
            if key in self._run and self._run[key] != target:
                self._ambiguous.add(key)
            self._run[key] = target

    def resolve(self, reference: str, container: str) -> Target | None:
        candidates = _reference_candidates(reference)
        for key in candidates:
            if (container, key) in self._local:
                return self._local[(container, key)]
        for key in candidates:
            if key in self._ambiguous:
                return Unmatched(
                    Reason.UNKNOWN_PATIENT,
                    f"The subject reference {reference} matches more than one Patient resource in this run.",
                )
            if key in self._run:
                return self._run[key]
        return self._sent_earlier(reference)

    def _sent_earlier(self, reference: str) -> int | None:
        """The patient (the survivor, if merged) a relative `Patient/<id>` reference led to in an earlier run."""
        source_id = relative_patient_id(reference)
        if self._organisation_id is None or not source_id:
            return None
        if source_id not in self._earlier:
            found = (
                PartnerPatientId.objects.filter(organisation_id=self._organisation_id, source_id=source_id)
                .values_list("patient_id", "patient__merged_into_id")
                .first()
            )
            self._earlier[source_id] = (found[1] or found[0]) if found else None
        return self._earlier[source_id]


def subject_target(resource: JsonObject, container: str, index: PatientIndex) -> Target:
    """The patient a clinical resource is about, from its `subject` (or `patient`) reference.

    An NHS number identifier on the reference wins; otherwise the literal reference must lead to a Patient resource
    of this run, which carries the NHS number, or (a relative `Patient/<id>`) to one the partner sent before.
    """
    resource_type = text(resource.get("resourceType")) or "resource"
    field = "subject" if "subject" in resource else "patient"
    reference = as_object(resource.get(field))
    if not reference:
        return Unmatched(Reason.NO_SUBJECT, f"The {resource_type} has no subject or patient reference.")
    identifier = as_object(reference.get("identifier"))
    if identifier.get("system") == NHS_NUMBER_SYSTEM:
        checked = check_nhs_number(
            nhs_number.normalise(text(identifier.get("value"))), f"The {resource_type}'s {field} reference"
        )
        return checked if isinstance(checked, Unmatched) else NhsNumber(checked)
    literal = text(reference.get("reference"))
    named_type = _referenced_type(literal) if literal else text(reference.get("type")) or None
    if named_type is not None and named_type != "Patient":
        return Unmatched(
            Reason.NO_SUBJECT, f"The {resource_type}'s {field} is a {named_type}, not a patient."
        )
    if not literal:
        return Unmatched(
            Reason.NO_SUBJECT,
            f"The {resource_type}'s {field} reference has neither a reference nor an NHS number identifier.",
        )
    found = index.resolve(literal, container)
    if found is not None:
        return found
    return Unmatched(
        Reason.UNKNOWN_PATIENT,
        f"The {field} reference {literal} names no Patient resource this partner has sent and carries no NHS "
        "number.",
        patient_reference=relative_patient_id(literal),
    )
