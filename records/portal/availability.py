"""Which partners share data, and which hold data about this patient, with how fresh each partner's feeds are.

`data_availability_get` is the same for every patient: every active partner with its live datasets, and those not
yet joined, read as one fixed statement (`_PARTNERS_SQL`) rather than as model instances, which cost Django far more
than PostgreSQL took to answer on every record open. `patient_availability_build` narrows it to one record: the
partners holding entries this page may show (never a partner whose entries the role, an objection or the sensitive
rules withhold), and the stale feeds among theirs, which the page announces at the top. Always holds: a restricted
patient's GP practice is named as "the patient's GP practice" to a role that may not see their whereabouts, and its
feeds are not named.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from records.models import Feed, Organisation
from records.portal.record_reads import PartnerHolding

# How a partner hidden by a restricted record is named, on rows and in the list of partners.
HIDDEN_PRACTICE = "The patient's GP practice"


@dataclass(frozen=True)
class FeedAvailability:
    """A live dataset as the record page shows it: when it last arrived, and whether that is too long ago."""

    name: str
    partner: str
    last_success_at: datetime | None
    # No success within twice its schedule: this partner's part of the record may be out of date.
    is_stale: bool


@dataclass(frozen=True)
class Partner:
    """What the page names of an active partner: its name and ODS code (`pk` is its `Organisation`'s)."""

    pk: int
    name: str
    ods_code: str


@dataclass(frozen=True)
class PartnerData:
    organisation: Partner
    feeds: list[FeedAvailability]


@dataclass(frozen=True)
class DataAvailability:
    live: list[PartnerData]
    not_joined: list[Partner]

    @property
    def stale(self) -> list[FeedAvailability]:
        return [feed for partner in self.live for feed in partner.feeds if feed.is_stale]


@dataclass(frozen=True)
class PatientPartner:
    """A partner holding data about this patient that the page may show, and how fresh its feeds are."""

    name: str
    ods_code: str
    is_hidden: bool
    entries: int
    latest_at: datetime | None
    # The partner's live datasets; empty when it sends none live now (its entries may be old).
    feeds: list[FeedAvailability]

    @property
    def stale(self) -> list[FeedAvailability]:
        return [feed for feed in self.feeds if feed.is_stale]


@dataclass(frozen=True)
class PatientAvailability:
    partners: list[PatientPartner]
    system: DataAvailability
    # Stale feeds of the partners holding this patient's data, named as this role may be told them.
    stale: list[FeedAvailability]
    # Stale feeds of every other partner: counted, not named, at the top of the page.
    stale_elsewhere: int


# Every active partner, by name, with its live feeds by name (none: a row of NULLs, so it is not yet joined).
_PARTNERS_SQL = """
SELECT organisation.id, organisation.name, organisation.ods_code,
       feed.id, feed.name, feed.last_success_at, feed.schedule_minutes
FROM records_organisation AS organisation
LEFT JOIN records_feed AS feed ON feed.organisation_id = organisation.id AND feed.state = %(live)s
WHERE organisation.is_active
ORDER BY organisation.name, organisation.id, feed.name, feed.id
"""


def _is_stale(last_success_at: datetime | None, schedule_minutes: int, now: datetime) -> bool:
    # `Feed.is_stale` for a live feed: no success within twice its schedule (the tests hold the two the same).
    return last_success_at is None or now - last_success_at > timedelta(minutes=2 * schedule_minutes)


def data_availability_get(now: datetime | None = None) -> DataAvailability:
    """Every active partner with its live datasets (each flagged stale or not as of `now`), and the active
    partners that have no live dataset yet. The same for every patient and user: it reads no one's record."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_PARTNERS_SQL, {"live": Feed.State.LIVE.value})
        rows = cursor.fetchall()
    live: list[PartnerData] = []
    not_joined: list[Partner] = []
    partner: Partner | None = None
    feeds: list[FeedAvailability] = []
    for organisation_id, name, ods_code, feed_id, feed_name, last_success_at, schedule_minutes in rows:
        if partner is None or partner.pk != organisation_id:
            partner = Partner(pk=organisation_id, name=name, ods_code=ods_code)
            if feed_id is None:
                not_joined.append(partner)
                continue
            feeds = []
            live.append(PartnerData(organisation=partner, feeds=feeds))
        feeds.append(
            FeedAvailability(
                name=feed_name,
                partner=name,
                last_success_at=last_success_at,
                is_stale=_is_stale(last_success_at, schedule_minutes, now),
            )
        )
    return DataAvailability(live=live, not_joined=not_joined)


def patient_availability_build(
    holdings: list[PartnerHolding], system: DataAvailability, *, hides_practice: bool
) -> PatientAvailability:
    """The partners holding this patient's shown entries, most entries first, with their feeds from `system`."""
    feeds_of = {partner.organisation.pk: partner.feeds for partner in system.live}
    partners: list[PatientPartner] = []
    for holding in holdings:
        hidden = hides_practice and holding.kind == Organisation.Kind.GP_PRACTICE
        feeds = feeds_of.get(holding.organisation_id, [])
        if hidden:
            feeds = [
                FeedAvailability(
                    name="its datasets",
                    partner=HIDDEN_PRACTICE,
                    last_success_at=feed.last_success_at,
                    is_stale=feed.is_stale,
                )
                for feed in feeds
            ]
        partners.append(
            PatientPartner(
                name=HIDDEN_PRACTICE if hidden else holding.name,
                ods_code="" if hidden else holding.ods_code,
                is_hidden=hidden,
                entries=holding.entries,
                latest_at=holding.latest_at,
                feeds=feeds,
            )
        )
    partners.sort(key=lambda partner: (-partner.entries, partner.name))
    stale = [feed for partner in partners for feed in partner.stale]
    holding_ids = {holding.organisation_id for holding in holdings}
    elsewhere = sum(
        1
        for partner in system.live
        if partner.organisation.pk not in holding_ids
        for feed in partner.feeds
        if feed.is_stale
    )
    return PatientAvailability(partners=partners, system=system, stale=stale, stale_elsewhere=elsewhere)
