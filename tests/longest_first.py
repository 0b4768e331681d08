"""The order in which pytest-xdist hands out the test groups (`--dist loadgroup`, scripts/test):
the longest first, by the seconds recorded in tests/durations.json.

pytest-xdist's own order is by the number of tests in a group, most first
(`--loadscope-reorder`, its default). Here that puts last the groups of one or two tests that
run for minutes (the chaos and rolling-restart tests, the scenario and discovery commands, each
test of a `spread` module), and the other processes can idle while the last of them runs.
Handing the longest out first (longest-processing-time-first list scheduling) lets the short
groups fill in beside them instead.

tests/durations.json holds, per test module, the seconds its tests took (setup, call and
teardown) and how many there were. A group's cost is the sum of its tests' shares; a module the
file does not list counts `UNKNOWN_TEST_S` a test, as in-process tests take about that. The
figures need only rank the groups: `--record-durations` rewrites the modules a run went through
(e.g. after adding a long test module: `scripts/test -n 3 --dist loadgroup --record-durations`).
Without `--dist loadgroup` nothing is reordered.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
UNKNOWN_TEST_S = 0.5


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-durations",
        action="store_true",
        help=f"write the seconds each test module took to tests/{DURATIONS.name}",
    )


def _loadgroup(config: pytest.Config) -> bool:
    """Whether the run is `--dist loadgroup`: in the controlling process, or in a worker (where
    pytest-xdist sets `dist` to "no" and `loadgroup` to True)."""
    option = config.option
    return getattr(option, "dist", "no") == "loadgroup" or bool(getattr(option, "loadgroup", 0))


def pytest_configure(config: pytest.Config) -> None:
    if _loadgroup(config):
        # The controller keeps the order the workers collected in (pytest_collection_modifyitems
        # below) instead of sorting the groups by their number of tests.
        config.option.loadscopereorder = False
    if config.getoption("record_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(), "record-durations")


@pytest.hookimpl(trylast=True)  # after tests/conftest.py has put every test in a group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _loadgroup(config):
        longest_groups_first(items, {id(item): _group(item) for item in items})


def _group(item: pytest.Item) -> str:
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return item.nodeid
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _recorded() -> dict[str, tuple[float, int]]:
    if not DURATIONS.exists():
        return {}
    return {
        module: (float(seconds), int(tests))
        for module, (seconds, tests) in json.loads(DURATIONS.read_text()).items()
    }


def expected_seconds(nodeid: str, recorded: dict[str, tuple[float, int]]) -> float:
    """The seconds a test is expected to take: its module's recorded average."""
    seconds, tests = recorded.get(module_of(nodeid), (0.0, 0))
    return seconds / tests if tests else UNKNOWN_TEST_S


def longest_groups_first(items: list[pytest.Item], group_of: dict[int, str]) -> None:
    """Reorder `items` so the groups (`group_of[id(item)]`) come longest first, each group's
    tests together and in their own order."""
    recorded = _recorded()
    cost: dict[str, float] = defaultdict(float)
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        group = group_of[id(item)]
        cost[group] += expected_seconds(item.nodeid, recorded)
        first.setdefault(group, index)
    items.sort(key=lambda item: (-cost[group_of[id(item)]], first[group_of[id(item)]]))


class _Recorder:
    """With `--record-durations`, in the controlling process: the seconds of every test report,
    summed per module, merged into tests/durations.json at the end."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set[str]] = defaultdict(set)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        module = module_of(report.nodeid)
        self.seconds[module] += report.duration
        self.tests[module].add(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        recorded = {module: list(entry) for module, entry in _recorded().items()}
        for module, seconds in self.seconds.items():
            recorded[module] = [round(seconds, 2), len(self.tests[module])]
        lines = [
            f"{json.dumps(module)}: {json.dumps(entry)}"
            for module, entry in sorted(recorded.items())
        ]
        DURATIONS.write_text("{\n" + ",\n".join(lines) + "\n}\n")  # a line a module: short diffs
