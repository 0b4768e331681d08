"""Packages whose names load on first use (lazy.py): each public name resolves to its module's
object, a name outside the package is an AttributeError, and importing a plain-values module of
the package loads nothing heavy; and what a process that does not need it does not load (every
`datapolicy` process pays for its imports at each start, and the tests start hundreds)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest

LAZY_PACKAGES = ("datapolicy.engine", "datapolicy.store", "datapolicy.store.audit")


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_public_name_resolves(package: str):
    """`from package import name` works for each name of `__all__` (a name missing from the
    mapping, or mapped to the wrong module, fails here)."""
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None, name
        assert name in vars(module), f"{name} is not kept on the package after its first use"


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_an_unknown_name_is_an_attribute_error(package: str):
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        module.nonsense  # noqa: B018  # the look-up is the test
    assert not hasattr(module, "nonsense")


def test_the_audit_actions_load_without_sqlalchemy():
    """store/audit/records.py (plain values, read by `audit list --help`) imports neither
    SQLAlchemy nor Alembic through the packages above it."""
    loaded = _loaded_by(
        "from datapolicy.store.audit.records import AuditAction", "sqlalchemy", "alembic", "joserfc"
    )
    assert loaded == []


def test_the_package_reader_loads_without_the_engine_s_sources_and_workers():
    """engine/verify.py (`datapolicy verify`, which reads a package and nothing else) imports
    neither SQLAlchemy nor the workers and the user directory through engine/__init__.py."""
    loaded = _loaded_by(
        "import datapolicy.engine.verify",
        "sqlalchemy",
        "psycopg",
        "datapolicy.engine.worker",
        "datapolicy.engine.directory",
    )
    assert loaded == []


def test_the_service_loads_without_psycopg():
    """`datapolicy serve` and `worker` on the SQLite store, with no PostgreSQL source, do not
    load psycopg (store/database.py and engine/sources/pgloaders.py import it on first use)."""
    assert _loaded_by("import datapolicy.server", "psycopg") == []


def _loaded_by(statement: str, *modules: str) -> list[str]:
    """Which of `modules` a fresh interpreter has loaded after running `statement`."""
    probe = f"import sys\n{statement}\nprint(sorted(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = ast.literal_eval(result.stdout.strip())
    return loaded
