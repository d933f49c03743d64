from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.models import AccessEvent
from audit.selectors import access_chain_verify


class Command(BaseCommand):
    help = "Verify the access audit hash chain; exits non-zero if any row was altered, removed or inserted."

    def handle(self, *args: Any, **options: Any) -> None:
        breaks = list(access_chain_verify())
        for found in breaks:
            self.stderr.write(f"access event {found.event_id}: {found.problem}")
        if breaks:
            raise CommandError(f"The audit chain is broken in {len(breaks)} place(s).")
        self.stdout.write(f"Audit chain intact: {AccessEvent.objects.count()} events verified.")
