"""The order pytest-xdist hands the test groups out in (tests/longest_first.py): longest first
by the recorded durations, a module without a record at a default cost a test, each group's
tests together and in their own order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

import longest_first
from longest_first import UNKNOWN_TEST_S, expected_seconds, longest_groups_first


@dataclass
class Item:
    nodeid: str


def order(nodeids: list[str], groups: dict[str, str], recorded: dict[str, Any]) -> list[str]:
    items: list[Any] = [Item(nodeid) for nodeid in nodeids]
    group_of = {id(item): groups.get(item.nodeid, item.nodeid.split("::")[0]) for item in items}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(longest_first, "_recorded", lambda: recorded)
        longest_groups_first(items, group_of)
    return [item.nodeid for item in items]


def test_a_recorded_test_costs_its_modules_average_and_an_unrecorded_one_the_default():
    recorded = {"tests/a.py": (30.0, 3)}
    assert expected_seconds("tests/a.py::test_x[1]", recorded) == 10.0
    assert expected_seconds("tests/b.py::test_y", recorded) == UNKNOWN_TEST_S


def test_long_groups_of_few_tests_go_before_short_groups_of_many():
    many = [f"tests/many.py::test_{n}" for n in range(40)]  # 40 x 0.1 s
    few = ["tests/few.py::test_a", "tests/few.py::test_b"]  # 2 x 60 s
    unknown = ["tests/new.py::test_a"]  # the default: between the two
    recorded = {"tests/many.py": (4.0, 40), "tests/few.py": (120.0, 2)}
    assert order(many + unknown + few, {}, recorded) == few + many + unknown


def test_each_test_of_a_spread_module_is_placed_by_its_own_share():
    spread = [f"tests/spread.py::test_{n}" for n in range(3)]  # 3 x 50 s, each its own group
    module = [f"tests/module.py::test_{n}" for n in range(10)]  # 10 x 10 s, one group
    recorded = {"tests/spread.py": (150.0, 3), "tests/module.py": (100.0, 10)}
    groups = {nodeid: nodeid for nodeid in spread}
    assert order(spread + module, groups, recorded) == module + spread


def test_equal_groups_keep_their_collection_order_and_their_tests_stay_together():
    nodeids = ["tests/a.py::t1", "tests/b.py::t1", "tests/a.py::t2", "tests/b.py::t2"]
    assert order(nodeids, {}, {}) == [
        "tests/a.py::t1",
        "tests/a.py::t2",
        "tests/b.py::t1",
        "tests/b.py::t2",
    ]
