"""errors.py's docstring draws every exception class datapolicy defines, each under the class it
derives from, and the status it gives a Graph error is the one the API answers with."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator

import pytest

import datapolicy
from datapolicy import errors
from datapolicy.web.errors import headers_of, status_of

# Not imported: running them has effects (the CLI's entry point, Alembic's environment).
_SKIPPED = ("datapolicy.__main__", "datapolicy.store.migrations")
_NODE = re.compile(r"^(?P<indent>[\s│]*)[├└]── (?P<name>[\w.]+)(?:\s+(?P<status>\d{3})\b)?")


def exception_classes() -> Iterator[type[BaseException]]:
    for module_info in pkgutil.walk_packages(datapolicy.__path__, "datapolicy."):
        if module_info.name.startswith(_SKIPPED):
            continue
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                yield cls


def drawn() -> dict[str, tuple[str, int | None]]:
    """Each class in the drawing: the class it is drawn under, and its status if one is given.
    Under "outside the service" a class derives from Exception."""
    assert errors.__doc__ is not None
    tree: dict[str, tuple[str, int | None]] = {}
    parents = ["Exception"]
    for line in errors.__doc__.splitlines():
        node = _NODE.match(line)
        if node is None:
            continue
        depth = (len(node["indent"]) - 4) // 4
        name = node["name"].rsplit(".", 1)[-1]
        del parents[depth + 1 :]
        parent = parents[depth]
        tree[name] = (
            "Exception" if parent == "outside" else parent,
            int(node["status"] or 0) or None,
        )
        parents.append(name)
    return tree


def test_every_exception_class_is_drawn_under_its_base_class():
    tree = drawn()
    classes = list(exception_classes())
    assert len(classes) > 20
    for cls in classes:
        assert cls.__name__ in tree, f"{cls.__module__}.{cls.__name__} is not in errors.py's tree"
        assert tree[cls.__name__][0] == cls.__bases__[0].__name__, cls


def test_each_graph_error_is_answered_with_the_status_drawn_for_it():
    tree = drawn()
    graph_errors = [cls for cls in exception_classes() if issubclass(cls, errors.DatapolicyError)]
    for cls in graph_errors:
        status = tree[cls.__name__][1]
        if status is not None:  # HTTPError carries its own
            assert status_of(Exception.__new__(cls)) == status, cls


def test_a_429_says_when_to_come_back_in_whole_seconds_rounded_up():
    """TooManyRequests carries the wait as `Retry-After`: at least 1 second, rounded up, so a
    client that waits that long is let through."""
    for wait, seconds in ((0.001, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")):
        throttled = errors.TooManyRequests(wait)
        assert (status_of(throttled), throttled.code) == (429, "TooManyRequests")
        assert headers_of(throttled) == {"Retry-After": seconds}


@pytest.mark.parametrize(
    "startup",
    [errors.SigningKeyError, errors.StoreUnreachable, errors.MigrationFailed],
)
def test_startup_errors_are_not_graph_errors(startup: type[errors.StartupError]):
    """A failure to start has no HTTP status or Graph code: no client ever sees one."""
    assert not issubclass(startup, errors.DatapolicyError)
    assert issubclass(startup, errors.StartupError)
