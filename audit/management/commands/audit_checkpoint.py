from typing import Any

from django.core.management.base import BaseCommand

from audit.services import audit_checkpoint_write


class Command(BaseCommand):
    help = "Anchor the access audit chain's head: append a checkpoint and write it to the sharedcare.audit.anchor log."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = audit_checkpoint_write()
        self.stdout.write(
            f"Checkpoint {checkpoint.pk}: head event {checkpoint.last_event_id}, {checkpoint.event_count} events, "
            f"{'signed' if checkpoint.signature else 'unsigned'}."
        )
