from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from audit.partitions import (
    PartitionRefused,
    partition_conversion_plan,
    partition_extension_plan,
    partition_plan_apply,
)


class Command(BaseCommand):
    help = (
        "Range-partition the access events table by month on occurred_at, so that a purge drops whole months. "
        "Without --apply, prints the SQL it would run. --extend adds the months missing up to --months-ahead on a "
        "table already partitioned (run it monthly). Run as the database owner, in a maintenance window for the "
        "conversion (it copies every event under an exclusive lock), then audit_role_restrict again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--apply", action="store_true", help="run the SQL, in one transaction")
        parser.add_argument("--extend", action="store_true", help="add months to a partitioned table")
        parser.add_argument("--months-ahead", type=int, default=12, help="months to create after this one")
        parser.add_argument("--schema", default="", help="the schema of the audit tables (default: current)")

    def handle(
        self, *args: Any, apply: bool, extend: bool, months_ahead: int, schema: str, **options: Any
    ) -> None:
        if months_ahead < 1:
            raise CommandError("--months-ahead must be at least 1, so an append never waits for its month.")
        if not schema:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_schema()")
                (schema,) = cursor.fetchone() or ("public",)
        try:
            with transaction.atomic():
                make_plan = partition_extension_plan if extend else partition_conversion_plan
                plan = make_plan(schema=schema, months_ahead=months_ahead)
                if apply:
                    partition_plan_apply(plan, schema=schema)
        except PartitionRefused as refused:
            raise CommandError(str(refused)) from None
        if not apply:
            self.stdout.write("".join(f"{statement};\n" for statement in plan))
            return
        self.stdout.write(
            f"Ran {len(plan)} statements on {schema}. Now run audit_role_restrict --role <application role>, "
            f"which takes back what default privileges gave it on the new tables."
        )
