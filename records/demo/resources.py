"""What every demo resource has in common: a stable id, meta, the subject reference, dates relative to a reference day.

A `ResourceBuilder` collects the resources one feed sends about one patient. Its random numbers come from a
generator seeded by (seed, NHS number, feed), so one partner's content never shifts because another partner's
rules changed, and a smaller demo is an exact prefix of a bigger one.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from records.demo.codes import Concept
from records.demo.partners import FeedSpec
from records.sections import HEADINGS_SYSTEM, Section

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

# Ids are a function of the NHS number, the feed and the item, never of the seed or the run: loading again, with
# more patients or another seed, updates the same record entries instead of adding new ones.
_ID_NAMESPACE = uuid.UUID("6f2c1d0e-5b7a-4c39-9e21-3a8f4b6d7c10")

Resource = dict[str, Any]

# Partners record local time; the reference day is a day in England, so "before it" means before its local midnight.
LOCAL_TIME = ZoneInfo("Europe/London")


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=LOCAL_TIME)


@dataclass(frozen=True)
class DemoPatient:
    """One invented person, and which partners hold data about them."""

    index: int
    nhs_number: str
    prefix: str
    given_name: str
    family_name: str
    gender: str
    birth_date: date
    address_line: str
    town: str
    postcode: str
    phone: str
    practice: str
    # ODS code of the acute trust nearest home: where GP referrals go and emergencies are taken.
    local_hospital: str
    problems: tuple[str, ...]
    # Feed codes other than the GP feed, in the order the feeds are declared.
    feeds: tuple[str, ...]
    # Showcase patients get every optional item their partners can send, so a small demo still covers every section.
    showcase: bool
    # The one thing the demo shows through this patient, if any (a `Story`).
    story: str = ""

    def age_on(self, day: date) -> int:
        before_birthday = (day.month, day.day) < (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - int(before_birthday)


class Story:
    """What a fixed patient is in the demo to show, beyond the record itself."""

    # On the county council's north team's caseload (a row of the council's caseload extract), and no other.
    TEAM_CASELOAD = "team-caseload"
    # Referred by the GP to the mental-health trust, who hold nothing else about the patient.
    REFERRAL_TO_MENTAL_HEALTH = "referral-to-mental-health"
    # Sexually transmitted infections recorded by two partners: the GP and the acute trust.
    SENSITIVE_FROM_TWO_SOURCES = "sensitive-from-two-sources"
    # Whereabouts protected at the patient's request (PDS "R"): the GP sends the Patient marked restricted.
    RESTRICTED = "restricted"


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(parts)))


def instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def organisation_reference(ods_code: str, name: str) -> dict[str, Any]:
    """A logical reference by ODS code: partners never send Organization resources, only point at them."""
    return {"identifier": {"system": ODS_SYSTEM, "value": ods_code}, "display": name}


def text_concept(text: str) -> dict[str, str]:
    return {"text": text}


class ResourceBuilder:
    def __init__(
        self, feed: FeedSpec, organisation_name: str, patient: DemoPatient, reference: date, seed: int
    ) -> None:
        self.feed = feed
        self.patient = patient
        self.reference = reference
        self.rng = random.Random(f"sharedcare-demo:{seed}:{patient.nhs_number}:{feed.code}")  # noqa: S311 - demo data, not security
        self.midnight = local_midnight(reference)
        self.organisation = organisation_reference(feed.ods_code, organisation_name)
        self.entries: list[dict[str, Any]] = []
        self.patient_full_url = f"urn:uuid:{self.resource_id('patient')}"
        self.age = patient.age_on(reference)

    @property
    def subject(self) -> dict[str, Any]:
        """GP bundles carry the Patient, so point at it; other partners know the patient by NHS number only."""
        if self.feed.can_create_patients:
            return {"reference": self.patient_full_url}
        return {
            "type": "Patient",
            "identifier": {"system": NHS_NUMBER_SYSTEM, "value": self.patient.nhs_number},
        }

    def resource_id(self, key: str) -> str:
        return stable_id(self.feed.code, self.patient.nhs_number, key)

    def before_reference(self, moment: datetime) -> datetime:
        """Clamp a moment computed forwards (an end, an issue time) so that it never passes the reference day."""
        return min(moment, self.midnight - timedelta(minutes=1))

    def at(self, days_ago: int, hour: int | None = None, minute: int | None = None) -> datetime:
        """A moment `days_ago` whole days before the reference day (always before it, so never in the future)."""
        days = max(days_ago, 1)
        hour = self.rng.randint(8, 18) if hour is None else hour
        minute = self.rng.choice((0, 5, 10, 15, 20, 30, 40, 45, 50)) if minute is None else minute
        return self.midnight - timedelta(days=days) + timedelta(hours=hour, minutes=minute)

    def years_ago(self, low: int, high: int) -> datetime:
        """A moment between `low` and `high` years ago, but never before the patient was born."""
        days = self.rng.randint(low * 365, high * 365)
        days_alive = (self.reference - self.patient.birth_date).days
        return self.at(min(days, max(days_alive - 1, 1)))

    def add(
        self,
        resource_type: str,
        key: str,
        body: dict[str, Any],
        *,
        updated: datetime,
        heading: Section | None = None,
        confidentiality: str = "",
    ) -> str:
        """Add one resource and return its fullUrl, for other resources in the bundle to point at.

        A `confidentiality` code (v3-Confidentiality, e.g. "R") labels the resource in meta.security.
        """
        resource_id = self.resource_id(key)
        meta: dict[str, Any] = {"lastUpdated": instant(updated)}
        if heading is not None:
            meta["tag"] = [{"system": HEADINGS_SYSTEM, "code": heading.value, "display": heading.label}]
        if confidentiality:
            meta["security"] = [{"system": CONFIDENTIALITY_SYSTEM, "code": confidentiality}]
        resource: Resource = {"resourceType": resource_type, "id": resource_id, "meta": meta, **body}
        full_url = f"urn:uuid:{resource_id}"
        self.entries.append({"fullUrl": full_url, "resource": resource})
        return full_url

    def pick(self, options: tuple[Concept, ...]) -> Concept:
        return self.rng.choice(options)

    def chance(self, probability: float) -> bool:
        """True with this probability, and always for a showcase patient."""
        return self.patient.showcase or self.rng.random() < probability
