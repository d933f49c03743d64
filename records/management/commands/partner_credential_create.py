"""`manage.py partner_credential_create --organisation ODS --name NAME`: a partner API key, printed once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from records.feeds.push.keys import partner_credential_create
from records.models import Organisation


class Command(BaseCommand):
    help = (
        "Create an API key a partner's system uses to push batches to its feeds. The key is printed once, on "
        "standard output; only its hash is stored, so it cannot be shown again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organisation", required=True, metavar="ODS", help="the partner's ODS code")
        parser.add_argument("--name", required=True, help="which of the partner's systems will use the key")

    def handle(self, *args: Any, **options: Any) -> None:
        ods_code: str = options["organisation"].strip().upper()
        name: str = options["name"].strip()
        if not name:
            raise CommandError("Give the key a --name saying which system uses it.")
        organisation = Organisation.objects.filter(ods_code=ods_code).first()
        if organisation is None:
            raise CommandError(f"There is no partner with the ODS code {ods_code!r}.")
        if not organisation.is_active:
            raise CommandError(f"{organisation} is not an active partner; its keys would not work.")
        credential, key = partner_credential_create(organisation=organisation, name=name)
        self.stderr.write(
            f"Created credential {credential.pk} for {organisation}: {name} (prefix {credential.key_prefix}). "
            "The key follows on standard output; store it now, it is not shown again."
        )
        self.stdout.write(key)
