from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.retention import PurgeRefused, audit_purge


class Command(BaseCommand):
    help = (
        "Remove the oldest access events past their retention (AUDIT_RETENTION_DAYS), stopping before any event "
        "an open alert points at, with the reviewed alerts about them; verifies the chain up to the cut first and "
        "writes a signed purge record. Needs AUDIT_ANCHOR_KEY. Run it as the database owner: the "
        "application's role may not delete from the trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be removed; change nothing"
        )

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        try:
            outcome = audit_purge(dry_run=dry_run)
        except PurgeRefused as refused:
            raise CommandError(str(refused)) from None
        line = f"events before {outcome.retained_from:%Y-%m-%d %H:%M:%S %Z}"
        if outcome.stopped_by_alert_id is not None:
            self.stdout.write(
                f"Stopped before the event of open alert {outcome.stopped_by_alert_id}: review it to let the purge "
                f"go on."
            )
        if outcome.events_removed == 0:
            self.stdout.write(f"Nothing to remove: no {line} that may go.")
            return
        verb = "Would remove" if dry_run else "Removed"
        partitions = (
            f" ({outcome.partitions_dropped} monthly partitions whole)" if outcome.partitions_dropped else ""
        )
        record = "" if dry_run else f"; purge record {outcome.purge_id}"
        self.stdout.write(
            f"{verb} {outcome.events_removed} {line}, up to event {outcome.last_event_id}{partitions}, and "
            f"{outcome.alerts_removed} reviewed alerts{record}."
        )
