"""The change history of derived relationships: what a refresh created, changed and removed, and from which feed.

`consent.derivation.relationships_refresh` writes relationships in bulk, which django-auditlog never sees, so it
writes their history here in the same transaction, one bulk insert per chunk. What always holds:
- every relationship a refresh creates, changes or removes has one `LogEntry` (create, update or delete), with no
  actor (sharedcare derived it), its changes as django-auditlog writes them (field: [from, to], text, a date and
  time as naive UTC), and `additional_data` naming the feed and run that derived it;
- a change lists only the fields the refresh changed; a creation lists every derived field from "None", a removal
  every derived field to "None";
- the entry names no patient: its text is the relationship's own (its basis and id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from auditlog.cid import get_cid
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from consent.models import LegitimateRelationship
from records.apps import withheld_mask
from records.models import Feed

# What a refresh writes, as the change history names them (a foreign key by its field's name, as django-auditlog).
LOGGED_FIELDS = ("basis", "valid_until", "source_feed", "source_run", "source_entry", "source_description")
Values = dict[str, Any]


def relationship_values(row: LegitimateRelationship) -> Values:
    """The logged fields of one relationship as they are now, before a refresh changes them."""
    return {
        "basis": row.basis,
        "valid_until": row.valid_until,
        "source_feed": row.source_feed_id,
        "source_run": row.source_run_id,
        "source_entry": row.source_entry_id,
        # Masked as django-auditlog masks it on a relationship saved one by one (consent.apps): the description
        # names the partner's resource, which can carry clinical detail.
        "source_description": withheld_mask(row.source_description),
    }


def _text(value: object) -> str:
    if isinstance(value, datetime):
        return str(timezone.make_naive(value, UTC))
    return str(value)


def _provenance(values: Values, feed_codes: Mapping[int, str]) -> Values:
    feed_id, run_id = values["source_feed"], values["source_run"]
    feed = feed_codes.get(feed_id, "") if feed_id is not None else ""
    words = "derived by sharedcare"
    if feed:
        words += f" from feed {feed}" + (f" run {run_id}" if run_id is not None else "")
    return {"derived_by": words, "feed_id": feed_id, "feed": feed, "run_id": run_id}


def relationship_changes_log(
    *,
    created: Sequence[LegitimateRelationship],
    changed: Sequence[tuple[LegitimateRelationship, Values]],
    removed: Sequence[tuple[LegitimateRelationship, Values]],
    now: datetime,
) -> int:
    """Write one change-history entry per relationship created, changed (with its values before) or removed (with
    its values as they were), in one insert; return how many were written."""
    if not (created or changed or removed):
        return 0
    rows: list[tuple[int, LegitimateRelationship, Values, Values]] = [
        (LogEntry.Action.CREATE, row, dict.fromkeys(LOGGED_FIELDS), relationship_values(row))
        for row in created
    ]
    rows += [(LogEntry.Action.UPDATE, row, before, relationship_values(row)) for row, before in changed]
    rows += [(LogEntry.Action.DELETE, row, before, dict.fromkeys(LOGGED_FIELDS)) for row, before in removed]
    feed_codes = _feed_codes(values["source_feed"] for _, _, old, new in rows for values in (old, new))
    content_type = ContentType.objects.get_for_model(LegitimateRelationship)
    cid = get_cid()
    entries = []
    for action, row, old, new in rows:
        changes = {
            field: [_text(old[field]), _text(new[field])]
            for field in LOGGED_FIELDS
            if old[field] != new[field]
        }
        entries.append(
            LogEntry(
                content_type=content_type,
                object_pk=str(row.pk),
                object_id=row.pk,
                object_repr=str(row),
                action=action,
                changes=changes,
                actor=None,
                cid=cid,
                timestamp=now,
                additional_data=_provenance(old if action == LogEntry.Action.DELETE else new, feed_codes),
            )
        )
    LogEntry.objects.bulk_create(entries)
    return len(entries)


def _feed_codes(feed_ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {feed_id for feed_id in feed_ids if feed_id is not None}
    return dict(Feed.objects.filter(pk__in=wanted).values_list("pk", "code")) if wanted else {}
