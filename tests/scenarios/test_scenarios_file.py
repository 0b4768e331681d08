"""A scenarios file (scenarios/preset.py) sets up what the admin API's requests would: what
`GET .../scenarios` shows of a set-up service, written to a file and loaded into a fresh one,
shows again (generated setups); a part the admin API would refuse stops the start, naming where
it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datapolicy.config import ConfigError
from datapolicy.scenarios import FaultInjector, ScenarioControl
from datapolicy.scenarios.faults import parse_rule
from datapolicy.scenarios.pacing import ForcedFailure, TimeMode
from datapolicy.scenarios.preset import ScenarioFileError, ScenarioPreset, load_preset

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
faults = st.fixed_dictionaries(
    {"kind": st.sampled_from(["status", "latency", "timeout", "drop"])},
    optional={
        "status": st.integers(400, 599),
        "code": texts,
        "message": texts,
        "retryAfter": st.integers(0, 86400),
        "seconds": st.floats(0, 600),
    },
)
rules = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
        "route": st.sampled_from(["/users", "/users/{id}/exportPersonalData", "/x/*"]),
        "operationId": texts,
        "seed": st.integers(-(2**31), 2**31),
    },
).flatmap(
    lambda rule: st.one_of(
        st.builds(lambda seq: {**rule, "sequence": seq}, st.lists(faults, min_size=1, max_size=3)),
        st.builds(lambda f, r: {**rule, "fault": f, "rate": r}, faults, st.floats(0, 1)),
    )
)
times = st.builds(
    lambda mode, seconds, on_poll: TimeMode(mode, seconds, on_poll).as_json(),
    st.sampled_from(["normal", "slow", "step"]),
    st.floats(0, 3600),
    st.booleans(),
)
failures = st.builds(
    lambda code, message, operation: ForcedFailure(code, message, operation).as_json(),
    texts,
    texts,
    st.none() | texts,
)


class State:
    """The parts of a service's scenario state a file sets."""

    def __init__(self) -> None:
        self.faults = FaultInjector()
        self.control = ScenarioControl()

    def shown(self) -> dict[str, Any]:
        """What `GET .../scenarios` answers of it (web/test_double/scenarios.py's overview)."""
        return {
            "faults": [rule.as_json() for rule in self.faults.rules()],
            "time": self.control.time.as_json(),
            "exportFailures": [failure.as_json() for failure in self.control.failures],
            "snapshots": ["kept-elsewhere"],
        }


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Found by Hypothesis: YAML refuses U+007F, which JSON (and `show --json`) writes as it is.
@example(rules=[], time=TimeMode().as_json(), failures=[ForcedFailure("\x7f", "").as_json()])
@given(rules=st.lists(rules, max_size=4), time=times, failures=st.lists(failures, max_size=3))
def test_what_show_prints_loads_into_the_same_setup(tmp_path_factory, rules, time, failures):
    made = State()
    for rule in rules:
        made.faults.add(parse_rule(rule))
    made.control.set_time(TimeMode.from_json(time))
    for failure in failures:
        made.control.fail_next(ForcedFailure.from_json(failure))
    path = tmp_path_factory.mktemp("preset") / "setup.json"
    path.write_bytes(orjson.dumps(made.shown()))

    loaded = State()
    load_preset(path).apply(loaded)  # type: ignore[arg-type]  # the parts a file sets
    assert loaded.shown() == made.shown()


def test_yaml_is_read_and_an_empty_file_sets_nothing(tmp_path: Path):
    path = tmp_path / "setup.yaml"
    path.write_text(
        yaml.safe_dump(
            {"faults": [{"route": "/users", "sequence": [{"status": 429, "retryAfter": 2}]}],
             "time": {"mode": "slow", "secondsPerExport": 30}}
        )
    )  # fmt: skip
    preset = load_preset(path)
    assert preset.time == TimeMode("slow", 30.0)
    assert [rule.route for rule in preset.rules] == ["/users"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_preset(empty) == ScenarioPreset()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"faults": [{"sequence": [{}]}, {"rate": 1}]}', "faults[1]: Invalid fault rule"),
        ('{"fault": []}', "unknown part 'fault'"),
        ('{"time": {"mode": "fast"}}', "time: mode must be one of"),
        ('{"time": {"secondsPerExport": "30"}}', "time: The property 'secondsPerExport'"),
        ('{"exportFailures": [{"code": 1}]}', "exportFailures[0]: The property 'code'"),
        ('{"exportFailures": {"code": "x"}}', "exportFailures: must be a list"),
        ("[1, 2]", "must be an object"),
        ("faults: [", "not JSON or YAML"),
    ],
)
def test_a_file_the_admin_api_would_refuse_stops_the_start(tmp_path: Path, content, says):
    path = tmp_path / "setup.json"
    path.write_text(content)
    with pytest.raises(ScenarioFileError, match=r"^scenarios file .*setup\.json: ") as refused:
        load_preset(path)
    assert says in str(refused.value)
    assert isinstance(refused.value, ConfigError)  # a startup error: one line, exit 1
