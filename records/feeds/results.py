"""What one scheduled run of a feed did, for the task's result, the command's summary and the logs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from records.models import IngestRun

# Called with each ingest run of a feed run as soon as it committed, before the feed run goes on: what the caller
# chains to a run (the task layer queues the replay of what waited for the patients it brought) is then never lost
# to an error later in the same feed run.
RunCommitted = Callable[[IngestRun], None]


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    # At least one ingest run failed (terminal); its IngestRun holds the error.
    FAILED = "failed"
    # Another run of the feed holds its lock; nothing was done.
    ALREADY_RUNNING = "already-running"
    # A scheduled message for a feed that is not live, or succeeded within its schedule (a duplicate message).
    NOT_DUE = "not-due"
    # An inbox with no file ready.
    NOTHING_TO_DO = "nothing-to-do"


@dataclass
class SourceRun:
    """What a source (inbox, HTTP pull) did within one feed run."""

    runs: list[IngestRun] = field(default_factory=list)
    files_processed: list[str] = field(default_factory=list)
    files_failed: list[str] = field(default_factory=list)
    # Files left in incoming/ for the next run (still being written).
    files_waiting: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class FeedRunResult:
    """The outcome of `feed_run`: the ingest runs it made, their totals, and how long it all took."""

    feed_code: str
    outcome: Outcome
    seconds: float = 0.0
    runs: list[IngestRun] = field(default_factory=list)
    recovered_run_ids: list[int] = field(default_factory=list)
    files_processed: list[str] = field(default_factory=list)
    files_failed: list[str] = field(default_factory=list)
    files_waiting: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def resources_read(self) -> int:
        return sum(run.resources_read for run in self.runs)

    @property
    def resources_per_second(self) -> float | None:
        if self.seconds <= 0:
            return None
        return self.resources_read / self.seconds

    def totals(self) -> dict[str, int]:
        names = ("resources_read", "created", "updated", "unchanged", "quarantined")
        return {name: sum(getattr(run, name) for run in self.runs) for name in names}

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe, ids and counts only: Celery logs a task's result. Errors stay on the IngestRun rows, because
        a partner's or the database's words about a record may name the patient."""
        rate = self.resources_per_second
        return {
            "feed": self.feed_code,
            "outcome": str(self.outcome),
            "seconds": round(self.seconds, 3),
            "resources_per_second": round(rate, 1) if rate is not None else None,
            "run_ids": [run.pk for run in self.runs],
            "recovered_run_ids": self.recovered_run_ids,
            "files_processed": len(self.files_processed),
            "files_failed": len(self.files_failed),
            "files_waiting": len(self.files_waiting),
            **self.totals(),
        }
