from typing import Any

import pgtrigger
from django.core.management.base import CommandError
from django.core.management.commands import flush
from django.db import connections

TRUNCATE_GUARDS = (
    "audit.AccessEvent:access_event_no_truncate",
    "audit.AuditCheckpoint:audit_checkpoint_no_truncate",
    "audit.AuditPurge:audit_purge_no_truncate",
)


class Command(flush.Command):
    help = (
        "Django's flush, which empties every table. The audit trail refuses TRUNCATE, so only a test database "
        "(named test_...), which the test runner flushes between transactional tests, may be flushed."
    )

    def handle(self, **options: Any) -> None:
        name = str(connections[options["database"]].settings_dict["NAME"])
        if not name.startswith("test_"):
            raise CommandError(
                f"Refused: flushing {name} would empty the audit trail, which is never emptied."
            )
        with pgtrigger.ignore(*TRUNCATE_GUARDS, databases=[options["database"]]):
            super().handle(**options)
