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
            saved = datapolicy("scenarios", "snapshot", "one", *where)
            assert saved.stdout.strip() == "snapshot 'one' saved", saved.stderr
        assert datapolicy("scenarios", "reset", *where).stdout.strip() == (
            "reset: 1 operations deleted"
        )
        assert http.get(f"/dataPolicyOperations/{operation_id}").status_code == 404
        if snapshots:
            restored = datapolicy("scenarios", "restore", "one", *where)
            assert restored.stdout.strip() == "snapshot 'one' restored", restored.stderr
            assert http.get(f"/dataPolicyOperations/{operation_id}").json()["status"] == "complete"

        queued = datapolicy("scenarios", "fail-export", *where, "--code", "nope")
        assert queued.stdout.strip() == "the next export will fail with nope", queued.stderr
        failures = httpx.get(
            f"{scenario_service.url}/admin/datapolicy/scenarios/exportFailures",
            headers=scenario_service.headers,
        ).json()["value"]
        assert [f["code"] for f in failures] == ["nope"]

        # `show`: everything at once, for people and (--json) as a scenarios file.
        datapolicy("scenarios", "time", "slow", "--seconds", "30", *where)
        datapolicy("scenarios", "fault", *where, "--route", "/users", "--status", "503")
        shown = datapolicy("scenarios", "show", *where)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0] == "time: slow: each export lasts at least 30 s"
        assert "fault rules: 1" in lines
        assert any("/users" in line and "503" in line for line in lines)
        assert "queued export failures: 1" in lines
        assert any(line.startswith("snapshots: ") for line in lines)
        state = json_output(datapolicy("scenarios", "show", "--json", *where))
        assert state["time"]["secondsPerExport"] == 30
        assert [rule["route"] for rule in state["faults"]] == ["/users"]
        cleared = datapolicy("scenarios", "clear-faults", *where)
        assert cleared.stdout.strip() == "fault rules cleared", cleared.stderr


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_scenarios_file_that_cannot_be_used_stops_serve_in_one_line(tmp_path):
    bad = tmp_path / "setup.json"
    bad.write_text('{"faults": [{"rate": 2, "fault": {}}]}')
    refused = datapolicy(
        "serve", "--data-dir", str(tmp_path / "data"), "--port", "0",
        "--scenarios-file", str(bad),
    )  # fmt: skip
    assert "faults[0]: Invalid fault rule" in one_line_error(refused)
    assert refused.returncode == 1
    both = datapolicy("serve", "--no-scenarios", "--scenarios-file", str(bad))
    assert both.returncode == 2
    assert "--scenarios-file sets up the scenario controls" in both.stderr
