"""Validation of a run's FHIR resources in a worker process beside the run (INGEST_VALIDATION_PROCESSES).

`ValidationPool` reads, validates and maps a run's FHIR inputs again in worker processes, so that R4B validation
(the slowest step of a run) uses the machine's other cores while the run's own process matches and writes, sharing
the validation with them piece by piece. What a worker finds is exactly what the run would have found itself: the
same functions on the same input; whatever no worker answers for, the run does itself. The measurements behind
each choice are in docs/benchmarks.md.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import queue
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import billiard

from records.ingest.fhir import JsonObject
from records.ingest.formats.readers import read_bytes
from records.ingest.items import Reader, Source
from records.ingest.validation_worker import FIRST_WORKER, Task, Verdict, Work, fork_refusal, worker_main
from records.ingest.validation_worker import RUN as _RUN
from records.ingest.validation_worker import claim as _claim

logger = logging.getLogger(__name__)

# Below this much input a run validates in its own process: starting workers costs more than they would save.
VALIDATION_POOL_MIN_BYTES = 1024 * 1024
# Positions (items of an input) per piece of work the run and a worker share: small enough that the run seldom
# waits long for a piece a worker is on, large enough that handing pieces over costs little.
VALIDATION_CHUNK = 64
# Pieces a run can share; the positions of any later input are the run's own (at 64 a piece, 67 million resources).
_MAX_PIECES = 1 << 20
# How often the run, waiting for a worker's answer, checks that the worker is still alive.
_ANSWER_POLL_SECONDS = 0.5
# How often a run sharing with workers asks again whether other runs need the cores (a database query).
_SHARE_CHECK_SECONDS = 0.25
# How long a worker told to stop may take to finish the pieces it was handed before it is killed, and how often the
# run, meanwhile, takes the answers it sends off the pipe.
_STOP_SECONDS = 2.0
_DRAIN_SECONDS = 0.01


def worth_forking(sources: Sequence[Source], read: Reader) -> bool:
    """Whether a run of these inputs is one a validation worker could help: FHIR, and enough of it."""
    return read is read_bytes and sum(source.size() for source in sources) >= VALIDATION_POOL_MIN_BYTES


# Does a piece of work in the run's own process: (input index, positions, positions to skip) -> the verdicts, or
# None when it cannot (the run no longer holds that input's items) and will validate them as it reaches them.
PieceWork = Callable[[int, range, frozenset[int]], dict[int, Verdict] | None]


@dataclass
class _Piece:
    """Positions of one input that the run and a worker share as one piece of work."""

    number: int
    index: int
    positions: range
    skip: frozenset[int]
    is_settled: bool = False  # the run has asked for its verdicts
    found: dict[int, Verdict] | None = None  # done by the run itself while it waited for another


class ValidationPool:
    """Validates and maps a run's FHIR resources in worker processes (forked per run, always shut down) while it
    goes on.

    The run hands each input over once its first pass has read it (`submit`), naming the resources not to
    validate (see `pipeline`); it is cut into pieces of VALIDATION_CHUNK positions. A worker reads the input again
    and takes its pieces one by one, in order, while the run goes on, sending each piece's verdicts back as soon
    as it has them. When the run's second pass needs a verdict (`verdicts`), it takes the piece holding it if no
    worker has, and does that piece itself; otherwise it collects the worker's answer, doing pieces no one has
    taken while it waits. Whatever no worker answered for (a worker that failed, a resource that differs), the
    run validates itself. With `processes` under 2, where `fork_refusal` says no (a daemonic process other than a
    Celery prefork child on Linux, other threads running), for a reader other than FHIR's, or for little input,
    there are no workers and no verdicts.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        processes: int,
        max_bytes: int,
        types: frozenset[str],
        read: Reader,
        mapper: Callable[[JsonObject], Any] | None = None,
        allowed: Callable[[int], int] | None = None,
    ) -> None:
        self._sources = sources
        # Given the processes wanted, how many the run may use now (see `_may_share`); all of them, without it.
        self._allowed = allowed
        self._checked_at = 0.0
        self._max_bytes = max_bytes
        self._types = types
        self._mapper = mapper
        self._workers = 0
        self._processes: list[Any] = []
        self._work: Work | None = None
        self._pieces: list[_Piece] = []
        self._starts: list[int] = []  # the first position of each piece, in order, to find a position's piece
        self._answers: dict[int, dict[int, Verdict] | None] = {}
        self._next = 0  # no piece before this one is left for the run to take while it waits
        self._is_sharing = True  # False once the lock over the pieces is lost: the run does every piece left
        if processes >= 2 and worth_forking(sources, read):
            refused = fork_refusal()
            if refused:
                logger.info("validating in the run's own process: it may not fork here (%s)", refused)
            else:
                self._workers = processes - 1

    def __enter__(self) -> ValidationPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        work, self._work = self._work, None
        if work is not None:
            work.handing.close()  # the end of the tasks: each worker stops after the pieces it was handed
            for process in self._processes:
                deadline = time.monotonic() + _STOP_SECONDS
                while process.is_alive() and time.monotonic() < deadline:
                    # A worker sends every answer it made before it ends (see `worker_main`): taken off the pipe
                    # here, unread, so that it never waits on a full pipe until it is killed.
                    self._drain(work)
                    process.join(_DRAIN_SECONDS)
                if process.is_alive():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGKILL)
                    process.join()
            work.answers.close()
        self._processes.clear()
        self._pieces.clear()
        self._starts.clear()
        self._answers.clear()

    @staticmethod
    def _drain(work: Work) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                work.answers.get(block=False)

    def _start(self) -> Work:
        """Fork the workers, at the first input with anything to validate (never, for a run that changes nothing),
        and as early as that: every page this process writes after the fork is copied, so the less it holds the
        better. fork: the workers start with Django, the FHIR models and the run's inputs; they never use the
        database connection they inherit."""
        # billiard (Celery's fork of multiprocessing), whose processes, unlike multiprocessing's, may start
        # children of their own from a daemonic process: a Celery prefork child is one.
        context: Any = billiard.get_context("fork")
        # A pipe, not a queue, for the tasks: a queue's thread in this process would be a thread beside the next
        # fork, and could block for ever on a full pipe no worker reads any more.
        tasks, handing = context.Pipe(duplex=False)
        work = Work(
            parent=os.getpid(),
            sources=self._sources,
            number=FIRST_WORKER,
            claims=context.Array("b", _MAX_PIECES),
            tasks=tasks,
            handing=handing,
            answers=context.Queue(),
            max_bytes=self._max_bytes,
            types=self._types,
            mapper=self._mapper,
        )
        for number in range(FIRST_WORKER, FIRST_WORKER + self._workers):
            process = context.Process(target=worker_main, args=(replace(work, number=number),), daemon=True)
            process.start()
            self._processes.append(process)
            logger.info("validation worker %s started beside process %s", process.pid, work.parent)
        # Only the workers read the tasks: with them gone, handing one over fails rather than waits.
        tasks.close()
        return work

    def submit(self, index: int, positions: range, skip: frozenset[int]) -> None:
        """Validate input `index`, whose items are at `positions`, but not the positions in `skip`."""
        source = self._sources[index]
        if not self._workers or source.size() > self._max_bytes:
            return
        if not self._may_share():
            # Another run has taken the core: no worker is started, or the one working gets nothing more, finishes
            # what it was handed (sharing it piece by piece with the run as before) and stops.
            if self._work is not None:
                self._work.handing.close()
                logger.info("validation workers get no more work: other runs need the cores")
            self._workers = 0
            return
        if self._work is None:
            self._work = self._start()
        pieces = []
        for low in range(positions.start, positions.stop, VALIDATION_CHUNK):
            number = len(self._pieces)
            if number >= _MAX_PIECES:
                break
            piece = range(low, min(low + VALIDATION_CHUNK, positions.stop))
            piece_skip = skip.intersection(piece)
            pieces.append((number, piece, piece_skip))
            self._pieces.append(_Piece(number, index, piece, piece_skip))
            self._starts.append(low)
        task: Task = (index, positions.start, pieces)
        try:
            # A worker takes whatever is handed over between two pieces, so this seldom waits, and never long.
            self._work.handing.send(task)
        except OSError:  # the workers are gone: these pieces are no one's, and the run takes them as it goes
            self._workers = 0

    def _may_share(self) -> bool:
        """Whether the run may share with workers: asked before they start (starting no more than it allows), and
        then at most every _SHARE_CHECK_SECONDS as inputs are handed over, since a run that started at about the
        same time may not have been counted at first."""
        if self._allowed is None:
            return True
        now = time.monotonic()
        if self._work is not None and now - self._checked_at < _SHARE_CHECK_SECONDS:
            return True
        self._checked_at = now
        allowed = self._allowed(self._workers + 1)
        if self._work is None:
            self._workers = min(self._workers, allowed - 1)
        return allowed > 1

    def verdicts(self, position: int, meanwhile: PieceWork | None = None) -> dict[int, Verdict]:
        """The verdicts on the piece holding `position` (by position), the first time it is asked for; empty if
        none will come: the run then does that piece itself.

        A piece no worker has taken is taken back, and the run does it rather than wait. While a worker is on the
        one it needs, the run does the next piece no one has taken with `meanwhile`, so that it does not idle.
        """
        found = bisect.bisect_right(self._starts, position) - 1
        if found < 0 or self._work is None:
            return {}
        piece = self._pieces[found]
        if piece.is_settled or position not in piece.positions:
            return {}
        piece.is_settled = True
        if piece.found is not None:
            return piece.found
        if not self._is_sharing or self._take(piece):
            return {}
        while piece.number not in self._answers:
            if self._collect(block=False):
                continue
            if meanwhile is not None and self._take_next(meanwhile):
                continue
            if not self._collect(block=True) and not self._may_answer(piece.number):
                return {}  # the worker that took it is gone: the run validates these itself
        return self._answers.pop(piece.number) or {}

    def _take(self, piece: _Piece) -> bool:
        """Take `piece` for the run; False when a worker has it. Losing the lock ends the sharing (the run takes)."""
        if self._work is None:
            raise RuntimeError("invariant: self._work is not None")
        taken = _claim(self._work.claims, piece.number, _RUN)
        if taken is None:
            self._is_sharing = False
        return taken is not False

    def _may_answer(self, number: int) -> bool:
        """Whether the worker that took piece `number` (any worker, if none has yet) is still alive."""
        if self._work is None:
            raise RuntimeError("invariant: self._work is not None")
        taker = self._work.claims[number]
        workers = self._processes[taker - FIRST_WORKER :][:1] if taker >= FIRST_WORKER else self._processes
        return any(worker.is_alive() for worker in workers)

    def _collect(self, *, block: bool) -> bool:
        """Take one answer a worker sent; False when there was none (within a poll interval, when blocking)."""
        if self._work is None:
            raise RuntimeError("invariant: self._work is not None")
        try:
            number, found = self._work.answers.get(block, _ANSWER_POLL_SECONDS)
        except queue.Empty:
            return False
        self._answers[number] = found
        return True

    def _take_next(self, meanwhile: PieceWork) -> bool:
        """Do the next piece no one has taken with `meanwhile`, in the run's process; False when there is none."""
        if self._work is None:
            raise RuntimeError("invariant: self._work is not None")
        while self._is_sharing and self._next < len(self._pieces):
            piece = self._pieces[self._next]
            self._next += 1
            if piece.is_settled or piece.found is not None or not self._take(piece):
                continue
            piece.found = meanwhile(piece.index, piece.positions, piece.skip) or {}
            return True
        return False
