"""`manage.py ingest PATH --feed CODE`: one ingest run of a file or folder of FHIR R4 into a feed."""

from __future__ import annotations

import pathlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from records.ingest.pipeline import IngestFailed, ingest_path
from records.models import Feed, IngestRun, QuarantinedRecord
from records.tasks import arrived_patients_replay_enqueue


class Command(BaseCommand):
    help = (
        "Ingest FHIR R4 (JSON, XML or NDJSON; single resources or Bundles) from a file or a folder (read "
        "recursively, in sorted order) as one run of the feed with the given code."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", type=pathlib.Path, help="a file, or a folder of .json/.ndjson/.jsonl/.xml files"
        )
        parser.add_argument(
            "--feed", required=True, metavar="CODE", help="the code of the feed the data comes from"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: pathlib.Path = options["path"]
        code: str = options["feed"]
        feed = Feed.objects.select_related("organisation").filter(code=code).first()
        if feed is None:
            codes = ", ".join(Feed.objects.order_by("code").values_list("code", flat=True)) or "none yet"
            raise CommandError(f"There is no feed with the code {code!r}. Valid feed codes: {codes}.")
        if not path.exists():
            raise CommandError(f"There is no file or folder at {path}.")
        try:
            run = ingest_path(feed, path, progress=self.stderr.isatty())
        except IngestFailed as failed:
            raise CommandError(
                f"Ingest run {failed.run.pk} for feed {feed.code} failed and wrote nothing: {failed.run.error}"
            ) from failed
        arrived_patients_replay_enqueue([run])
        self.stdout.write(self.summary(run))

    def summary(self, run: IngestRun) -> str:
        seconds = run.duration_seconds or 0.0
        rate = f", {run.resources_read / seconds:.0f} resources/s" if seconds > 0 else ""
        lines = [
            f"Ingest run {run.pk} for feed {run.feed.code}: {run.get_status_display().lower()} in {seconds:.1f} s"
            f"{rate}; input sha256 {run.checksum}",
            f"read {run.resources_read} = created {run.created} + updated {run.updated} + unchanged {run.unchanged}"
            f" + quarantined {run.quarantined} (patients created {run.patients_created}, "
            f"updated {run.patients_updated})",
        ]
        reasons = (
            QuarantinedRecord.objects.filter(ingest_run=run)
            .values("reason")
            .annotate(total=Count("id"))
            .order_by("-total", "reason")
        )
        if reasons:
            labels = dict(QuarantinedRecord.Reason.choices)
            width = max(len(row["reason"]) for row in reasons)
            lines.append("quarantined by reason:")
            for row in reasons:
                label = labels.get(row["reason"], row["reason"])
                lines.append(f"  {row['reason']:<{width}}  {row['total']:>6}  {label}")
        return "\n".join(lines)
