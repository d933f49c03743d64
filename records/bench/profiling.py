"""Where the time goes (`--profile`): each pipeline stage timed, then cProfile's top functions."""

from __future__ import annotations

import cProfile
import inspect
import io
import pstats
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from django.test import override_settings

from records.bench.inputs import Texts, synthea_feed, synthea_texts
from records.bench.runs import gc_pauses
from records.ingest import held, ingestion, patient_pass, pipeline, rejections, run_validation

# The pipeline's stages, by the function that does each; each is timed by wall clock, exclusive of the others.
_STAGES = (
    ("read and parse the files", "read_source"),
    ("validate (R4B)", "validate_json"),
    ("validate XML (R4B)", "validate_xml"),
    ("apply Patient resources", "patients_upsert"),
    ("find the patient", "subject_target"),
    ("map to entries", "map_resource"),
    ("upsert entries", "entries_upsert"),
    ("refresh relationships", "relationships_refresh"),
)
# The modules of a run that call those functions, each by its own name for it.
_RUN_MODULES = (ingestion, held, patient_pass, run_validation)


def _timing(function: Callable[..., Any], spent: dict[str, float], name: str) -> Callable[..., Any]:
    """`function`, adding the wall time spent inside it to spent[name] (for a generator, inside each step)."""
    if inspect.isgeneratorfunction(function):

        def stepped(*args: Any, **kwargs: Any) -> Iterator[Any]:
            steps = function(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(steps)
                except StopIteration:
                    return
                finally:
                    spent[name] += time.perf_counter() - started
                yield item

        return stepped

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started

    return timed


def stage_times(texts: Texts, out: TextIO) -> None:
    """Ingest Synthea once more (new patients, a new practice) with each stage timed, and print the split."""
    spent = dict.fromkeys([label for label, _ in _STAGES] + ["write quarantined records"], 0.0)
    originals: list[tuple[Any, str, Any]] = []
    for label, name in _STAGES:
        for module in _RUN_MODULES:
            if hasattr(module, name):
                originals.append((module, name, getattr(module, name)))
                setattr(module, name, _timing(getattr(module, name), spent, label))
    originals.append((rejections.Rejections, "write", rejections.Rejections.write))
    rejections.Rejections.write = _timing(  # type: ignore[method-assign]
        rejections.Rejections.write, spent, "write quarantined records"
    )
    feed = synthea_feed("SYNS")
    try:
        with gc_pauses() as paused:
            started = time.perf_counter()
            pipeline.ingest_texts(feed, texts, source_name="synthea (stages timed)")
            total = time.perf_counter() - started
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    out.write(f"\nwhere the time goes (Synthea first run, each stage timed, {total:.2f} s):\n")
    for label, seconds in [*spent.items(), ("everything else", total - sum(spent.values()))]:
        out.write(f"  {label:<28} {seconds:>6.2f} s  {100 * seconds / total:>5.1f}%\n")
    out.write(f"  (the cyclic GC paused the run for {paused[0]:.2f} s of that, spread over the stages)\n")


def top_functions(texts: Texts, out: TextIO) -> None:
    """Ingest Synthea once more under cProfile and print the functions with the most time of their own."""
    feed = synthea_feed("SYNC")
    profiler = cProfile.Profile()
    profiler.enable()
    pipeline.ingest_texts(feed, texts, source_name="synthea (profiled)")
    profiler.disable()
    out.write(
        "\nfunctions with the most time of their own (cProfile, which slows Python code more than C):\n"
    )
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)


def where_the_time_goes(synthea_bundles: int | None, out: TextIO) -> None:
    """Stage times, then cProfile's top functions, on Synthea runs in one process for new patients (`--profile`)."""
    buffer = io.StringIO()
    with override_settings(INGEST_VALIDATION_PROCESSES=1):
        stage_times(synthea_texts(synthea_bundles, use=2), buffer)
        top_functions(synthea_texts(synthea_bundles, use=3), buffer)
    out.write(buffer.getvalue())
    out.flush()
