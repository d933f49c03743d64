"""The inbox source: a partner drops files in `<FEED_INBOX_ROOT>/<feed code>/incoming/`.

Each ready file is one ingest run (through `ingest_path`), oldest first. A file moves only after its run ended:
to `processed/` when the run committed, to `failed/` (beside a `<name>.error.txt` saying why) when the run failed.
Nothing is ever deleted. A worker that dies between the commit and the move leaves the file in `incoming/`; the next
run ingests it again, which changes nothing, and then moves it. A file still being written (a temporary name such
as `.part`, or modified within the last seconds) is left for the next run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from records.feeds.results import RunCommitted, SourceRun
from records.ingest.pipeline import IngestFailed, ingest_path
from records.models import Feed

logger = logging.getLogger(__name__)

# Names partners' transfer tools give a file while it is still arriving.
IN_PROGRESS_SUFFIXES = (".part", ".partial", ".filepart", ".tmp")
# A file modified more recently than this may still be being written.
SETTLE_SECONDS = 2.0
ERROR_SIDECAR_SUFFIX = ".error.txt"


@dataclass(frozen=True)
class InboxFolders:
    incoming: Path
    processed: Path
    failed: Path


def inbox_folders(feed: Feed) -> InboxFolders:
    """The feed's three folders, created if missing (so an operator can see where files go)."""
    root = Path(settings.FEED_INBOX_ROOT) / feed.code
    folders = InboxFolders(incoming=root / "incoming", processed=root / "processed", failed=root / "failed")
    for folder in (folders.incoming, folders.processed, folders.failed):
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def inbox_ready_files(incoming: Path, *, now: float | None = None) -> tuple[list[Path], list[Path]]:
    """(ready, waiting): regular files in `incoming`, ready ones oldest first; hidden files are ignored."""
    moment = time.time() if now is None else now
    ready: list[tuple[float, str, Path]] = []
    waiting: list[Path] = []
    for path in incoming.iterdir():
        if path.name.startswith(".") or not path.is_file():
            continue
        modified = path.stat().st_mtime
        if path.name.lower().endswith(IN_PROGRESS_SUFFIXES) or moment - modified < SETTLE_SECONDS:
            waiting.append(path)
            continue
        ready.append((modified, path.name, path))
    return [path for _, _, path in sorted(ready)], sorted(waiting)


def inbox_run(
    feed: Feed, *, trigger: str, progress: bool = False, on_run_committed: RunCommitted | None = None
) -> SourceRun:
    """Ingest every ready file of the feed's inbox, one run per file, oldest first, and move each after its run.

    Always holds: a file reaches processed/ only after its run committed, and failed/ only after its run was
    recorded failed; no file is deleted. A transient database error leaves the file in incoming/ and propagates, so
    the task is retried.
    """
    folders = inbox_folders(feed)
    ready, waiting = inbox_ready_files(folders.incoming)
    outcome = SourceRun(files_waiting=[path.name for path in waiting])
    for path in ready:
        try:
            run = ingest_path(feed, path, progress=progress, trigger=trigger)
        except IngestFailed as failed:
            outcome.runs.append(failed.run)
            if isinstance(failed.__cause__, OperationalError | InterfaceError):
                # The database, not the file, is at fault: keep the file for the retry.
                raise failed.__cause__ from failed
            moved = _move_aside(path, folders.failed)
            sidecar = moved.with_name(moved.name + ERROR_SIDECAR_SUFFIX)
            sidecar.write_text(
                f"Ingest run {failed.run.pk} of feed {feed.code} failed at {timezone.now().isoformat()}.\n"
                f"File: {path.name}\nError: {failed.run.error}\n"
                f"Nothing of this file was kept. Move it back to incoming/ to try again after a fix.\n",
                encoding="utf-8",
            )
            outcome.files_failed.append(path.name)
            outcome.error = failed.run.error
            logger.warning("feed %s: run %s failed; its file was moved to failed/", feed.code, failed.run.pk)
            continue
        outcome.runs.append(run)
        if on_run_committed is not None:
            on_run_committed(run)
        _move_aside(path, folders.processed)
        outcome.files_processed.append(path.name)
    return outcome


def _move_aside(path: Path, folder: Path) -> Path:
    """Move `path` into `folder` under its own name, or `<stem>.<n><suffix>` if a file of that name is there."""
    target = folder / path.name
    number = 1
    while target.exists():
        number += 1
        target = folder / f"{path.stem}.{number}{path.suffix}"
    os.replace(path, target)
    return target
