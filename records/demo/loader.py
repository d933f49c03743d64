"""Writes the demo: partners and their feeds, the demo users, then every feed's bundles through the real ingestion.

Safe to run again: partners, feeds and users are updated in place, and the bundles carry stable ids, so a second
load on the same day reads everything and changes nothing (its runs report all resources unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.db.models import Q

from consent.models import CareTeam, StaffIdentity, StaffProfile
from consent.separation import registration_authority_add
from consent.services import (
    care_team_create,
    care_team_member_add,
    feed_support_grant,
    information_governance_team_add,
    staff_profile_add,
)
from records.demo.cases import demo_cases_upsert
from records.demo.generator import demo_patients, write_demo_bundles
from records.demo.partners import (
    FEEDS,
    HOUSEHOLD_FAMILY_NAME,
    HOUSEHOLD_PATIENT_INDEX,
    HOUSEHOLD_USER,
    LIVE_FEEDS,
    PARTNERS,
    TEAMS,
    USERS,
)
from records.ingest.pipeline import ingest_path, suffixes_for
from records.models import Feed, IngestRun, Organisation
from records.services import feed_upsert, organisation_upsert


@dataclass(frozen=True)
class FeedLoad:
    feed: Feed
    # None when this demo holds no data for the feed (possible only with very few patients).
    run: IngestRun | None


def demo_partners_upsert() -> dict[str, Feed]:
    """Create or update every demo partner and dataset. Returns all demo feeds, live or not, by code."""
    with transaction.atomic():
        organisations: dict[str, Organisation] = {
            spec.ods_code: organisation_upsert(
                ods_code=spec.ods_code,
                name=spec.name,
                kind=spec.kind,
                primary_care_network=spec.primary_care_network,
            )
            for spec in PARTNERS
        }
        feeds = {
            spec.code: feed_upsert(
                code=spec.code,
                organisation=organisations[spec.ods_code],
                name=spec.name,
                sections=[section.value for section in spec.sections],
                state=spec.state,
                can_create_patients=spec.can_create_patients,
            )
            for spec in FEEDS
        }
        for spec in FEEDS:
            feed = feeds[spec.code]
            feed.format = spec.format
            feed.csv_mapping = dict(spec.csv_mapping or {})
            feed.save(update_fields=["format", "csv_mapping"])
        return feeds


def demo_users_upsert(password: str) -> list[AbstractUser]:
    """Create or update the demo users, all with `password`, each with exactly the role profiles the demo describes.

    Always holds afterwards: every demo user is active and has this password; only admin.gus and ra.rita are staff,
    only admin.gus is a superuser, and neither has a staff profile, so neither reaches patient data (superusers get
    no clinical access); only ra.rita is the registration authority, who changes other users' access; admin.gus
    holds the feed-support permission for every demo partner, so it may reveal what their feeds sent, audited.
    Raises django's ValidationError if the password fails the project's password rules.
    """
    validate_password(password)
    user_model = get_user_model()
    organisations = {organisation.ods_code: organisation for organisation in Organisation.objects.all()}
    users: list[AbstractUser] = []
    with transaction.atomic():
        for user_number, spec in enumerate(USERS, start=1):
            user, _ = user_model.objects.get_or_create(username=spec.username)
            user.first_name = spec.first_name
            user.last_name = spec.last_name
            user.is_active = True
            user.is_staff = spec.is_superuser or spec.registration_authority
            user.is_superuser = spec.is_superuser
            user.set_password(password)
            user.save()
            if spec.ods_code is not None and spec.job_role is not None:
                # The profiles named, and no others; a second load keeps each (and its id) as it is.
                wanted = ((spec.ods_code, spec.job_role), *spec.also)
                kept = Q()
                for ods_code, job_role in wanted:
                    kept |= Q(organisation=organisations[ods_code], job_role=job_role)
                StaffProfile.objects.filter(user=user).exclude(kept).delete()
                for profile_number, (ods_code, job_role) in enumerate(wanted):
                    profile = staff_profile_add(
                        user_id=user.pk, organisation=organisations[ods_code], job_role=job_role
                    )
                    # Invented SDS ids, the same on every load, so the local NHS Care Identity provider can sign
                    # the demo users in under each of their roles (sharedcare/oidc_accounts.py).
                    StaffProfile.objects.filter(pk=profile.pk).update(
                        sds_user_id=f"5550000000{user_number:02d}",
                        sds_role_profile_id=f"555100000{user_number:02d}{profile_number}",
                    )
            else:
                StaffProfile.objects.filter(user=user).delete()
            if spec.is_superuser:
                feed_support_grant(user_id=user.pk, organisations=organisations.values())
            if spec.ig_team:
                information_governance_team_add(user_id=user.pk)
            if spec.registration_authority:
                registration_authority_add(user_id=user.pk)
            users.append(user)
    return users


def demo_teams_upsert() -> list[CareTeam]:
    """Create every demo care team that does not exist yet, and make sure its members are in it.

    Run after the users: members are named by username. A team a later load finds is kept as it is, members added.
    """
    user_model = get_user_model()
    teams = []
    with transaction.atomic():
        for spec in TEAMS:
            organisation = Organisation.objects.get(ods_code=spec.ods_code)
            team = CareTeam.objects.filter(organisation=organisation, code=spec.code).first()
            if team is None:
                team = care_team_create(organisation=organisation, name=spec.name, code=spec.code)
            for username in spec.members:
                care_team_member_add(team=team, user_id=user_model.objects.get(username=username).pk)
            teams.append(team)
    return teams


def demo_identities_upsert(*, patients: int, seed: int, reference: date) -> StaffIdentity | None:
    """Give the household demo user the identity HR would hold for her: her surname, and the address she shares
    with the demo patient who is her grandmother. None in a demo too small to hold that patient.

    Run after the users; a second load writes the same identity again, which changes nothing.
    """
    if patients <= HOUSEHOLD_PATIENT_INDEX:
        return None
    home = demo_patients(HOUSEHOLD_PATIENT_INDEX + 1, seed, reference)[HOUSEHOLD_PATIENT_INDEX]
    identity, _ = StaffIdentity.objects.update_or_create(
        user=get_user_model().objects.get(username=HOUSEHOLD_USER),
        defaults={
            "family_name": HOUSEHOLD_FAMILY_NAME,
            "birth_date": date(1986, 5, 9),
            "postcode": home.postcode,
            "address_line": home.address_line,
        },
    )
    return identity


def demo_ingest(
    feeds: dict[str, Feed], folder: Path, *, on_feed: Callable[[FeedLoad], None] | None = None
) -> list[FeedLoad]:
    """Ingest `<folder>/<feed-code>/` for every live demo feed: GP feeds first, since only they create patients."""
    ordered = sorted(LIVE_FEEDS, key=lambda spec: not spec.can_create_patients)
    loads = []
    for spec in ordered:
        feed = feeds[spec.code]
        feed_folder = folder / spec.code
        suffixes = suffixes_for(feed)
        has_data = feed_folder.is_dir() and any(path.suffix in suffixes for path in feed_folder.iterdir())
        load = FeedLoad(feed=feed, run=ingest_path(feed, feed_folder) if has_data else None)
        if on_feed is not None:
            on_feed(load)
        loads.append(load)
    return loads


def demo_load(
    *,
    password: str,
    patients: int,
    seed: int,
    reference: date,
    folder: Path,
    on_feed: Callable[[FeedLoad], None] | None = None,
) -> list[FeedLoad]:
    """Load the whole demo: partners and feeds, users with their teams and identities, bundles (and the council's caseload
    extract) written to `folder`, then ingested feed by feed; then the IG team's cases about the patients loaded.

    The password is checked before anything is written, so a refused password leaves the database as it was.
    """
    validate_password(password)
    feeds = demo_partners_upsert()
    demo_users_upsert(password)
    demo_teams_upsert()
    demo_identities_upsert(patients=patients, seed=seed, reference=reference)
    write_demo_bundles(folder, patients=patients, seed=seed, reference=reference)
    loads = demo_ingest(feeds, folder, on_feed=on_feed)
    demo_cases_upsert()
    return loads
