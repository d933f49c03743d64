"""Legitimate relationships derived from the care context partners send, each with where it came from.

The bases, strongest first (one patient and one holder get at most one relationship, the strongest):
1. registered practice: the patient's registered GP practice, open-ended while the registration lasts;
2. open care event: an open inpatient or emergency encounter, or an open episode of care that names no team or
   care manager, at the partner that sent it, open-ended;
3. caseload: an active episode of care naming a team or a care manager; a team the partner has told us of
   (`CareTeam.code`) holds it alone, otherwise the partner does; open-ended while the episode is active;
4. referral: an active, draft or on-hold referral (ServiceRequest) whose performer names a partner (by ODS code,
   or a contained or literal Organization), or one of its teams; the team holds it when named, otherwise the
   partner; open-ended while the referral is active;
5. recent care event: any other encounter or episode, until its end (or start, for a contact still going) plus the
   window for the holder's kind of organisation (`RELATIONSHIP_ENCOUNTER_DAYS_BY_KIND`, falling back to
   `RELATIONSHIP_ENCOUNTER_DAYS`). The holder of a caseload keeps it for that window once the episode ends.

What always holds:
- each relationship carries its provenance: the feed, the run and the entry that created it (for a registration,
  the feed that sent the patient's demographics, and its run when the registration arrived in the run refreshing),
  and a few words saying what it was;
- relationships begin and end with their care context: each refresh writes what the patients' current data
  supports and removes what it no longer does (a completed referral, a deleted or entered-in-error encounter);
- a relationship whose basis is not one derived here is never touched;
- a record merged into another keeps no relationships of its own: access goes through the survivor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from auditlog.context import disable_auditlog
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import transaction
from django.db.models import F
from django.db.models.fields.json import KT, KeyTransform
from django.utils import timezone

from consent.derivation_history import Values, relationship_changes_log, relationship_values
from consent.models import CareTeam, LegitimateRelationship
from records.models import Feed, IngestRun, Organisation, PartnerPatientId, Patient, RecordEntry
from records.models.patients import ACCESS_RECORD_PERMISSION

Basis = LegitimateRelationship.Basis
JsonObject = dict[str, Any]

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
CARE_EVENT_TYPES = ("Encounter", "EpisodeOfCare")
REFERRAL_TYPES = ("ServiceRequest",)
# Encounter and EpisodeOfCare statuses of care still going on ("active" is the episode's, and older feeds' word).
OPEN_STATUSES = ("arrived", "triaged", "in-progress", "onleave", "active", "onhold")
# Care that never happened or has not yet begun begins no relationship.
NO_CARE_STATUSES = ("planned", "waitlist", "cancelled", "entered-in-error")
# v3 ActCode encounter classes of an admission or an emergency attendance: open-ended while they last.
OPEN_ENDED_CLASSES = {
    "IMP": "inpatient admission",
    "ACUTE": "inpatient admission",
    "NONAC": "inpatient admission",
    "OBSENC": "observation stay",
    "EMER": "emergency attendance",
}
REFERRAL_ACTIVE_STATUSES = ("active", "draft", "on-hold")
DERIVED_BASES = frozenset(Basis.values)
# The strongest basis wins; an open care event outranks a caseload, a recent one ranks last.
_OPEN_CARE_EVENT, _CASELOAD, _REFERRAL, _RECENT_CARE_EVENT = 1, 2, 3, 4
_REGISTRATION = 0
_CHUNK = 2000
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_DESCRIPTION_MAX = 200


@dataclass(frozen=True)
class Derived:
    """One relationship the data supports, with where it came from."""

    basis: str
    valid_until: datetime | None
    rank: int
    source_feed_id: int | None = None
    source_run_id: int | None = None
    source_entry_id: int | None = None
    source_description: str = ""
    # Among candidates of one rank: the later end, then the later start, then the later entry wins.
    recency: tuple[datetime, datetime, int] = (EARLIEST, EARLIEST, 0)

    def beats(self, other: Derived) -> bool:
        if self.rank != other.rank:
            return self.rank < other.rank
        return self.recency > other.recency


@dataclass(frozen=True)
class _Entry:
    """An encounter, episode or referral, with the parts of its resource the rules read (decoded JSON)."""

    pk: int
    patient_id: int
    organisation_id: int
    feed_id: int
    ingest_run_id: int
    resource_type: str
    source_id: str
    status: str
    effective_at: datetime | None
    effective_end: datetime | None
    summary: str
    encounter_class: str | None
    team: Any
    care_manager: Any
    performer: Any
    contained: Any

    @property
    def resource(self) -> JsonObject:
        # What `_named` looks into: the resources contained in this one.
        return {"contained": self.contained or []}


@dataclass(frozen=True)
class _Holder:
    group_id: int
    kind: str
    name: str


class _Partners:
    """The organisations and teams relationships may be held by, read once per refresh."""

    def __init__(self) -> None:
        self.organisations = {
            pk: _Holder(group_id, kind, ods_code)
            for pk, ods_code, kind, group_id in Organisation.objects.values_list(
                "pk", "ods_code", "kind", "group_id"
            )
        }
        self.by_ods = {holder.name: pk for pk, holder in self.organisations.items()}
        self.teams = {
            (organisation_id, code): (name, group_id)
            for organisation_id, code, name, group_id in CareTeam.objects.values_list(
                "organisation_id", "code", "name", "group_id"
            )
        }

    def organisation(self, organisation_id: int) -> _Holder:
        return self.organisations[organisation_id]

    def team(self, organisation_id: int, codes: Iterable[str]) -> _Holder | None:
        for code in codes:
            found = self.teams.get((organisation_id, code))
            if found is not None:
                return _Holder(found[1], self.organisations[organisation_id].kind, found[0])
        return None


# Readers of stored FHIR JSON that take whatever a partner sent: the rules know nothing of the ingest workers.


def as_object(value: object) -> JsonObject:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def window_for(kind: str) -> timedelta:
    """How long a finished care event keeps its holder's relationship, for this kind of organisation."""
    days = settings.RELATIONSHIP_ENCOUNTER_DAYS_BY_KIND.get(kind, settings.RELATIONSHIP_ENCOUNTER_DAYS)
    return timedelta(days=days)


def _contained(resource: JsonObject, reference: JsonObject) -> JsonObject:
    target = text(reference.get("reference"))
    if not target.startswith("#"):
        return {}
    for candidate in as_list(resource.get("contained")):
        candidate = as_object(candidate)
        if text(candidate.get("id")) == target[1:]:
            return candidate
    return {}


def _named(resource: JsonObject, reference: object) -> tuple[set[str], set[str]]:
    """The ODS codes and the other identifiers (team codes, perhaps) a reference names, directly or contained."""
    reference = as_object(reference)
    ods_codes: set[str] = set()
    others: set[str] = set()

    def identifiers(values: object) -> None:
        for identifier in as_list(values):
            identifier = as_object(identifier)
            value = text(identifier.get("value"))
            if value:
                (ods_codes if identifier.get("system") == ODS_SYSTEM else others).add(value)

    identifiers(reference.get("identifier"))
    literal = text(reference.get("reference"))
    if literal.startswith("Organization/"):
        ods_codes.add(literal.removeprefix("Organization/"))
    contained = _contained(resource, reference)
    if contained:
        if contained.get("resourceType") == "Organization":
            for identifier in as_list(contained.get("identifier")):
                identifier = as_object(identifier)
                if identifier.get("system") == ODS_SYSTEM and text(identifier.get("value")):
                    ods_codes.add(text(identifier.get("value")))
        else:
            identifiers(contained.get("identifier"))
        for key in ("managingOrganization", "providedBy", "organization"):
            for owner in as_list(contained.get(key)):
                owned_ods, _ = _named(resource, owner)
                ods_codes |= owned_ods
    return ods_codes, others


def _describe(entry: _Entry, what: str, state: str) -> str:
    words = f"{entry.resource_type}/{entry.source_id}: {what}, {state}"
    return words if len(words) <= _DESCRIPTION_MAX else words[: _DESCRIPTION_MAX - 1] + "…"


def _day(moment: datetime) -> str:
    return timezone.localtime(moment).date().isoformat()


def _from_entry(entry: _Entry, basis: str, rank: int, until: datetime | None, description: str) -> Derived:
    moment = entry.effective_at or entry.effective_end or EARLIEST
    return Derived(
        basis=basis,
        valid_until=until,
        rank=rank,
        source_feed_id=entry.feed_id,
        source_run_id=entry.ingest_run_id,
        source_entry_id=entry.pk,
        source_description=description,
        recency=(until or LATEST, moment, entry.pk),
    )


def _care_event(entry: _Entry, partners: _Partners, now: datetime) -> list[tuple[int, Derived]]:
    status = entry.status
    if status in NO_CARE_STATUSES:
        return []
    resource_type = entry.resource_type
    organisation = partners.organisation(entry.organisation_id)
    named: set[str] = set()
    names_someone = False
    if resource_type == "EpisodeOfCare":
        for reference in [*as_list(entry.team), *as_list(entry.care_manager)]:
            names_someone = True
            _, others = _named(entry.resource, reference)
            named |= others
    team = partners.team(entry.organisation_id, sorted(named)) if named else None
    holder = team or organisation
    end = entry.effective_end
    is_open = status in OPEN_STATUSES and (end is None or end > now)
    encounter_class = entry.encounter_class or ""
    what = OPEN_ENDED_CLASSES.get(encounter_class) or (entry.summary or resource_type)[:80]
    if is_open and resource_type == "EpisodeOfCare" and names_someone:
        state = f"active, on the caseload of {holder.name}"
        return [
            (
                holder.group_id,
                _from_entry(entry, Basis.CASELOAD, _CASELOAD, None, _describe(entry, what, state)),
            )
        ]
    if is_open and (resource_type == "EpisodeOfCare" or encounter_class in OPEN_ENDED_CLASSES):
        derived = _from_entry(entry, Basis.CARE_EVENT, _OPEN_CARE_EVENT, None, _describe(entry, what, "open"))
        return [(holder.group_id, derived)]
    # A contact still going on (an outpatient attendance) counts from its start; a finished one from its end.
    last = entry.effective_end or entry.effective_at
    if last is None:
        return []
    until = last + window_for(holder.kind)
    state = f"ended {_day(last)}" if entry.effective_end else f"began {_day(last)}"
    derived = _from_entry(entry, Basis.CARE_EVENT, _RECENT_CARE_EVENT, until, _describe(entry, what, state))
    return [(holder.group_id, derived)]


def _referral(entry: _Entry, partners: _Partners) -> list[tuple[int, Derived]]:
    if entry.status not in REFERRAL_ACTIVE_STATUSES:
        return []
    found: list[tuple[int, Derived]] = []
    ods_codes: set[str] = set()
    identifiers: set[str] = set()
    for reference in as_list(entry.performer):
        named_ods, others = _named(entry.resource, reference)
        ods_codes |= named_ods
        identifiers |= others
    what = (entry.summary or "referral")[:80]
    named = [(ods_code, partners.by_ods.get(ods_code)) for ods_code in sorted(ods_codes)]
    if not ods_codes:
        # A performer named by a team code alone is one of the sending partner's own teams.
        sender = partners.organisation(entry.organisation_id)
        named = (
            [(sender.name, entry.organisation_id)]
            if partners.team(entry.organisation_id, identifiers)
            else []
        )
    for ods_code, organisation_id in named:
        if organisation_id is None:
            continue
        team = partners.team(organisation_id, sorted(identifiers))
        holder = team or partners.organisation(organisation_id)
        state = f"referral to {ods_code}" + (f" ({team.name})" if team else "") + f", {entry.status}"
        found.append(
            (
                holder.group_id,
                _from_entry(entry, Basis.REFERRAL, _REFERRAL, None, _describe(entry, what, state)),
            )
        )
    return found


def _entries(patient_ids: list[int]) -> Iterator[_Entry]:
    """The patients' encounters, episodes and referrals, with the parts of each resource the rules read."""
    rows = (
        RecordEntry.objects.filter(
            patient_id__in=patient_ids,
            resource_type__in=(*CARE_EVENT_TYPES, *REFERRAL_TYPES),
            is_entered_in_error=False,
            is_deleted_at_source=False,
        )
        .annotate(
            encounter_class=KT("resource__class__code"),
            team=KeyTransform("team", "resource"),
            care_manager=KeyTransform("careManager", "resource"),
            performer=KeyTransform("performer", "resource"),
            contained=KeyTransform("contained", "resource"),
        )
        .values(
            "pk",
            "patient_id",
            "organisation_id",
            "feed_id",
            "ingest_run_id",
            "resource_type",
            "source_id",
            "status",
            "effective_at",
            "effective_end",
            "summary",
            "encounter_class",
            "team",
            "care_manager",
            "performer",
            "contained",
        )
        .order_by("pk")
    )
    for row in rows:
        yield _Entry(**row)


def _registrations(
    patients: Sequence[tuple[int, int, int | None]], partners: _Partners
) -> list[tuple[int, int, Derived]]:
    """The registered-practice relationships of (patient, practice, demographics source) rows, with the feed
    that sent the registration, and its run while that run is the one refreshing."""
    sources = {source or practice for _, practice, source in patients}
    running: dict[int, tuple[int | None, int | None]] = {}
    for organisation_id, running_run_id, running_feed_id in (
        IngestRun.objects.filter(status=IngestRun.Status.RUNNING, feed__organisation_id__in=sources)
        .order_by("pk")
        .values_list("feed__organisation_id", "pk", "feed_id")
    ):
        running[organisation_id] = (running_run_id, running_feed_id)
    feeds: dict[int, int] = {}
    for organisation_id, feed_id in (
        Feed.objects.filter(organisation_id__in=sources)
        .order_by("-can_create_patients", "pk")
        .values_list("organisation_id", "pk")
    ):
        feeds.setdefault(organisation_id, feed_id)
    partner_ids = dict(
        PartnerPatientId.objects.filter(
            patient_id__in=[patient_id for patient_id, _, _ in patients],
            organisation_id=F("patient__source_organisation_id"),
        ).values_list("patient_id", "source_id")
    )
    found = []
    for patient_id, practice_id, source_id in patients:
        source = source_id or practice_id
        run_id, source_feed_id = running.get(source, (None, feeds.get(source)))
        practice = partners.organisation(practice_id)
        words = f"Patient registration at {practice.name}"
        if patient_id in partner_ids:
            words += f" (Patient/{partner_ids[patient_id]})"
        derived = Derived(
            basis=Basis.REGISTERED_PRACTICE,
            valid_until=None,
            rank=_REGISTRATION,
            source_feed_id=source_feed_id,
            source_run_id=run_id,
            source_description=words[:_DESCRIPTION_MAX],
        )
        found.append((patient_id, practice.group_id, derived))
    return found


def relationships_derive(patient_ids: list[int], now: datetime) -> dict[tuple[int, int], Derived]:
    """The relationship each (patient, holder group) should have now: the strongest the data supports."""
    partners = _Partners()
    patients = list(
        Patient.objects.filter(pk__in=patient_ids, merged_into__isnull=True).values_list(
            "pk", "registered_practice_id", "source_organisation_id"
        )
    )
    current = {patient_id for patient_id, _, _ in patients}
    wanted: dict[tuple[int, int], Derived] = {}

    def offer(patient_id: int, group_id: int, derived: Derived) -> None:
        held = wanted.get((patient_id, group_id))
        if held is None or derived.beats(held):
            wanted[(patient_id, group_id)] = derived

    for entry in _entries(sorted(current)):
        is_referral = entry.resource_type in REFERRAL_TYPES
        found = _referral(entry, partners) if is_referral else _care_event(entry, partners, now)
        for group_id, derived in found:
            offer(entry.patient_id, group_id, derived)
    registered = [(pk, practice, source) for pk, practice, source in patients if practice is not None]
    for patient_id, group_id, derived in _registrations(registered, partners):
        offer(patient_id, group_id, derived)
    return wanted


_FIELDS = ("basis", "valid_until", "source_feed_id", "source_run_id", "source_entry_id", "source_description")


def _access_permission() -> Permission:
    return Permission.objects.get(codename=ACCESS_RECORD_PERMISSION, content_type__app_label="records")


def relationships_refresh(patient_ids: Iterable[int]) -> int:
    """Re-derive the legitimate relationships of these patients from their current data (see the module).

    Writes what the data supports, updates what changed (basis, end, provenance), and removes derived
    relationships the data no longer supports; any other relationship is left as it is. Returns the number of
    rows written or removed. Each is also written to the change history (`consent.derivation_history`), with the
    feed and run that derived it, in the same transaction.
    """
    ids = sorted(set(patient_ids))
    if not ids:
        return 0
    now = timezone.now()
    permission = _access_permission()
    changes = 0
    with transaction.atomic():
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            wanted = relationships_derive(chunk, now)
            existing = {
                (row.content_object_id, row.group_id): row
                for row in LegitimateRelationship.objects.select_for_update().filter(
                    content_object_id__in=chunk
                )
            }
            to_create: list[LegitimateRelationship] = []
            to_update: list[tuple[LegitimateRelationship, Values]] = []
            to_delete: list[tuple[LegitimateRelationship, Values]] = []
            for key, derived in wanted.items():
                row = existing.get(key)
                if row is None:
                    to_create.append(
                        LegitimateRelationship(
                            content_object_id=key[0],
                            group_id=key[1],
                            permission=permission,
                            valid_from=now,
                            derived_at=now,
                            **{field: getattr(derived, field) for field in _FIELDS},
                        )
                    )
                    continue
                if row.basis not in DERIVED_BASES:
                    continue
                if derived.source_run_id is None and (row.basis, row.source_feed_id, row.source_entry_id) == (
                    derived.basis,
                    derived.source_feed_id,
                    derived.source_entry_id,
                ):
                    # Refreshed by another partner's run: the registration still came with the run it came with.
                    derived = replace(derived, source_run_id=row.source_run_id)
                if any(getattr(row, field) != getattr(derived, field) for field in _FIELDS):
                    before = relationship_values(row)
                    for field in _FIELDS:
                        setattr(row, field, getattr(derived, field))
                    row.derived_at = now
                    to_update.append((row, before))
            for key, row in existing.items():
                if key not in wanted and row.basis in DERIVED_BASES:
                    to_delete.append((row, relationship_values(row)))
            LegitimateRelationship.objects.bulk_create(to_create)
            LegitimateRelationship.objects.bulk_update(
                [row for row, _ in to_update], [*_FIELDS, "derived_at"]
            )
            # django-auditlog would log each removal with a query of its own, and without the feed that derived it.
            with disable_auditlog():
                LegitimateRelationship.objects.filter(pk__in=[row.pk for row, _ in to_delete]).delete()
            # Bulk writes pass django-auditlog by; their history is written here, in the same transaction.
            relationship_changes_log(created=to_create, changed=to_update, removed=to_delete, now=now)
            changes += len(to_create) + len(to_update) + len(to_delete)
    return changes
