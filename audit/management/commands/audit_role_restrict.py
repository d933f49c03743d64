from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from psycopg import sql

from audit.models import AccessEvent, AuditCheckpoint

AUDIT_MODELS = (AccessEvent, AuditCheckpoint)


class Command(BaseCommand):
    help = (
        "Restrict the application's database role on the audit tables to INSERT and SELECT (and its sequences' "
        "USAGE): revoke UPDATE, DELETE and TRUNCATE. Run as the tables' owner, after every migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", required=True, help="the role the application connects as")

    def handle(self, *args: Any, role: str, **options: Any) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
            found = cursor.fetchone()
            if found is None:
                raise CommandError(f"There is no database role {role!r}.")
            if found[0]:
                raise CommandError(f"{role!r} is a superuser, whom no privilege restricts: use another role.")
            grantee = sql.Identifier(role)
            for model in AUDIT_MODELS:
                table = model._meta.db_table
                cursor.execute(
                    "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass", [table]
                )
                (owner,) = cursor.fetchone() or (None,)
                if owner == role:
                    raise CommandError(
                        f"{role!r} owns {table}, and an owner can grant itself anything back and disable the "
                        f"triggers: make another role the owner first (ALTER TABLE {table} OWNER TO ...)."
                    )
                cursor.execute(
                    sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), grantee),
                )
                cursor.execute(
                    sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(sql.Identifier(table), grantee)
                )
                cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
                (sequence,) = cursor.fetchone() or (None,)
                if sequence:
                    cursor.execute(
                        sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(sql.SQL(sequence), grantee)
                    )
        self.stdout.write(
            f"{role} may only INSERT and SELECT on "
            f"{', '.join(model._meta.db_table for model in AUDIT_MODELS)}."
        )
