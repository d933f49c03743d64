"""Patient resources -> Patient rows: demographics from a feed that is an authority on them, or a cross-check.

What always holds:
- a patient is created or its demographics changed only by a feed with `can_create_patients`;
- a feed that may not create patients never changes one: it may only name patients we already hold, and a birth
  date or family name that disagrees with ours quarantines the resource (`demographic-mismatch`);
- when one run holds several Patient resources for the same NHS number, the newest (meta.lastUpdated, then
  meta.versionId, then the last in the run) is the one applied, so the order of files never changes the result
  and a second run of the same input changes nothing;
- a Patient row is written only when a field actually differs;
- demographics older than those held (`Patient.source_last_updated` / `source_version`) are never applied, whichever
  feed or run sent them: the copy is counted unchanged and its resources still reach the patient;
- a patient who arrives restricted, or whose restricted flag changes, gets one django-auditlog entry in the same
  transaction, naming the feed and the run, with no actor and that one field only: the bulk writes here are never
  seen by auditlog's signals, and who may see a restricted patient's whereabouts is a governance fact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Literal

from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from records.ingest.fhir import (
    JsonObject,
    as_list,
    as_object,
    is_older,
    is_restricted,
    parse_datetime,
    text,
    version_key,
)
from records.ingest.items import ResourceUnit
from records.ingest.matching import Reason, Unmatched
from records.models import Feed, IngestRun, Organisation, PartnerPatientId, Patient

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
_SEXES = {choice.value for choice in Patient.Sex}
_BATCH_SIZE = 1000

Outcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Demographics:
    given_name: str
    family_name: str
    birth_date: date | None
    sex: str
    address: str
    postcode: str
    phone: str
    death_date: date | None
    is_restricted: bool
    practice_ods_codes: tuple[str, ...]


@dataclass(frozen=True)
class PatientCandidate:
    """A validated Patient resource with a valid NHS number, and where it stood in the run."""

    unit: ResourceUnit
    resource: JsonObject
    nhs_number: str
    occurrence: int
    raw: str  # as the partner sent it, for quarantine


@dataclass(frozen=True)
class PatientResult:
    outcome: Outcome
    patient_id: int


def _preferred(items: list[JsonObject], uses: tuple[str, ...]) -> JsonObject:
    for use in uses:
        for item in items:
            if item.get("use") == use:
                return item
    return items[0] if items else {}


def demographics_of(resource: JsonObject) -> Demographics:
    names = [as_object(name) for name in as_list(resource.get("name"))]
    name = _preferred(names, ("official", "usual"))
    given = " ".join(text(part) for part in as_list(name.get("given")) if text(part))
    family = text(name.get("family"))
    if not given and not family:
        given = text(name.get("text"))
    addresses = [as_object(address) for address in as_list(resource.get("address")) if address]
    address = _preferred([a for a in addresses if a.get("use") != "old"] or addresses, ("home",))
    lines = [text(line) for line in as_list(address.get("line")) if text(line)]
    lines += [text(address.get(part)) for part in ("city", "district") if text(address.get(part))]
    phones = [as_object(t) for t in as_list(resource.get("telecom")) if as_object(t).get("system") == "phone"]
    phone = _preferred(phones, ("home", "mobile"))
    born = parse_datetime(resource.get("birthDate"))
    died = parse_datetime(resource.get("deceasedDateTime"))
    gender = text(resource.get("gender"))
    practices = []
    for practitioner in as_list(resource.get("generalPractitioner")):
        identifier = as_object(as_object(practitioner).get("identifier"))
        if identifier.get("system") == ODS_SYSTEM and text(identifier.get("value")):
            practices.append(text(identifier.get("value")).upper())
    return Demographics(
        given_name=given[:200],
        family_name=family[:200],
        birth_date=born.date() if born else None,
        sex=gender if gender in _SEXES else Patient.Sex.UNKNOWN,
        address=text(address.get("text")) or ", ".join(lines),
        postcode=text(address.get("postalCode")).upper()[:10],
        phone=text(phone.get("value"))[:40],
        death_date=died.date() if died else None,
        is_restricted=is_restricted(resource),
        practice_ods_codes=tuple(practices),
    )


def practice_ods_codes(candidates: Sequence[PatientCandidate]) -> set[str]:
    return {code for c in candidates for code in demographics_of(c.resource).practice_ods_codes}


def _wanted_fields(
    demographics: Demographics, practices: dict[str, Organisation], source: Organisation
) -> dict[str, object]:
    wanted: dict[str, object] = {
        field.name: getattr(demographics, field.name)
        for field in fields(Demographics)
        if field.name != "practice_ods_codes"
    }
    # A practice we do not hold cannot be linked; the patient then shows "No known GP practice".
    practice = next((practices[code] for code in demographics.practice_ods_codes if code in practices), None)
    wanted["registered_practice_id"] = practice.pk if practice else None
    wanted["source_organisation_id"] = source.pk
    return wanted


def mismatch(patient: Patient, demographics: Demographics) -> str | None:
    """Why a resource from a feed that may not create patients does not look like the patient we hold."""
    return demographics_mismatch(
        patient.family_name, patient.birth_date, demographics.family_name, demographics.birth_date
    )


def demographics_mismatch(
    held_family_name: str, held_birth_date: date | None, family_name: str, birth_date: date | None
) -> str | None:
    """Why a record's family name and birth date do not fit the patient held; either side may be blank.

    Names compare without regard to case or surrounding spaces: partners send SMITH and Smith for the same person.
    """
    differing = []
    if birth_date and held_birth_date and birth_date != held_birth_date:
        differing.append("birth date")
    family = family_name.casefold().strip()
    if family and held_family_name and family != held_family_name.casefold().strip():
        differing.append("family name")
    if not differing:
        return None
    return f"The {' and '.join(differing)} differ from the patient held for this NHS number."


def _winner(group: list[PatientCandidate]) -> PatientCandidate:
    return max(group, key=lambda c: (version_key(c.unit.version_id, c.unit.last_updated), c.occurrence))


def patients_upsert(
    feed: Feed, candidates: Sequence[PatientCandidate], run: IngestRun | None = None
) -> dict[int, PatientResult | Unmatched]:
    """Apply the Patient resources of one run (`run`, named in the change history of a restricted flag); the result
    is keyed by each candidate's occurrence in the run."""
    by_number: dict[str, list[PatientCandidate]] = defaultdict(list)
    for candidate in candidates:
        by_number[candidate.nhs_number].append(candidate)
    numbers = sorted(by_number)
    held = {
        patient.nhs_number: patient
        for start in range(0, len(numbers), _BATCH_SIZE)
        for patient in Patient.objects.filter(nhs_number__in=numbers[start : start + _BATCH_SIZE])
    }
    results: dict[int, PatientResult | Unmatched] = {}
    if not feed.can_create_patients:
        for number, group in by_number.items():
            patient = held.get(number)
            for candidate in group:
                results[candidate.occurrence] = _cross_check(patient, candidate)
        return results

    practices = {
        o.ods_code: o for o in Organisation.objects.filter(ods_code__in=practice_ods_codes(candidates))
    }
    to_create: list[Patient] = []
    to_update: list[Patient] = []
    changed_fields: set[str] = set()
    outcomes: dict[str, Outcome] = {}
    # NHS number -> the restricted flag held before (None: a new patient), for every flag this run sets or changes.
    restricted_changes: dict[str, bool | None] = {}
    now = timezone.now()
    for number, group in sorted(by_number.items()):
        winner = _winner(group)
        patient = held.get(number)
        if patient is not None and _older_than_held(winner.unit, patient, feed):
            outcomes[number] = "unchanged"
            continue
        wanted = _wanted_fields(demographics_of(winner.resource), practices, feed.organisation)
        wanted["source_version"] = winner.unit.version_id[:64]
        wanted["source_last_updated"] = winner.unit.last_updated
        if patient is None:
            to_create.append(Patient(nhs_number=number, created_at=now, **wanted))
            outcomes[number] = "created"
            if wanted["is_restricted"]:
                restricted_changes[number] = None
            continue
        changes = [name for name, value in wanted.items() if getattr(patient, name) != value]
        if "is_restricted" in changes:
            restricted_changes[number] = patient.is_restricted
        if changes:
            for name in changes:
                setattr(patient, name, wanted[name])
            patient.updated_at = now
            to_update.append(patient)
            changed_fields.update(name.removesuffix("_id") for name in changes)
            outcomes[number] = "updated"
        else:
            outcomes[number] = "unchanged"
    for patient in Patient.objects.bulk_create(to_create, batch_size=_BATCH_SIZE):
        held[patient.nhs_number] = patient
    if to_update:
        Patient.objects.bulk_update(
            to_update, sorted(changed_fields | {"updated_at"}), batch_size=_BATCH_SIZE
        )
    _restricted_changes_log(
        feed, run, {number: (held[number], was) for number, was in restricted_changes.items()}
    )
    for number, group in by_number.items():
        winner = _winner(group)
        for candidate in group:
            # The other copies of the same patient in this run changed nothing beyond what the newest did.
            outcome = outcomes[number] if candidate is winner else "unchanged"
            results[candidate.occurrence] = PatientResult(outcome, held[number].pk)
    return results


def _restricted_changes_log(
    feed: Feed, run: IngestRun | None, changed: Mapping[str, tuple[Patient, bool | None]]
) -> None:
    """One change-history entry per patient whose restricted flag this run set or changed: that field alone, so no
    demographic or clinical value is copied into the log; the patient is named by their opaque public id."""
    if not changed:
        return
    content_type = ContentType.objects.get_for_model(Patient)
    # The same keys as a derived relationship's history (consent/derivation_history.py), so one page reads both.
    source = {"feed": feed.code, "feed_id": feed.pk, "run_id": run.pk if run is not None else None}
    LogEntry.objects.bulk_create(
        [
            LogEntry(
                content_type=content_type,
                object_pk=str(patient.pk),
                object_id=patient.pk,
                object_repr=str(patient),
                action=LogEntry.Action.CREATE if was is None else LogEntry.Action.UPDATE,
                changes={"is_restricted": [str(was), str(patient.is_restricted)]},
                actor=None,
                additional_data=source,
            )
            for patient, was in (changed[number] for number in sorted(changed))
        ],
        batch_size=_BATCH_SIZE,
    )


def partner_ids_record(
    feed: Feed, candidates: Sequence[PatientCandidate], results: Mapping[int, PatientResult | Unmatched]
) -> set[int]:
    """Remember which patient each of the partner's Patient ids led to, writing only what is new or changed;
    return the patients of what was written (what waits for those ids can now be replayed).

    When one run sends the same id for two patients, the later in the run is kept, as in the run's own index.
    """
    wanted: dict[str, int] = {}
    for candidate in sorted(candidates, key=lambda c: c.occurrence):
        result = results[candidate.occurrence]
        if isinstance(result, PatientResult) and candidate.unit.source_id:
            wanted[candidate.unit.source_id[:64]] = result.patient_id
    if not wanted:
        return set()
    organisation_id = feed.organisation_id
    ids = sorted(wanted)
    held = {
        source_id: patient_id
        for start in range(0, len(ids), _BATCH_SIZE)
        for source_id, patient_id in PartnerPatientId.objects.filter(
            organisation_id=organisation_id, source_id__in=ids[start : start + _BATCH_SIZE]
        ).values_list("source_id", "patient_id")
    }
    changed = [
        PartnerPatientId(organisation_id=organisation_id, source_id=source_id, patient_id=patient_id)
        for source_id, patient_id in wanted.items()
        if held.get(source_id) != patient_id
    ]
    PartnerPatientId.objects.bulk_create(
        changed,
        batch_size=_BATCH_SIZE,
        update_conflicts=True,
        unique_fields=["organisation", "source_id"],
        update_fields=["patient", "updated_at"],
    )
    return {entry.patient_id for entry in changed}


def _older_than_held(unit: ResourceUnit, patient: Patient, feed: Feed) -> bool:
    """True when this copy of the patient's demographics is known to be older than the one held.

    meta.lastUpdated (or an HL7 message's send time) compares across partners; a versionId is a partner's own
    counter, so it compares only with a version the same partner sent.
    """
    same_source = patient.source_organisation_id == feed.organisation_id
    return is_older(
        unit.version_id,
        unit.last_updated,
        patient.source_version if same_source else "",
        patient.source_last_updated,
    )


def _cross_check(patient: Patient | None, candidate: PatientCandidate) -> PatientResult | Unmatched:
    if patient is None:
        return Unmatched(
            Reason.UNKNOWN_PATIENT,
            "No patient is held for this NHS number, and this feed may not create patients.",
            candidate.nhs_number,
        )
    problem = mismatch(patient, demographics_of(candidate.resource))
    if problem:
        return Unmatched(Reason.DEMOGRAPHIC_MISMATCH, problem, candidate.nhs_number)
    return PatientResult("unchanged", patient.pk)
