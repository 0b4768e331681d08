"""A scenarios file (`serve --scenarios-file FILE`): the fault rules, the time mode and the
forced export failures a test double starts with, so that a suite's setup needs no call before
its first test (Dev Proxy and LocalStack start from files in the same way).

Its shape is what `GET /v1.0/admin/datapolicy/scenarios` answers (`datapolicy scenarios show
--json`), so a setup made by hand can be captured and replayed; the read-only parts of that
answer (each rule's `id` and `matched`, the `snapshots`) are ignored. Each part is read by the
same parser as the admin API's request for it, so a file holds nothing a request could not set.
JSON or YAML (read as JSON first: a JSON string may hold characters, such as U+007F, that
YAML refuses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import yaml

from datapolicy.config import ConfigError
from datapolicy.errors import InvalidRequest
from datapolicy.scenarios import Scenarios
from datapolicy.scenarios.faults import RuleSpec, parse_rule
from datapolicy.scenarios.pacing import ForcedFailure, TimeMode

PARTS = ("faults", "time", "exportFailures")
_READ_ONLY = {"snapshots"}  # of the overview
_RULE_READ_ONLY = ("id", "matched")  # of each rule in it

T = TypeVar("T")


class ScenarioFileError(ConfigError):
    """A scenarios file cannot be read or holds something the admin API would refuse."""


@dataclass(frozen=True)
class ScenarioPreset:
    rules: tuple[RuleSpec, ...] = ()
    time: TimeMode = field(default_factory=TimeMode)
    failures: tuple[ForcedFailure, ...] = ()

    def apply(self, scenarios: Scenarios) -> None:
        """Set these on a service's scenario state, as the admin API's requests would."""
        for rule in self.rules:
            scenarios.faults.add(rule)
        scenarios.control.set_time(self.time)
        for failure in self.failures:
            scenarios.control.fail_next(failure)


def load_preset(path: Path) -> ScenarioPreset:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(f"scenarios file {path}: cannot be read: {exc}") from None
    try:
        document = orjson.loads(text)  # first: YAML refuses some characters JSON allows
    except orjson.JSONDecodeError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioFileError(f"scenarios file {path}: not JSON or YAML: {exc}") from None
    if document is None:
        return ScenarioPreset()
    if not isinstance(document, dict):
        raise ScenarioFileError(f"scenarios file {path}: must be an object with {_parts()}")
    unknown = sorted(set(document) - set(PARTS) - _READ_ONLY, key=str)
    if unknown:
        raise ScenarioFileError(
            f"scenarios file {path}: unknown part '{unknown[0]}' (it has {_parts()})"
        )

    def read(part: str, parse: Callable[[Any], T], value: Any) -> T:
        try:
            return parse(value)
        except InvalidRequest as exc:
            raise ScenarioFileError(f"scenarios file {path}: {part}: {exc}") from None

    return ScenarioPreset(
        rules=tuple(
            read(f"faults[{index}]", parse_rule, _without_read_only(rule))
            for index, rule in enumerate(_list(path, document, "faults"))
        ),
        time=read("time", _time, document.get("time") or {}),
        failures=tuple(
            read(f"exportFailures[{index}]", _failure, failure)
            for index, failure in enumerate(_list(path, document, "exportFailures"))
        ),
    )


def _parts() -> str:
    return ", ".join(f"'{part}'" for part in PARTS)


def _list(path: Path, document: dict[str, Any], part: str) -> list[Any]:
    value = document.get(part) or []
    if not isinstance(value, list):
        raise ScenarioFileError(f"scenarios file {path}: {part}: must be a list")
    return value


def _without_read_only(rule: Any) -> Any:
    if isinstance(rule, dict):
        return {name: value for name, value in rule.items() if name not in _RULE_READ_ONLY}
    return rule


def _time(value: Any) -> TimeMode:
    if not isinstance(value, dict):
        raise InvalidRequest("must be an object")
    return TimeMode.from_json(value)


def _failure(value: Any) -> ForcedFailure:
    if not isinstance(value, dict):
        raise InvalidRequest("must be an object")
    return ForcedFailure.from_json(value)
