from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.models import AccessEvent, AuditCheckpoint, AuditPurge
from audit.selectors import audit_trail_verify


class Command(BaseCommand):
    help = (
        "Verify the access audit trail: the hash chain, every checkpoint anchoring its head and every purge record of "
        "events removed past their retention. Exits 1 naming the first break if any event was altered, removed (the "
        "newest included) without a purge record, or inserted, or a checkpoint or purge record was forged."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        key = settings.AUDIT_ANCHOR_KEY
        breaks = list(audit_trail_verify(key))
        for found in breaks:
            self.stderr.write(str(found))
        if breaks:
            raise CommandError(
                f"The audit trail is broken in {len(breaks)} place(s); the first: {breaks[0].headline}."
            )
        signatures = "signatures verified" if key else "signatures not checked (AUDIT_ANCHOR_KEY is unset)"
        newest = AuditPurge.objects.order_by("-last_event_id").first()
        purged = (
            f"; going on from purge {newest.pk}, which removed every event up to {newest.last_event_id} "
            f"({newest.event_count} events) as past their retention"
            if newest
            else ""
        )
        self.stdout.write(
            f"Audit chain intact: {AccessEvent.objects.count()} events verified against "
            f"{AuditCheckpoint.objects.count()} checkpoints, {signatures}{purged}."
        )
