"""The scenario controls of `datapolicy serve --scenarios` over HTTP: the loud marks, the admin
API's permission, injected faults (statuses, latency, timeouts, dropped connections), the
request log, time control of exports (step, step on poll, slow motion), forced export failures,
reset, snapshot and restore. One server with the demo shop for the module; every test starts
from a reset."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest

from conftest import Service, start_app, start_service, token_for, write_config
from datapolicy.auth.permissions import EXPORT, READ_USERS, SCENARIOS
from datapolicy.demo import demo_user_id
from datapolicy.testing import ScenarioError, Scenarios

pytestmark = pytest.mark.operation_store  # starts services on the test store

ADA = demo_user_id(0)
ADMIN = "/admin/datapolicy/scenarios"


@pytest.fixture(scope="module")
def scenario_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start_service(tmp_path_factory.mktemp("scenarios"), "--demo", "--scenarios")
    yield running
    running.stop()


@pytest.fixture
def scenarios(scenario_service: Service) -> Iterator[Scenarios]:
    controls = Scenarios(scenario_service.url, scenario_service.token)
    controls.reset()
    yield controls
    controls.close()


@pytest.fixture
def http(scenario_service: Service) -> Iterator[httpx.Client]:
    with scenario_service.client() as client:
        yield client


def start_export(service: Service, http: httpx.Client) -> str:
    location = str(service.data_dir / "exports" / uuid.uuid4().hex)
    answer = http.post(f"/users/{ADA}/exportPersonalData", json={"storageLocation": location})
    assert answer.status_code == 202, answer.text
    return answer.headers["location"].rsplit("/", 1)[-1]


def status_of(http: httpx.Client, operation_id: str) -> str:
    return http.get(f"/dataPolicyOperations/{operation_id}").json()["status"]


# --- off by default, loud when on ----------------------------------------------------------------


def test_scenarios_are_off_by_default(service: Service):
    """Without --scenarios the admin API does not exist (Graph's unknown segment, naming
    `admin`, even with the permission) and responses carry no scenario mark."""
    token = token_for(service.data_dir, SCENARIOS)
    with service.client(headers={"Authorization": f"Bearer {token}"}) as http:
        answer = http.get(ADMIN)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "Resource not found for the segment 'admin'."
    assert "datapolicy-scenarios" not in answer.headers


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_every_response_is_marked_and_the_start_warns(scenario_service: Service, scenarios):
    """With --scenarios every response, errors and probes included, says so in a header, and the
    log has a WARNING line at start."""
    root = scenario_service.url.removesuffix("/v1.0")
    for url in (f"{root}/healthz", f"{scenario_service.url}/users", f"{root}/nothing"):
        assert httpx.get(url).headers["datapolicy-scenarios"] == "on"
    log = scenario_service.log.read_text()
    assert "WARNING" in log
    assert "SCENARIO CONTROLS ARE ON" in log


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_the_admin_api_needs_its_own_permission(scenario_service: Service, scenarios):
    """A token with the Graph permissions but not DataPolicy.Scenarios.ReadWrite.All is refused
    with 403 naming the permission."""
    token = token_for(scenario_service.data_dir, EXPORT, READ_USERS)
    answer = httpx.post(
        f"{scenario_service.url}{ADMIN}/reset", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 403
    assert SCENARIOS in answer.json()["error"]["message"]


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_sequence_of_errors_comes_back_in_order_then_normal_answers(scenarios, http):
    """A 429 with the chosen Retry-After, then a 503 with a chosen code and message, each a Graph
    error body with request ids; then the route answers normally again."""
    scenarios.fault(
        {"status": 429, "retryAfter": 7},
        {"status": 503, "code": "chosenCode", "message": "Chosen."},
        route="/dataPolicyOperations",
        method="GET",
    )
    throttled = http.get("/dataPolicyOperations")
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "7"
    error = throttled.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["innerError"]["request-id"] == throttled.headers["request-id"]
    unavailable = http.get("/dataPolicyOperations")
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["code"] == "chosenCode"
    assert unavailable.json()["error"]["message"] == "Chosen."
    assert http.post("/dataPolicyOperations", json={"userId": ADA}).status_code == 201
    assert http.get("/dataPolicyOperations").status_code == 200


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_dropped_connection_sends_no_response_and_the_server_goes_on(scenarios, http):
    """`drop` closes the connection before any answer: the client sees the server disconnect;
    the next request is answered."""
    scenarios.fault({"kind": "drop"}, route="/users")
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        http.get("/users")
    assert http.get("/users").status_code == 200
    (logged,) = scenarios.requests(path_prefix="/v1.0/users")[:1]
    assert (logged["fault"], logged["status"]) == ("drop", None)


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_latency_delays_and_a_timeout_outlasts_the_client(scenarios, scenario_service, http):
    """`latency` answers normally after the delay; `timeout` answers 504 only after its
    seconds, so a client with a shorter timeout gives up."""
    scenarios.fault({"kind": "latency", "seconds": 0.5}, {"kind": "timeout", "seconds": 0.5})
    began = time.monotonic()
    assert http.get("/users").status_code == 200
    assert time.monotonic() - began >= 0.5
    began = time.monotonic()
    answer = http.get("/users")
    assert (answer.status_code, answer.json()["error"]["code"]) == (504, "gatewayTimeout")
    assert time.monotonic() - began >= 0.5
    scenarios.fault({"kind": "timeout", "seconds": 3})
    with (
        scenario_service.client(timeout=0.5) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.get("/users")


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_fault_can_target_one_operation(scenarios, http):
    """With operationId, reads of that operation fail and reads of another do not."""
    one = http.post("/dataPolicyOperations", json={"userId": ADA}).json()["id"]
    other = http.post("/dataPolicyOperations", json={"userId": ADA}).json()["id"]
    scenarios.fault({"status": 500}, operation_id=one, rate=1)
    assert http.get(f"/dataPolicyOperations/{other}").status_code == 200
    assert http.get(f"/dataPolicyOperations/{one}").status_code == 500
    assert http.get(f"/dataPolicyOperations/{one}").status_code == 500


# --- the request log ------------------------------------------------------------------------------


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_the_request_log_records_what_clients_sent(scenarios, scenario_service, http):
    """Method, path, query, headers with the token redacted, body size and status, oldest
    first; filtered by method, path prefix and sequence; the admin API is not logged."""
    http.get("/users", params={"$top": "1"}, headers={"client-request-id": "abc"})
    http.post("/dataPolicyOperations", json={"userId": ADA})
    logged = scenarios.requests()
    assert [(r["method"], r["path"], r["status"]) for r in logged] == [
        ("GET", "/v1.0/users", 200),
        ("POST", "/v1.0/dataPolicyOperations", 201),
    ]
    first, second = logged
    assert unquote(first["query"]) == "$top=1"
    assert first["headers"]["client-request-id"] == "abc"
    assert first["headers"]["authorization"] == "[redacted]"
    assert scenario_service.token not in str(logged)
    assert second["bodySize"] == len(f'{{"userId":"{ADA}"}}')
    assert scenarios.requests(method="post") == [second]
    assert scenarios.requests(path_prefix="/v1.0/users") == [first]
    assert scenarios.requests(since=first["sequence"]) == [second]


# --- time control and forced failures -------------------------------------------------------------


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_stepped_export_moves_one_state_per_advance(scenarios, scenario_service, http):
    """In step mode an export stays notStarted until advanced, then running until advanced
    again, then it completes; a third advance is a 409."""
    scenarios.step()
    operation_id = start_export(scenario_service, http)
    time.sleep(0.5)  # longer than a worker's poll: it would have claimed it by now
    assert status_of(http, operation_id) == "notStarted"
    assert scenarios.advance(operation_id) == "running"
    assert status_of(http, operation_id) == "running"
    time.sleep(0.3)
    assert status_of(http, operation_id) == "running"
    assert scenarios.advance(operation_id) == "complete"
    assert status_of(http, operation_id) == "complete"
    with pytest.raises(ScenarioError, match="409"):
        scenarios.advance(operation_id)


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_stepped_export_on_poll_moves_one_state_per_read(scenarios, scenario_service, http):
    """With stepOnPoll each GET of the operation after the first advances it first."""
    scenarios.step(on_poll=True)
    operation_id = start_export(scenario_service, http)
    seen = [status_of(http, operation_id) for _ in range(4)]
    assert seen == ["notStarted", "running", "complete", "complete"]


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_slow_motion_makes_each_export_last_the_set_time(scenarios, scenario_service, http):
    scenarios.slow(1.5)
    began = time.monotonic()
    operation_id = start_export(scenario_service, http)
    while status_of(http, operation_id) != "complete":
        assert time.monotonic() - began < 20
        time.sleep(0.1)
    assert time.monotonic() - began >= 1.5


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_forced_failure_fails_the_export_with_the_chosen_error(scenarios, scenario_service, http):
    scenarios.fail_next_export("quotaExceeded", "No room left.")
    operation_id = start_export(scenario_service, http)
    deadline = time.monotonic() + 20
    while (operation := http.get(f"/dataPolicyOperations/{operation_id}").json())[
        "status"
    ] != "failed":
        assert time.monotonic() < deadline, operation
        time.sleep(0.1)
    assert operation["error"] == {"code": "quotaExceeded", "message": "No room left."}
    assert scenarios._call("GET", "/exportFailures")["value"] == []  # used up


# --- data -----------------------------------------------------------------------------------------


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_reset_empties_the_store_and_the_exports_directory(scenarios, scenario_service, http):
    made = http.post("/dataPolicyOperations", json={"userId": ADA}).json()["id"]
    (scenario_service.data_dir / "exports" / "left-over.zip").write_bytes(b"zip")
    scenarios.reset()
    assert http.get("/dataPolicyOperations/$count").text == "0"
    assert http.get(f"/dataPolicyOperations/{made}").status_code == 404
    assert list((scenario_service.data_dir / "exports").iterdir()) == []


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_snapshot_restores_what_a_reset_removed(scenarios, scenario_service, http):
    """A snapshot keeps the operations and packages; restore brings them back after a reset and
    removes what came after (on either store); unknown and malformed names are 404 and 400."""
    made = http.post("/dataPolicyOperations", json={"userId": ADA}).json()["id"]
    (scenario_service.data_dir / "exports" / "kept.zip").write_bytes(b"zip")
    scenarios.snapshot("before")
    scenarios.reset()
    later = http.post("/dataPolicyOperations", json={"userId": ADA}).json()["id"]
    scenarios.restore("before")
    assert http.get(f"/dataPolicyOperations/{made}").json()["userId"] == ADA
    assert http.get(f"/dataPolicyOperations/{later}").status_code == 404  # made after it
    assert (scenario_service.data_dir / "exports" / "kept.zip").read_bytes() == b"zip"
    with pytest.raises(ScenarioError, match="404"):
        scenarios.restore("never-taken")
    with pytest.raises(ScenarioError, match="400"):
        scenarios.snapshot(".hidden")


# --- a scenarios file -------------------------------------------------------------------------


def test_a_scenarios_file_sets_up_slow_motion_whose_progress_rises(tmp_path):
    """`serve --scenarios-file` starts with the file's rules and time mode (no request needed),
    and a slowed export's progress, polled while it runs, rises through many values: the
    pacing spreads its work over the set time instead of waiting at the end."""
    setup = tmp_path / "setup.yaml"
    setup.write_text(
        "time: {mode: slow, secondsPerExport: 4}\n"
        "faults: [{route: /users, sequence: [{status: 429, retryAfter: 1}]}]\n"
    )
    config = write_config(
        tmp_path, "[engine]\nheartbeat_seconds = 0.05\nlease_seconds = 1\npoll_seconds = 0.05\n"
    )
    service = start_app(
        tmp_path / "data", "--demo", "--scenarios-file", str(setup), "--config", str(config)
    )
    try:
        with service.client() as http:
            assert http.get("/users").status_code == 429  # the file's rule, used up
            assert http.get("/users").status_code == 200
            operation_id = start_export(service, http)
            seen: list[float] = []
            deadline = time.monotonic() + 60
            while (operation := http.get(f"/dataPolicyOperations/{operation_id}").json())[
                "status"
            ] != "complete":
                assert time.monotonic() < deadline, operation
                if operation["status"] == "running" and operation["progress"] not in seen:
                    seen.append(operation["progress"])
                time.sleep(0.05)
    finally:
        service.stop()
    assert seen == sorted(seen)
    assert len(seen) >= 5, seen
