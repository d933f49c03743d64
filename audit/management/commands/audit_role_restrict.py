from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction
from psycopg import sql

from audit.models import AccessEvent, Alert, AlertScan, AuditCheckpoint, AuditPurge

# What the application's role may do on each audit table. The trail and its anchors are only ever appended to; an
# alert is raised and then reviewed; the scan's watermark moves on. Only the owner deletes, and only by audit_purge.
PRIVILEGES: dict[type[models.Model], str] = {
    AccessEvent: "SELECT, INSERT",
    AuditCheckpoint: "SELECT, INSERT",
    AuditPurge: "SELECT, INSERT",
    Alert: "SELECT, INSERT, UPDATE",
    AlertScan: "SELECT, INSERT, UPDATE",
}


class Command(BaseCommand):
    help = (
        "Restrict the application's database role on the audit tables: INSERT and SELECT on the access events, "
        "checkpoints and purge records; SELECT, INSERT and UPDATE on alerts and the alert scan's watermarks; the "
        "sequences' USAGE; nothing on the events' monthly partitions, which it reaches through the events table. "
        "Revokes everything else (UPDATE, DELETE, TRUNCATE). Run as the tables' owner, after every migrate and "
        "audit_partition."
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
            for model, privileges in PRIVILEGES.items():
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
                cursor.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), grantee))
                cursor.execute(
                    sql.SQL("GRANT {} ON {} TO {}").format(
                        sql.SQL(privileges), sql.Identifier(table), grantee
                    )
                )
                cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
                (sequence,) = cursor.fetchone() or (None,)
                if sequence:
                    cursor.execute(
                        sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(sql.SQL(sequence), grantee)
                    )
                cursor.execute(
                    "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", [table]
                )
                for (partition,) in cursor.fetchall():
                    cursor.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.SQL(partition), grantee))
        self.stdout.write(
            "; ".join(
                f"{role} may {privileges} on {model._meta.db_table}"
                for model, privileges in PRIVILEGES.items()
            )
            + "."
        )
