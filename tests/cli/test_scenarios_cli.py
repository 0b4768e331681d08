"""`datapolicy scenarios`: the scenario controls from the command line, against a real
`serve --demo --scenarios`, with a token minted from its data directory. One server, one
walk through the commands, to keep the file fast (each command is a process)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from commands import against, datapolicy, json_output, one_line_error

from conftest import TEST_STORE, Service, start_service
from datapolicy.demo import demo_user_id

pytestmark = pytest.mark.operation_store  # starts services on the test store


@pytest.fixture(scope="module")
def scenario_service(tmp_path_factory: pytest.TempPathFactory):
    running = start_service(tmp_path_factory.mktemp("scenarios-cli"), "--demo", "--scenarios")
    yield running
    running.stop()


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_the_scenario_commands_steer_the_service(scenario_service: Service):
    """fault, time, advance, fail-export, requests, snapshot, reset and restore each do what the
    admin API does; an error is one line."""
    where = against(scenario_service)
    with scenario_service.client() as http:
        rule = json_output(
            datapolicy(
                "scenarios",
                "fault",
                *where,
                "--status",
                "429",
                "--retry-after",
                "3",
                "--route",
                "/users",
                "--times",
                "2",
            )
        )
        assert [f["retryAfter"] for f in rule["sequence"]] == [3, 3]
        assert [http.get("/users").status_code for _ in range(3)] == [429, 429, 200]
        logged = json_output(
            datapolicy("scenarios", "requests", *where, "--json", "--path-prefix", "/v1.0/users")
        )
        assert [entry["status"] for entry in logged] == [429, 429, 200]

        assert json_output(datapolicy("scenarios", "time", "step", *where))["mode"] == "step"
        location = str(scenario_service.data_dir / "exports" / uuid.uuid4().hex)
        started = http.post(
            f"/users/{demo_user_id(0)}/exportPersonalData", json={"storageLocation": location}
        )
        operation_id = started.headers["location"].rsplit("/", 1)[-1]
        for state in ("running", "complete"):
            advanced = datapolicy("scenarios", "advance", operation_id, *where)
            assert advanced.stdout.strip() == state, advanced.stderr
        assert "409" in one_line_error(datapolicy("scenarios", "advance", operation_id, *where))

        snapshots = TEST_STORE == "sqlite"  # snapshots are of the embedded SQLite store
        if snapshots:
            assert datapolicy("scenarios", "snapshot", "one", *where).returncode == 0
        assert datapolicy("scenarios", "reset", *where).stdout.strip() == (
            "reset: 1 operations deleted"
        )
        assert http.get(f"/dataPolicyOperations/{operation_id}").status_code == 404
        if snapshots:
            assert datapolicy("scenarios", "restore", "one", *where).returncode == 0
            assert http.get(f"/dataPolicyOperations/{operation_id}").json()["status"] == "complete"

        assert datapolicy("scenarios", "fail-export", *where, "--code", "nope").returncode == 0
        failures = httpx.get(
            f"{scenario_service.url}/admin/datapolicy/scenarios/exportFailures",
            headers=scenario_service.headers,
        ).json()["value"]
        assert [f["code"] for f in failures] == ["nope"]
