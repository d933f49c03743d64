"""Signals and child processes of a launcher: a signal asks it to stop, and it stops only what it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from types import FrameType, TracebackType

# Long enough for a busy two-core machine: a Celery worker finishing its task, PostgreSQL writing a checkpoint. Past
# it, a process that asked politely is killed.
STOP_SECONDS = 120
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Signals:
    """While entered, SIGINT and SIGTERM are recorded instead of ending the launcher at once, so that it always gets
    to stop what it started. Ctrl-C in a terminal reaches the whole foreground process group, so the launcher's
    children have it already; a SIGTERM is often sent to the launcher alone, so `child_wait` passes it on."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Signals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)

    @property
    def stopping(self) -> bool:
        return bool(self.received)


def child_wait(child: subprocess.Popen[bytes], signals: Signals) -> int:
    """Wait for `child` to end and return its exit code, passing on each SIGTERM the launcher receives meanwhile."""
    passed_on = 0
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        for signum in signals.received[passed_on:]:
            if signum == signal.SIGTERM:
                child.send_signal(signum)
        passed_on = len(signals.received)


def children_stop(children: list[subprocess.Popen[bytes]]) -> None:
    """Ask every child still running to stop (SIGTERM), then wait for each; kill one that outlasts STOP_SECONDS."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def process_alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie, dead but not yet reaped by its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        # The state follows the command name, which is in parentheses and may itself hold spaces.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def process_command_line(pid: int) -> str:
    """The command line of `pid` as one string, or "" when it cannot be read."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_wait_gone(pid: int, seconds: float) -> bool:
    """Poll until `pid` has ended; False when it still runs after `seconds`."""
    deadline = time.monotonic() + seconds
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def process_stop(pid: int, polite: int, forceful: int) -> None:
    """Send `polite`, wait up to STOP_SECONDS for `pid` to end, then send `forceful` and wait again."""
    for signum in (polite, forceful):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        if process_wait_gone(pid, STOP_SECONDS):
            return
