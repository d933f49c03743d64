"""The worker side of validation beside a run (`validation_pool`): what a forked worker does, and the claims over
pieces of work it shares with the run.

What always holds: a worker reads, validates and maps; it never writes to the database, logs nothing about a
resource, and sends back only verdicts (validation messages name elements, never values) and what the mapper made.
A piece is done by the one process that claims it; a worker that ends having finished what it was handed sends
every answer it made before it exits, so the run never waits for an answer that was lost on the way.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import billiard

from records.ingest.fhir import InvalidResource, JsonObject, validate_json, validate_xml
from records.ingest.formats.readers import read_source
from records.ingest.items import Item, ResourceUnit, Source

# How long a process waits for the lock over who takes which piece before giving up on sharing (another process
# was killed while holding it): the run then does every piece left itself. Correctness never depends on the lock.
CLAIM_TIMEOUT_SECONDS = 1.0

# What a worker found for one resource: its type and id (to check it is the same resource); then None when it is
# valid JSON (the run keeps the dict it parsed itself), the FHIR JSON of a valid XML resource (what
# `fhir.validate_xml` returns), or the message of the InvalidResource it raised; then what the pool's `mapper`
# made of a valid resource (None when invalid, or without a mapper).
Verdict = tuple[str, str, JsonObject | str | None, Any]


RUN = 1  # in `claims`: the run took the piece; a worker puts its own number, from FIRST_WORKER
FIRST_WORKER = 2


def claim(claims: Any, piece: int, taker: int) -> bool | None:
    """Take piece `piece` for `taker` (the run, or a worker); False when another has taken it, None when the lock
    could not be had (see CLAIM_TIMEOUT_SECONDS).

    The run and the workers go through the pieces in the same order, so that while a worker is ahead the run only
    collects its verdicts, and once the run catches up they share what is left piece by piece.
    """
    lock = claims.get_lock()
    if not lock.acquire(timeout=CLAIM_TIMEOUT_SECONDS):
        return None
    try:
        if claims[piece]:
            return False
        claims[piece] = taker
        return True
    finally:
        lock.release()


def verdicts(
    index: int,
    start: int,
    positions: range,
    *,
    max_bytes: int,
    types: frozenset[str],
    skip: frozenset[int],
    mapper: Callable[[JsonObject], Any] | None = None,
) -> dict[int, Verdict]:
    """In a worker: read FHIR input `index` of the run as the run does, and validate and map each resource at
    `positions` whose type is in `types`.

    By position in the run (the input's items, as `read_source` yields them, numbered from `start`): the verdict
    on each resource validated, leaving out the positions in `skip`. It reads, and returns only verdicts,
    validation messages (which name elements, never values) and what `mapper` returns; it logs nothing and never
    touches the database. The input's items are kept for its next piece.
    """
    global _parsed
    if _parsed is None or _parsed[0] != index:
        _parsed = None  # the previous input's items go before this one's are read
        _parsed = (index, list(read_source(_sources[index], max_bytes=max_bytes)))
    items = _parsed[1]
    return piece_verdicts(
        ((position, items[position - start]) for position in positions), types=types, skip=skip, mapper=mapper
    )


def piece_verdicts(
    items: Iterable[tuple[int, Item]],
    *,
    types: frozenset[str],
    skip: frozenset[int],
    mapper: Callable[[JsonObject], Any] | None,
) -> dict[int, Verdict]:
    """The verdict on each (position, item) that is a resource of one of `types`, but not at a position in `skip`."""
    found: dict[int, Verdict] = {}
    for position, item in items:
        if not isinstance(item, ResourceUnit) or item.resource_type not in types or position in skip:
            continue
        outcome: JsonObject | None = None
        try:
            if item.json is not None:
                validate_json(item.json)
            else:
                outcome = validate_xml(item.element)
        except InvalidResource as error:
            found[position] = (item.resource_type, item.source_id, str(error), None)
            continue
        resource = item.json if outcome is None else outcome
        mapped = mapper(resource) if mapper is not None and resource is not None else None
        found[position] = (item.resource_type, item.source_id, outcome, mapped)
    return found


# In a worker, inherited at the fork: the run's inputs, and the items of the input it read last.
_sources: Sequence[Source] = ()
_parsed: tuple[int, list[Item]] | None = None

# One input for a worker: its index, its first position, and its pieces (number, positions, positions to skip).
Task = tuple[int, int, list[tuple[int, range, frozenset[int]]]]


@dataclass(frozen=True)
class Work:
    """What a worker is forked with (inherited, never pickled)."""

    parent: int
    sources: Sequence[Source]
    number: int  # this worker's, in `claims`
    claims: Any  # which pieces a process has taken
    tasks: Any  # inputs for the workers (`Task`s), the reading end of a pipe; its end tells a worker to stop
    handing: Any  # the run's end of that pipe, which a worker closes: the pipe ends when the run closes it
    answers: Any  # (piece number, verdicts, or None when they could not be made) back to the run (a queue)
    max_bytes: int
    types: frozenset[str]
    mapper: Callable[[JsonObject], Any] | None


def worker_main(work: Work) -> None:
    """A worker: take each piece of each input handed over that no one has taken, and send its verdicts back.

    It ends with the run's process, even if that is killed and never shuts the pool down.
    """
    global _sources
    with contextlib.suppress(OSError, AttributeError):
        # Linux: PR_SET_PDEATHSIG (1) delivers SIGKILL to this worker when the process that forked it ends.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != work.parent:
        os._exit(0)
    # The run stops its workers: an interrupt at the terminal reaches the whole process group, and the handlers
    # inherited from a Celery child are its own to run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for received in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
        signal.signal(received, signal.SIG_DFL)
    _sources = work.sources
    work.handing.close()
    tasks: deque[Task] = deque()
    is_open = True  # the run may hand over more inputs
    with contextlib.suppress(EOFError, OSError):
        while tasks or is_open:
            if not tasks:
                tasks.append(work.tasks.recv())
            index, start, pieces = tasks.popleft()
            for number, positions, skip in pieces:
                # Whatever else the run has handed over meanwhile, taken now: it never waits to hand one over.
                # Once it hands over no more (the pipe's end), what it handed over is still shared to the end.
                try:
                    while is_open and work.tasks.poll():
                        tasks.append(work.tasks.recv())
                except (EOFError, OSError):
                    is_open = False
                _answer(work, index, start, number, positions, skip)
    # Every answer made reaches the pipe before the worker ends: the run may still be waiting for the last ones
    # (a run told it may not share hands over no more, and collects what it handed over to the end). The run
    # drains the answers while it waits for its workers to end, so this never waits on a pipe no one reads.
    work.answers.close()
    work.answers.join_thread()


def _answer(work: Work, index: int, start: int, number: int, positions: range, skip: frozenset[int]) -> None:
    """In a worker: the piece's verdicts to the run, unless another process has taken the piece."""
    if not claim(work.claims, number, work.number):
        return
    found: dict[int, Verdict] | None
    try:
        found = verdicts(
            index, start, positions, max_bytes=work.max_bytes, types=work.types, skip=skip, mapper=work.mapper
        )
    except Exception:  # the run validates these itself, and raises there if it must
        found = None
    work.answers.put((number, found))


def fork_refusal() -> str:
    """Why this process must not fork worker processes now, or "" when it may."""
    if not hasattr(os, "fork"):
        return "no fork"
    is_daemonic = multiprocessing.current_process().daemon or billiard.current_process().daemon
    if is_daemonic and not sys.platform.startswith("linux"):
        # A Celery prefork child is daemonic: its pool kills it at its time limit or a shutdown, and only Linux's
        # PR_SET_PDEATHSIG (see worker_main) takes the child's own workers down with it.
        return "daemonic process"
    tqdm_monitor = sys.modules.get("tqdm._monitor")
    monitor = getattr(tqdm_monitor, "TMonitor", None)
    others = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not (monitor is not None and isinstance(thread, monitor))
    ]
    if others:
        # A lock another thread holds at the fork would stay held in the worker for ever.
        return "other threads"
    return ""
