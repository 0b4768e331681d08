"""Fault rules (scenarios/faults.py): what a rule matches, the order of a sequence, and that a
rate is repeatable from its seed. The HTTP side is in tests/web/test_scenarios_api.py."""

from __future__ import annotations

import pytest

from datapolicy.errors import InvalidRequest
from datapolicy.scenarios.faults import FaultInjector, parse_rule


def injector(*rules: dict) -> FaultInjector:
    faults = FaultInjector()
    for rule in rules:
        faults.add(parse_rule(rule))
    return faults


def test_a_sequence_gives_one_fault_per_matching_request_then_is_removed():
    faults = injector({"sequence": [{"status": 429, "retryAfter": 2}, {"status": 500}]})
    first = faults.fault_for("GET", "/dataPolicyOperations")
    second = faults.fault_for("POST", "/users/u/exportPersonalData")
    assert (first.status, first.retry_after, first.error[0]) == (429, 2, "TooManyRequests")
    assert (second.status, second.error[0]) == (500, "generalException")
    assert faults.fault_for("GET", "/dataPolicyOperations") is None
    assert faults.rules() == []


def test_route_templates_methods_and_operation_ids_narrow_a_rule():
    faults = injector(
        {
            "method": "get",
            "route": "/dataPolicyOperations/{id}",
            "operationId": "op-1",
            "fault": {"status": 503},
            "rate": 1,
        }
    )
    assert faults.fault_for("GET", "/dataPolicyOperations/op-2", "op-2") is None
    assert faults.fault_for("PATCH", "/dataPolicyOperations/op-1", "op-1") is None
    assert faults.fault_for("GET", "/dataPolicyOperations") is None
    assert faults.fault_for("GET", "/dataPolicyOperations/op-1/package") is None
    assert faults.fault_for("GET", "/dataPolicyOperations/op-1", "op-1").status == 503
    assert (
        faults.fault_for("GET", "/dataPolicyOperations/op-1", "op-1").status == 503
    )  # rate 1: stays


def test_a_wildcard_segment_matches_any_one_segment():
    faults = injector({"route": "/users/*/exportPersonalData", "sequence": [{"kind": "drop"}]})
    assert faults.fault_for("POST", "/users/u/other") is None
    assert faults.fault_for("POST", "/users/anyone/exportPersonalData").kind == "drop"


def test_a_rate_draws_the_same_faults_from_the_same_seed():
    def draws(seed: int) -> list[bool]:
        faults = injector({"fault": {"status": 500}, "rate": 0.5, "seed": seed})
        return [faults.fault_for("GET", "/users") is not None for _ in range(200)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert 60 < sum(draws(7)) < 140


def test_the_first_rule_that_yields_a_fault_decides():
    faults = injector(
        {"route": "/users", "fault": {"status": 500}, "rate": 0},
        {"sequence": [{"status": 504}]},
    )
    assert faults.fault_for("GET", "/users").status == 504


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({}, "either 'sequence'"),
        ({"fault": {"status": 500}}, "needs a 'rate'"),
        ({"sequence": [{"status": 200}]}, "sequence.0.status"),
        ({"sequence": [{"kind": "explode"}]}, "kind must be one of"),
        ({"route": "users", "sequence": [{}]}, "starts with '/'"),
        ({"sequence": [{}], "colour": "red"}, "colour"),
    ],
)
def test_bad_rules_are_400s_naming_the_problem(rule, message):
    with pytest.raises(InvalidRequest) as raised:
        parse_rule(rule)
    assert message in raised.value.message
