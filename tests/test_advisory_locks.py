"""Every advisory lock has a key of its own, and only `sharedcare.advisory_locks` names a key or runs lock SQL."""

from pathlib import Path

from sharedcare import advisory_locks

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sharedcare", "records", "consent", "audit")


def test_no_two_locks_share_a_key():
    keys = list(advisory_locks.KEYS.values())

    assert len(set(keys)) == len(keys) == 4


def test_every_key_fits_the_lock_it_is_for():
    # A two-key lock's keys are PostgreSQL integers (32 bits); a one-key lock's is a bigint.
    for namespace in (
        advisory_locks.INGEST_RUN_NAMESPACE,
        advisory_locks.FEED_RUN_NAMESPACE,
        advisory_locks.SUBMISSION_NAMESPACE,
    ):
        assert 0 < namespace < 2**31
    assert 0 < advisory_locks.AUDIT_CHAIN_KEY < 2**63


def test_no_other_module_takes_or_looks_for_an_advisory_lock():
    own = ROOT / "sharedcare" / "advisory_locks.py"
    elsewhere = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path != own
        and any(word in path.read_text(encoding="utf-8") for word in ("pg_advisory", "pg_locks"))
    )

    assert elsewhere == []
