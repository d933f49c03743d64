"""The scan of the access trail for suspicious patterns, after the fact: never on the read path, so the record page
pays nothing for it.

Each rule judges allowed views of a patient's record (the record, a section, a document) and raises an alert for
the privacy officer's queue:
- own record: the user opened their own record (their NHS number, or family name, birth date and postcode all
  equal to those HR holds for them, `consent.models.StaffIdentity`);
- family record: the user opened a record sharing their family name and address (postcode and first address line),
  not their own;
- unusual volume: more distinct patients in one clock hour than `ALERT_VOLUME_MINIMUM` and than
  `ALERT_VOLUME_FACTOR` times the user's usual hourly count over the previous 28 days' active hours;
- out of hours: a direct-care view outside working hours (`ALERT_WORKING_WEEKDAYS`, `ALERT_WORKING_HOURS`, local
  time) whose basis is not a care relationship derived from partners' data (a self-claim or a break-glass);
- restricted patient: any view of a patient marked restricted.
The feeds' relationship rate is judged by `consent.surveillance_feeds`.

What always holds:
- a rule reads the events after its own mark (`audit.AlertScan`), in id order and in batches, and raises its
  alerts and advances its mark in one transaction, holding its mark's row locked: two scans at once, or one run
  twice, judge each event once;
- one finding raises one alert however often it is met: its reference names the rule, the day (or hour) and a
  digest of who and whom, and `audit.alerts.alert_raise_once` raises it once;
- an alert's reason names no patient; the patient is reached from the alert's page, whose reading is audited.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import fmean

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from audit.alerts import alert_raise_once
from audit.models import AccessEvent, Alert, AlertScan
from audit.services import Actor
from consent.models import LegitimateRelationship, StaffIdentity
from consent.surveillance_feeds import feed_relationship_rate_scan
from records import nhs_number
from records.models import Patient

Kind = Alert.Kind
BATCH = 5000
VIEW_ACTIONS = (
    AccessEvent.Action.VIEW_RECORD,
    AccessEvent.Action.VIEW_SECTION,
    AccessEvent.Action.VIEW_DOCUMENT,
)
# The bases `consent.policy.decide` writes for a relationship derived from partners' data, as "<basis>:<holder> ...".
CARE_CONTEXT_BASES = frozenset(LegitimateRelationship.Basis.values)
USUAL_DAYS = 28
_VIEWS = Q(action__in=VIEW_ACTIONS, outcome=AccessEvent.Outcome.ALLOWED, patient_id__isnull=False)
_EVENT_FIELDS = (
    "id",
    "occurred_at",
    "user_id",
    "username",
    "job_role",
    "organisation_ods",
    "patient_id",
    "action",
    "outcome",
    "purpose",
    "basis",
)
_PREFIXES: dict[str, str] = {
    Kind.OWN_RECORD: "OWN",
    Kind.FAMILY_RECORD: "FAM",
    Kind.UNUSUAL_VOLUME: "VOL",
    Kind.OUT_OF_HOURS: "OOH",
    Kind.RESTRICTED_PATIENT: "RST",
}


@dataclass(frozen=True)
class Finding:
    """One thing a rule found: the event that shows it, and what was found, in words that name no patient."""

    reference: str
    event: AccessEvent
    reason: str


Rule = Callable[[Sequence[AccessEvent], int], list[Finding]]


def suspicious_access_scan(now: datetime | None = None) -> int:
    """Judge every access event (and every finished ingest run) no rule has judged yet; return how many alerts were
    raised. Safe to run twice, and at the same time: see the module."""
    moment = now or timezone.now()
    raised = sum(_rule_scan(kind, rule, moment) for kind, rule in RULES.items())
    return raised + feed_relationship_rate_scan(moment)


def _rule_scan(kind: str, rule: Rule, now: datetime) -> int:
    raised = 0
    while True:
        with transaction.atomic():
            scan, _ = AlertScan.objects.select_for_update().get_or_create(rule=kind)
            events = list(
                AccessEvent.objects.filter(pk__gt=scan.last_event_id)
                .order_by("pk")
                .only(*_EVENT_FIELDS)[:BATCH]
            )
            if events:
                views = [event for event in events if _is_view(event)]
                found = rule(views, events[-1].pk) if views else []
                # Raised last: alert_raise_once holds the audit chain's lock to the end of this transaction, and
                # every access waits on that lock.
                raised += sum(_raise(kind, finding) for finding in found)
                scan.last_event_id = events[-1].pk
            scan.scanned_at = now
            scan.save(update_fields=["last_event_id", "scanned_at"])
        if len(events) < BATCH:
            return raised


def _is_view(event: AccessEvent) -> bool:
    return (
        event.action in VIEW_ACTIONS
        and event.outcome == AccessEvent.Outcome.ALLOWED
        and event.patient_id is not None
    )


def _raise(kind: str, finding: Finding) -> bool:
    event = finding.event
    # Only views of a patient are judged.
    if event.patient_id is None:
        raise RuntimeError("invariant: event.patient_id is not None")
    alert = alert_raise_once(
        kind=kind,
        reference=finding.reference,
        actor=Actor(
            user_id=event.user_id,
            username=event.username,
            job_role=event.job_role,
            organisation_ods=event.organisation_ods,
        ),
        patient_id=event.patient_id,
        reason=finding.reason,
        event=event,
    )
    return alert.event_id == event.pk


def reference_for(kind: str, moment: str, *about: object) -> str:
    """An alert's reference: the rule, when (a day or an hour), and a digest of who and whom, so the same finding
    always has the same reference and the reference names no one."""
    digest = hashlib.sha256(":".join([kind, moment, *map(str, about)]).encode()).digest()
    return f"{_PREFIXES[kind]}-{moment}-{base64.b32encode(digest).decode()[:8]}"


def _local(moment: datetime) -> datetime:
    return timezone.localtime(moment)


def _day(event: AccessEvent) -> str:
    return f"{_local(event.occurred_at):%Y%m%d}"


def _first_per_reference(found: list[Finding]) -> list[Finding]:
    kept: dict[str, Finding] = {}
    for finding in found:
        kept.setdefault(finding.reference, finding)
    return list(kept.values())


# Own and family records.


def _words(value: str) -> str:
    """A name or an address line as compared: lower case, letters and digits, single spaces."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", value.lower()).split())


def _postcode(value: str) -> str:
    return re.sub(r"\s+", "", value.upper())


def _first_line(address: str) -> str:
    return _words(re.split(r"[,\n]", address, maxsplit=1)[0])


def is_own_record(identity: StaffIdentity, patient: Patient) -> bool:
    """The patient is the user: the same NHS number, or the same family name, birth date and postcode."""
    if identity.nhs_number and nhs_number.normalise(identity.nhs_number) == patient.nhs_number:
        return True
    return (
        bool(identity.family_name)
        and _words(identity.family_name) == _words(patient.family_name)
        and identity.birth_date == patient.birth_date
        and _postcode(identity.postcode) == _postcode(patient.postcode)
    )


def is_household_record(identity: StaffIdentity, patient: Patient) -> bool:
    """The patient shares the user's family name and address (postcode and first line), and is not the user."""
    return (
        not is_own_record(identity, patient)
        and bool(_words(identity.family_name))
        and _words(identity.family_name) == _words(patient.family_name)
        and bool(_postcode(identity.postcode))
        and _postcode(identity.postcode) == _postcode(patient.postcode)
        and bool(_words(identity.address_line))
        and _words(identity.address_line) == _first_line(patient.address)
    )


def _identity_findings(
    views: Sequence[AccessEvent], kind: str, matches: Callable[[StaffIdentity, Patient], bool], reason: str
) -> list[Finding]:
    identities = {
        identity.user_id: identity
        for identity in StaffIdentity.objects.filter(user_id__in={event.user_id for event in views})
    }
    if not identities:
        return []
    opened = [
        (identities[event.user_id], event)
        for event in views
        if event.user_id is not None and event.user_id in identities
    ]
    patients = Patient.objects.filter(pk__in={event.patient_id for _, event in opened}).only(
        "nhs_number", "family_name", "birth_date", "postcode", "address"
    )
    by_id = {patient.pk: patient for patient in patients}
    found = [
        Finding(
            reference=reference_for(kind, _day(event), event.user_id, event.patient_id),
            event=event,
            reason=reason,
        )
        for identity, event in opened
        if event.patient_id in by_id and matches(identity, by_id[event.patient_id])
    ]
    return _first_per_reference(found)


def own_record_findings(views: Sequence[AccessEvent], upper: int) -> list[Finding]:
    return _identity_findings(
        views,
        Kind.OWN_RECORD,
        is_own_record,
        "Opened a record matching the identity HR holds for them (NHS number, or name, birth date and postcode).",
    )


def family_record_findings(views: Sequence[AccessEvent], upper: int) -> list[Finding]:
    return _identity_findings(
        views,
        Kind.FAMILY_RECORD,
        is_household_record,
        "Opened a record with their own family name at their own address (postcode and first line).",
    )


# Unusual volume.


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hourly_counts(views: Q) -> dict[tuple[int, datetime], int]:
    rows = (
        AccessEvent.objects.filter(_VIEWS & views)
        .annotate(hour=TruncHour("occurred_at", tzinfo=UTC))
        .values_list("user_id", "hour")
        .annotate(patients=Count("patient_id", distinct=True))
        .order_by()
    )
    return {(user_id, hour): patients for user_id, hour, patients in rows}


def usual_hourly_count(user_id: int, hour: datetime) -> float:
    """The user's mean count of distinct patients per active hour (an hour with any view) over the previous
    28 days; 0 for a user with none."""
    counts = _hourly_counts(
        Q(user_id=user_id, occurred_at__gte=hour - timedelta(days=USUAL_DAYS), occurred_at__lt=hour)
    )
    return fmean(counts.values()) if counts else 0.0


def unusual_volume_findings(views: Sequence[AccessEvent], upper: int) -> list[Finding]:
    latest: dict[tuple[int, datetime], AccessEvent] = {}
    for event in views:
        if event.user_id is not None:
            latest[(event.user_id, _hour(event.occurred_at))] = event
    if not latest:
        return []
    hours = [hour for _, hour in latest]
    # Up to the batch's last event, so a finding depends on the events judged, not on when the scan ran.
    counts = _hourly_counts(
        Q(
            user_id__in={user_id for user_id, _ in latest},
            occurred_at__gte=min(hours),
            occurred_at__lt=max(hours) + timedelta(hours=1),
            pk__lte=upper,
        )
    )
    minimum, factor = settings.ALERT_VOLUME_MINIMUM, settings.ALERT_VOLUME_FACTOR
    found = []
    for (user_id, hour), event in latest.items():
        patients = counts.get((user_id, hour), 0)
        if patients <= minimum:
            continue
        usual = usual_hourly_count(user_id, hour)
        threshold = max(minimum, factor * usual)
        if patients <= threshold:
            continue
        start = _local(hour)
        end = _local(hour + timedelta(hours=1))
        found.append(
            Finding(
                reference=reference_for(Kind.UNUSUAL_VOLUME, f"{start:%Y%m%d%H}", user_id),
                event=event,
                reason=(
                    f"{patients} patients between {start:%H:%M} and {end:%H:%M} on {start:%-d %B %Y}; "
                    f"usual {usual:.0f} an hour (alerted above {threshold:.0f})."
                ),
            )
        )
    return found


# Out of hours.


def is_working_time(moment: datetime) -> bool:
    """Within working hours: a working weekday, from the start of the working day up to (not at) its end."""
    local = _local(moment)
    start, end = settings.ALERT_WORKING_HOURS
    return local.weekday() in settings.ALERT_WORKING_WEEKDAYS and start <= local.time() < end


def has_care_context(basis: str) -> bool:
    """The basis of the view is a relationship derived from partners' data: a registration, a care event, a
    caseload or a referral; not a self-claim or a break-glass."""
    return basis.split(":", 1)[0] in CARE_CONTEXT_BASES


def out_of_hours_findings(views: Sequence[AccessEvent], upper: int) -> list[Finding]:
    found = [
        Finding(
            reference=reference_for(Kind.OUT_OF_HOURS, _day(event), event.user_id, event.patient_id),
            event=event,
            reason=(
                f"Opened a record at {_local(event.occurred_at):%H:%M on %A %-d %B %Y}, outside working hours, "
                f"by {_basis_words(event.basis)}."
            ),
        )
        for event in views
        # Direct care only: the IG team's and feed support's reads have purposes and reviews of their own.
        if event.purpose == AccessEvent.Purpose.DIRECT_CARE
        and not is_working_time(event.occurred_at)
        and not has_care_context(event.basis)
    ]
    return _first_per_reference(found)


def _basis_words(basis: str) -> str:
    kind, _, rest = basis.partition(":")
    reference = rest.split(" ")[-1] if rest else ""
    named = {"self-claim": "a self-claimed relationship", "break-glass": "break-glass access"}.get(kind)
    if named is None:
        return "a basis that is not a care relationship"
    return f"{named} {reference}".strip()


# Restricted patients.


def restricted_patient_findings(views: Sequence[AccessEvent], upper: int) -> list[Finding]:
    restricted = set(
        Patient.objects.filter(pk__in={event.patient_id for event in views}, is_restricted=True).values_list(
            "pk", flat=True
        )
    )
    found = [
        Finding(
            reference=reference_for(Kind.RESTRICTED_PATIENT, _day(event), event.user_id, event.patient_id),
            event=event,
            reason=f"Opened a restricted patient's record on {_local(event.occurred_at):%-d %B %Y}.",
        )
        for event in views
        if event.patient_id in restricted
    ]
    return _first_per_reference(found)


RULES: dict[str, Rule] = {
    Kind.OWN_RECORD: own_record_findings,
    Kind.FAMILY_RECORD: family_record_findings,
    Kind.UNUSUAL_VOLUME: unusual_volume_findings,
    Kind.OUT_OF_HOURS: out_of_hours_findings,
    Kind.RESTRICTED_PATIENT: restricted_patient_findings,
}
