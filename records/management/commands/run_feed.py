"""`manage.py run_feed CODE`: one run of an inbox or HTTP-pull feed, now, with progress on a terminal."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from records.feeds.results import FeedRunResult, Outcome
from records.feeds.scheduling import SCHEDULED_SOURCES, feed_run
from records.feeds.sources import TransientSourceError
from records.models import Feed, IngestRun
from records.tasks import arrived_patients_replay_enqueue


class Command(BaseCommand):
    help = (
        "Run an inbox or HTTP-pull feed once, now, as the scheduler would (whatever its schedule or state), and "
        "print what each ingest run did, with its duration and throughput."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="the code of the feed to run")

    def handle(self, *args: Any, **options: Any) -> None:
        code: str = options["code"]
        feed = Feed.objects.select_related("organisation").filter(code=code).first()
        if feed is None or feed.source not in SCHEDULED_SOURCES:
            runnable = Feed.objects.filter(source__in=SCHEDULED_SOURCES).order_by("code")
            codes = ", ".join(runnable.values_list("code", flat=True)) or "none yet"
            what = "no feed" if feed is None else f"the {feed.source} feed"
            raise CommandError(
                f"There is {what} with the code {code!r} to run; feeds with an inbox or HTTP pull: {codes}."
            )
        try:
            result = feed_run(
                feed,
                trigger=IngestRun.Trigger.COMMAND,
                progress=self.stderr.isatty(),
                on_run_committed=lambda run: arrived_patients_replay_enqueue([run]),
            )
        except TransientSourceError as error:
            raise CommandError(
                f"Feed {code}: the source is not answering; try again later. {error}"
            ) from error
        if result.outcome == Outcome.ALREADY_RUNNING:
            raise CommandError(f"Feed {code} is already running ({result.message}); nothing was done.")
        for run in result.runs:
            self.stdout.write(self.run_line(run))
        self.stdout.write(self.summary(result))
        if result.outcome == Outcome.FAILED:
            raise CommandError(f"Feed {code}: a run failed and wrote nothing: {result.message}")

    def run_line(self, run: IngestRun) -> str:
        seconds = run.duration_seconds or 0.0
        rate = run.resources_per_second
        speed = f", {rate:.0f} resources/s" if rate is not None else ""
        return (
            f"Ingest run {run.pk} ({run.source_name or 'no source'}): {run.get_status_display().lower()} in "
            f"{seconds:.1f} s{speed}; read {run.resources_read} = created {run.created} + updated {run.updated} "
            f"+ unchanged {run.unchanged} + quarantined {run.quarantined}"
            + (f"; error: {run.error}" if run.error else "")
        )

    def summary(self, result: FeedRunResult) -> str:
        if result.outcome == Outcome.NOTHING_TO_DO:
            waiting = f" ({len(result.files_waiting)} still arriving)" if result.files_waiting else ""
            return f"Feed {result.feed_code}: nothing to ingest; no file is ready in its inbox{waiting}."
        rate = result.resources_per_second
        speed = f", {rate:.0f} resources/s" if rate is not None else ""
        parts = [
            f"Feed {result.feed_code}: {result.outcome} in {result.seconds:.1f} s{speed}; "
            f"{len(result.runs)} run(s), {result.resources_read} resources read"
        ]
        if result.files_processed or result.files_failed or result.files_waiting:
            parts.append(
                f"files processed {len(result.files_processed)}, failed {len(result.files_failed)}, "
                f"still arriving {len(result.files_waiting)}"
            )
        if result.recovered_run_ids:
            parts.append(f"abandoned runs marked failed: {', '.join(map(str, result.recovered_run_ids))}")
        return "; ".join(parts)
