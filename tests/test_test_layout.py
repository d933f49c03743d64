"""No test module imports another test module or the conftest: shared builders live in `tests/builders.py`,
shared fixtures in `tests/conftest.py`, and each test file stands on its own."""

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _is_test_module(dotted: str) -> bool:
    """`tests.test_x`, `tests.conftest`, the same in a sub-package of `tests`, or anything inside them."""
    parts = dotted.split(".")
    return parts[0] == "tests" and any(part.startswith("test_") or part == "conftest" for part in parts[1:])


def imported_test_modules(source: str, package: str = "tests") -> list[str]:
    """The test modules (and the conftest) that `source`, a module of `package`, imports, however spelled."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            if _is_test_module(base):
                found.append(base)
            else:
                found += [
                    f"{base}.{alias.name}" for alias in node.names if _is_test_module(f"{base}.{alias.name}")
                ]
    return found


@pytest.mark.parametrize(
    "source",
    [
        "from tests.test_push_api import bundle",
        "from tests import test_push_api",
        "import tests.test_push_api",
        "import tests.test_push_api as api_tests",
        "from tests.conftest import PASSWORD",
        "from tests.bench.test_speed import figures",
        "from .test_push_api import bundle",
        "from . import conftest",
        "def helper():\n    from tests.test_portal_urls import PORTAL_URLS\n",
    ],
)
def test_every_spelling_of_a_test_module_import_is_caught(source):
    assert imported_test_modules(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from tests.builders import bundle",
        "from tests import builders",
        "from . import builders",
        "import pytest",
        "from records.models import Feed",
        "from tests.testing_helpers import x",
    ],
)
def test_builders_and_project_imports_are_allowed(source):
    assert imported_test_modules(source) == []


def test_no_file_under_tests_imports_a_test_module_or_the_conftest():
    modules = sorted(TESTS.rglob("*.py"))
    assert TESTS / "builders.py" in modules
    offenders: dict[str, list[str]] = {}
    for path in modules:
        name = path.relative_to(TESTS.parent)
        if imported := imported_test_modules(path.read_text(), ".".join(name.parent.parts)):
            offenders[str(name)] = imported
    assert offenders == {}
