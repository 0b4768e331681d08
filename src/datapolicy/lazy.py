"""A package's public names, loaded when first used (PEP 562's module `__getattr__`).

A package's `__init__` that imports its modules eagerly makes every module of the package pay
for the heaviest one: `datapolicy audit list --help` needs the audit actions
(store/audit/records.py, plain values), and importing it used to import SQLAlchemy and Alembic
through store/__init__.py (0.9 s of CPU; issue 19 wants `--help` under 0.3 s). The packages
that re-export heavy names build their `__getattr__` here instead."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: `where` maps each public name to the module
    that defines it, imported the first time the name is asked for (then kept on the package,
    so later look-ups do not come here)."""

    def attribute(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return attribute
