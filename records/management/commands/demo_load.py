"""`manage.py demo_load`: the demo partners, feeds and users, and their data loaded through the real ingestion."""

from __future__ import annotations

import os
import pathlib
import tempfile
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from records.demo.loader import FeedLoad, demo_load
from records.demo.partners import USERS
from records.ingest.pipeline import IngestFailed
from records.management.commands.demo_generate import add_generation_arguments, reference_date
from records.tasks import arrived_patients_replay_enqueue


class Command(BaseCommand):
    help = (
        "Create or update the demo partners, feeds and users (password from the DEMO_PASSWORD environment "
        "variable), generate the demo bundles and ingest them feed by feed, GP feeds first. Safe to re-run: a "
        "second run on the same day changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_generation_arguments(parser)
        parser.add_argument(
            "--keep",
            type=pathlib.Path,
            default=None,
            metavar="FOLDER",
            help="write the bundles to this folder and keep them (default: a temporary folder, removed after)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Never a default: a password in code would be the same on every demo that was ever left running.
        password = os.environ.get("DEMO_PASSWORD", "")
        if not password:
            raise CommandError(
                "Set DEMO_PASSWORD in the environment to the password the demo users should have "
                "(`make run` sets one for you)."
            )
        started = time.monotonic()
        kept: pathlib.Path | None = options["keep"]
        try:
            if kept is not None:
                self.load(password, options, kept)
            else:
                with tempfile.TemporaryDirectory(prefix="sharedcare-demo-") as folder:
                    self.load(password, options, pathlib.Path(folder))
        except ValidationError as error:
            raise CommandError(f"DEMO_PASSWORD is not acceptable: {' '.join(error.messages)}") from error
        except IngestFailed as failed:
            raise CommandError(
                f"Ingest run {failed.run.pk} for feed {failed.run.feed.code} failed and wrote nothing: "
                f"{failed.run.error}"
            ) from failed
        self.stdout.write(f"Demo loaded in {time.monotonic() - started:.1f} s.")
        self.stdout.write("Demo logins (the password is DEMO_PASSWORD):")
        for user in USERS:
            self.stdout.write(f"  {user.username:<15} {user.description}")

    def load(self, password: str, options: dict[str, Any], folder: pathlib.Path) -> None:
        demo_load(
            password=password,
            patients=options["patients"],
            seed=options["seed"],
            reference=reference_date(options),
            folder=folder,
            on_feed=self.report,
        )

    def report(self, load: FeedLoad) -> None:
        run = load.run
        if run is None:
            self.stdout.write(f"{load.feed.code:<20} no data in this demo")
            return
        arrived_patients_replay_enqueue([run])
        self.stdout.write(
            f"{load.feed.code:<20} read {run.resources_read:>5}: created {run.created}, updated {run.updated}, "
            f"unchanged {run.unchanged}, quarantined {run.quarantined}; patients created {run.patients_created} "
            f"({run.duration_seconds or 0.0:.1f} s)"
        )
