"""Where a record open's time goes: one request served in this process, its SQL captured, profiled and explained.

The request is a real one (the signed-in reader's own session cookie, every middleware, the door, the audit row),
made with Django's test client in this process instead of over HTTP, so that its queries can be captured and its
Python profiled. EXPLAIN (ANALYZE, BUFFERS) is run on the SELECTs it made that took longest, with the same
parameters; it runs each once more, and never on a statement that writes.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection
from django.test import Client

BASE_DIR = Path(__file__).resolve().parents[2]


@dataclass
class Captured:
    statements: list[tuple[str, Any, float]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(seconds for _, _, seconds in self.statements)


@contextmanager
def captured_sql() -> Iterator[Captured]:
    """Every statement Django sends meanwhile, with its parameters and how long the server took to answer it."""
    captured = Captured()

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            captured.statements.append((sql, params, time.perf_counter() - started))

    with connection.execute_wrapper(wrapper):
        yield captured


def _short(filename: str) -> str:
    """A source file's path from its package on (no path of this machine in the results)."""
    for marker in ("site-packages/", f"{BASE_DIR}/", "/lib/python"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python" and "/" in tail else tail
    return filename


def _client(cookies: dict[str, str]) -> Client:
    client = Client(HTTP_HOST="127.0.0.1")
    for name, value in cookies.items():
        client.cookies[name] = value
    return client


def _cumulative(stats: pstats.Stats, wanted: list[tuple[str, str]]) -> dict[str, float]:
    """The largest cumulative time of a function named `name` in a file ending with `path`, per (path, name)."""
    found: dict[str, float] = {}
    for (filename, _, name), values in stats.stats.items():  # type: ignore[attr-defined]
        for path, function in wanted:
            if name == function and filename.endswith(path):
                key = f"{path}:{function}"
                found[key] = max(found.get(key, 0.0), float(values[3]))
    return found


# Functions whose cumulative time says where a record open's time goes.
_STAGES = [
    ("django/core/handlers/base.py", "get_response"),
    ("records/access.py", "get_patient_for_user"),
    ("consent/policy.py", "decide"),
    ("records/portal/selectors.py", "record_page_build"),
    ("audit/services.py", "access_event_record"),
    ("django/shortcuts.py", "render"),
    ("django/contrib/sessions/backends/db.py", "load"),
    ("django/contrib/sessions/backends/db.py", "save"),
]


def record_open_profile(cookies: dict[str, str], public_id: str) -> dict[str, Any]:
    """Open the record once untimed (to warm this process), then once under cProfile with its SQL captured."""
    client = _client(cookies)
    url = f"/patients/{public_id}/"
    if client.get(url).status_code != 200:
        raise RuntimeError("the profiled record open was not allowed")
    profiler = cProfile.Profile()
    with captured_sql() as captured:
        started = time.perf_counter()
        profiler.enable()
        response = client.get(url)
        profiler.disable()
        total = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError("the profiled record open was not allowed")
    stats = pstats.Stats(profiler)
    top = sorted(
        (
            (
                float(values[2]),
                float(values[3]),
                int(values[1]),
                f"{_short(filename)}:{line}({name})",
            )
            for (filename, line, name), values in stats.stats.items()  # type: ignore[attr-defined]
        ),
        reverse=True,
    )[:15]
    return {
        "wall_ms_under_profiler": total * 1000,
        "statements": len(captured.statements),
        "sql_ms": captured.seconds * 1000,
        "stages_ms": {key: value * 1000 for key, value in _cumulative(stats, _STAGES).items()},
        "top_functions": [
            {"own_ms": own * 1000, "cumulative_ms": cumulative * 1000, "calls": calls, "function": name}
            for own, cumulative, calls, name in top
        ],
    }


def record_open_explain(cookies: dict[str, str], public_id: str, *, slowest: int = 6) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the slowest SELECTs one record open made, slowest first."""
    client = _client(cookies)
    url = f"/patients/{public_id}/"
    client.get(url)
    with captured_sql() as captured:
        if client.get(url).status_code != 200:
            raise RuntimeError("the explained record open was not allowed")
    selects = [
        (sql, params, seconds)
        for sql, params, seconds in captured.statements
        # Reads of tables only: a lock's SELECT reads none and has no plan worth showing.
        if sql.lstrip().upper().startswith(("SELECT", "WITH")) and " FROM " in sql.upper()
    ]
    plans = []
    for sql, params, seconds in sorted(selects, key=lambda item: item[2], reverse=True)[:slowest]:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plan = "\n".join(str(row[0]) for row in cursor.fetchall())
        plans.append({"sql": sql, "ms_in_request": seconds * 1000, "plan": plan})
    return plans
