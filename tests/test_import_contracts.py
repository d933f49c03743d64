"""The import contract in pyproject.toml holds, and each kind of forbidden import breaks it by name.

Each probe test writes a throwaway module that makes one forbidden import, runs lint-imports, and removes the
module whatever happens; the contract's name in the output says which rule caught it.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _lint_imports() -> subprocess.CompletedProcess[str]:
    # Wide columns keep each contract's name on one line of the report.
    environment = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache", "--no-logo"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@contextmanager
def _probes(sources: dict[str, str]) -> Iterator[None]:
    paths = [ROOT / relative for relative in sources]
    try:
        for path, source in zip(paths, sources.values(), strict=True):
            path.write_text(source)
        yield
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _probe_name(package: str, role: str = "") -> str:
    # The process id keeps two concurrent test runs from removing each other's probe.
    return f"{package}/_contract_probe{role}_{os.getpid()}.py"


def test_the_import_contract_holds() -> None:
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_audit_importing_records_breaks_the_contract() -> None:
    probe = _probe_name("audit")
    with _probes({probe: "import records.models  # noqa: F401\n"}):
        result = _lint_imports()
    assert result.returncode != 0
    assert "audit is a leaf: it imports nothing of records or consent BROKEN" in result.stdout
    assert f"{Path(probe).stem} -> records.models" in result.stdout


def test_records_models_importing_consent_breaks_the_contract() -> None:
    probe = _probe_name("records/models")
    with _probes({probe: "import consent.roles  # noqa: F401\n"}):
        result = _lint_imports()
    assert result.returncode != 0
    assert "records' models import nothing of consent BROKEN" in result.stdout
    assert f"{Path(probe).stem} -> consent.roles" in result.stdout


def test_a_module_below_the_portal_importing_it_breaks_the_contract() -> None:
    probe = _probe_name("records")
    with _probes({probe: "import records.portal.selectors  # noqa: F401\n"}):
        result = _lint_imports()
    assert result.returncode != 0
    assert (
        "Nothing below the portal imports the portal; only the root URLconf mounts it BROKEN" in result.stdout
    )
    assert f"{Path(probe).stem} -> records.portal.selectors" in result.stdout


def test_one_audience_importing_another_breaks_the_contract() -> None:
    probe = _probe_name("records/partner_api")
    with _probes({probe: "import records.backoffice.monitor  # noqa: F401\n"}):
        result = _lint_imports()
    assert result.returncode != 0
    assert (
        "Within records, arrows point down: audiences, tasks, feeds, ingest, models BROKEN" in result.stdout
    )
    assert f"{Path(probe).stem} -> records.backoffice.monitor" in result.stdout


def test_an_import_cycle_breaks_the_contract() -> None:
    first, second = _probe_name("records", "_first"), _probe_name("records", "_second")
    first_module, second_module = (f"records.{Path(path).stem}" for path in (first, second))
    with _probes(
        {
            first: f"import {second_module}  # noqa: F401\n",
            second: f"import {first_module}  # noqa: F401\n",
        }
    ):
        result = _lint_imports()
    assert result.returncode != 0
    assert "No import cycles among the modules of any package BROKEN" in result.stdout
    assert f".{Path(first).stem}" in result.stdout or f".{Path(second).stem}" in result.stdout
