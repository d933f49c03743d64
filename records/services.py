"""Writes people and the demo cause to partners and feeds (ingestion has its own package, records/ingest)."""

from django.contrib.auth.models import Group
from django.db import transaction

from records.models import Feed, Organisation


def organisation_upsert(
    *, ods_code: str, name: str, kind: str, primary_care_network: str = "", is_active: bool = True
) -> Organisation:
    """Create or update a partner, with the group its staff and its legitimate relationships hang on."""
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=f"organisation:{ods_code}")
        organisation, _ = Organisation.objects.update_or_create(
            ods_code=ods_code,
            defaults={
                "name": name,
                "kind": kind,
                "primary_care_network": primary_care_network,
                "is_active": is_active,
                "group": group,
            },
        )
        organisation.full_clean()
        return organisation


def feed_upsert(
    *,
    code: str,
    organisation: Organisation,
    name: str,
    sections: list[str],
    state: str = Feed.State.LIVE,
    can_create_patients: bool = False,
) -> Feed:
    feed, _ = Feed.objects.update_or_create(
        code=code,
        defaults={
            "organisation": organisation,
            "name": name,
            "sections": sections,
            "state": state,
            "can_create_patients": can_create_patients,
        },
    )
    return feed
