"""A population kept between bench runs (`records.bench.read --keep NAME`) is read back as it was built, grows on from
where it stopped, and its database outlives the run until it is dropped by name.

The 1M-patient population takes most of an hour to build; these check, on a few dozen patients, that a later run
measures the same population rather than a different or a duplicated one.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from records.bench import population as populating
from records.bench.databases import kept_name_check, server_connection
from records.models import Patient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.django_db
def test_a_population_read_back_is_the_one_built_and_grows_on_without_repeating_a_patient() -> None:
    built = populating.partners_create(populating.practices_for(40))
    populating.grow(built, to=40, audit_events_per_patient=1.0)
    populating.build_note({"patients": built.patients, "seconds": {"entries": 1.5}, "commit": "abc"})

    loaded = populating.population_load()

    assert [practice.pk for practice in loaded.practices] == [practice.pk for practice in built.practices]
    assert {code: feed.pk for code, feed in loaded.feeds.items()} == {
        code: feed.pk for code, feed in built.feeds.items()
    }
    assert loaded.runs == built.runs
    assert (loaded.patients, loaded.entries, loaded.relationships, loaded.events) == (
        built.patients,
        built.entries,
        built.relationships,
        built.events,
    )
    [note] = populating.build_notes()
    assert note["patients"] == 40 and note["seconds"] == {"entries": 1.5} and note["commit"] == "abc"

    populating.grow(loaded, to=60, audit_events_per_patient=1.0)

    assert loaded.patients == Patient.objects.count() == 60
    numbers = list(Patient.objects.values_list("nhs_number", flat=True))
    assert len(set(numbers)) == 60
    from audit.selectors import audit_trail_verify

    assert list(audit_trail_verify("")) == []


def _bench(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "records.bench.read", *arguments],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _kept(name: str) -> bool:
    with server_connection(os.environ["DATABASE_URL"]) as server:
        found = server.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [kept_name_check(name)]
        ).fetchone()
    return found is not None


def test_a_kept_population_outlives_its_run_refuses_a_smaller_scale_and_is_dropped_by_name() -> None:
    name = f"test_{os.getpid()}"
    try:
        built = _bench("--keep", name, "--patients", "30", "--build-only")
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
        assert "30 patients built" in built.stdout
        assert _kept(name)

        smaller = _bench("--keep", name, "--patients", "20", "--build-only")
        assert smaller.returncode == 2 and "holds 30 patients" in smaller.stderr

        again = _bench("--keep", name, "--patients", "30", "--build-only")
        assert again.returncode == 0, again.stderr[-2000:]
        # Nothing was added the second time: one build noted, the same 30 patients.
        assert "'patients': 30," in again.stdout and again.stdout.count("'grew_from'") == 1
    finally:
        dropped = _bench("--keep", name, "--drop")
    assert dropped.returncode == 0 and not _kept(name)


def test_build_only_without_a_kept_database_is_refused() -> None:
    refused = _bench("--build-only", "--patients", "10")
    assert refused.returncode == 2 and "need --keep" in refused.stderr
