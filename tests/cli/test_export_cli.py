"""`datapolicy export` against a running service: the id, --wait's outcome and exit status."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from commands import against, datapolicy, json_output, one_line_error

from conftest import ProcessService, Service, start_service, wait_for
from datapolicy.demo import DEMO_DIR, demo_user_id, prepare_demo

pytestmark = [pytest.mark.e2e, pytest.mark.operation_store]


@pytest.fixture(scope="module")
def service(service_process: ProcessService) -> ProcessService:
    """The session's service in a process: the CLI reaches it over its port."""
    return service_process


@pytest.fixture(scope="module")
def demo_service(demo_process: ProcessService) -> ProcessService:
    """The session's demo service in a process: the CLI reaches it over its port."""
    return demo_process


@pytest.fixture(scope="module")
def person(demo_service: Service) -> str:
    """A user of the demo shop."""
    with demo_service.client() as http:
        return http.get("/users", params={"$top": "1"}).json()["value"][0]["id"]


def test_wait_ends_complete_with_exit_0_and_says_where_the_package_is(
    demo_service: Service, person: str, tmp_path: Path
):
    destination = demo_service.data_dir / "exports" / tmp_path.name
    result = datapolicy(
        "export", person, "--to", str(destination), "--wait", *against(demo_service)
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"complete: {destination}/")
    package = Path(line.removeprefix("complete: "))
    assert package.is_file()
    # Not a terminal: plain lines for each status, no progress bar's control characters.
    assert result.stderr.splitlines()[-1] == "complete 100.0%"
    assert "\x1b" not in result.stdout + result.stderr
    assert datapolicy("verify", str(package)).returncode == 0


def test_wait_with_json_prints_the_final_operation_only(
    demo_service: Service, person: str, tmp_path: Path
):
    destination = demo_service.data_dir / "exports" / tmp_path.name
    args = ("export", person, "--to", str(destination), "--wait", "--json")
    operation = json_output(datapolicy(*args, *against(demo_service)))
    assert operation["status"] == "complete"
    assert operation["userId"] == person
    assert (destination / f"{operation['id']}.zip").is_file()


def test_without_wait_prints_the_new_operations_id(service: Service, user_id: str, tmp_path: Path):
    """On the API-only service the operation stays notStarted, and `ops show` finds it."""
    result = datapolicy(
        "export", user_id, "--to", str(service.data_dir / "exports"), *against(service)
    )
    assert result.returncode == 0, result.stderr
    operation_id = result.stdout.strip()
    shown = json_output(datapolicy("ops", "show", operation_id, "--json", *against(service)))
    assert (shown["userId"], shown["status"]) == (user_id, "notStarted")


def test_a_refused_start_is_one_line_with_the_graph_code(
    demo_service: Service, person: str, tmp_path: Path
):
    result = datapolicy("export", "nobody", "--to", str(tmp_path), *against(demo_service))
    assert result.returncode == 1
    assert one_line_error(result).startswith("Error: 404 Request_ResourceNotFound: ")
    outside = datapolicy("export", person, "--to", "/etc", *against(demo_service))
    assert "Error: 400 " in one_line_error(outside)


def test_wait_times_out_with_exit_5_while_no_worker_runs(
    service: Service, user_id: str, tmp_path: Path
):
    args = ("export", user_id, "--to", str(service.data_dir / "exports"), "--wait")
    result = datapolicy(*args, "--timeout", "0.5", *against(service))
    assert result.returncode == 5
    assert result.stderr.splitlines()[-1] == "timed out: the operation is still notStarted"


def test_wait_exits_4_when_the_operation_is_deleted_meanwhile(service: Service, user_id: str):
    command = ("export", user_id, "--wait", "--to", str(service.data_dir / "exports"))
    waiting = subprocess.Popen(
        [sys.executable, "-m", "datapolicy", *command, *against(service)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with service.client() as http:
            filter_ = {"$filter": f"userId eq '{user_id}'"}
            (started,) = wait_for(
                "the export to start",
                lambda: http.get("/dataPolicyOperations", params=filter_).json()["value"],
                timeout=30,
                logs=lambda: "",
            )
        deleted = datapolicy("ops", "delete", started["id"], *against(service))
        assert deleted.stdout.strip() == f"deleted {started['id']}"
        _, stderr = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 4
    assert stderr.splitlines()[-1] == "cancelled: the operation was deleted"


def test_wait_exits_3_and_names_the_error_when_the_export_fails(tmp_path: Path):
    """A source whose table does not exist: the export fails (one attempt), exit status 3."""
    people = tmp_path / "people.sqlite3"
    with sqlite3.connect(people) as connection:
        connection.execute("CREATE TABLE users (id TEXT PRIMARY KEY)")
        connection.execute("INSERT INTO users VALUES ('ada')")
    config = tmp_path / "datapolicy.toml"
    config.write_text(
        f'[directory]\nurl = "sqlite:///{people}"\ntable = "users"\n\n'
        f'[[sources.sql]]\nname = "shop"\nurl = "sqlite:///{people}"\n'
        '[[sources.sql.tables]]\ntable = "orders"\nuser_key = "customer"\n\n'
        "[engine]\nmax_attempts = 1\n"
    )
    service = start_service(tmp_path / "data", "--config", str(config))
    try:
        started = time.monotonic()
        result = datapolicy(
            "export",
            "ada",
            "--to",
            str(service.data_dir / "exports"),
            "--wait",
            *against(service),
        )
        assert time.monotonic() - started < 60
    finally:
        service.stop()
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines()[-1].startswith("failed: sourceError: ")
    assert "orders" in result.stderr.splitlines()[-1]


def test_wait_prints_progress_lines_that_rise_through_a_slowed_export(tmp_path: Path):
    """Not on a terminal, --wait prints a line as the percentage moves (at most one a second),
    with the table being written, the rows per second, the rate and the time left: over an
    8-second slowed export, on the engine's default 2-second heartbeat, at least five distinct
    percentages between 0 and 100, rising. (Progress recorded only at each lease renewal gave
    four at most: 0% for a short export until done.)"""
    setup = tmp_path / "setup.yaml"
    setup.write_text("time: {mode: slow, secondsPerExport: 8}\n")
    person = demo_user_id(0)
    prepare_demo(tmp_path / "data")  # then given 20,000 orders: 20 batches of rows to spread
    with closing(sqlite3.connect(tmp_path / "data" / DEMO_DIR / "shop.sqlite3")) as shop, shop:
        shop.executemany(
            "INSERT INTO orders (customer_id, placed_at, total_cents) VALUES (?, ?, ?)",
            ((person, "2026-01-01T00:00:00+00:00", cents) for cents in range(20_000)),
        )
    slowed = start_service(tmp_path / "data", "--demo", "--scenarios-file", str(setup))
    try:
        destination = slowed.data_dir / "exports"
        result = datapolicy("export", person, "--to", str(destination), "--wait", *against(slowed))
    finally:
        slowed.stop()
    assert result.returncode == 0, result.stderr
    running = [line for line in result.stderr.splitlines() if line.startswith("running ")]
    percents = [float(line.split()[1].removesuffix("%")) for line in running]
    assert percents == sorted(percents)
    moving = sorted({p for p in percents if 0 < p < 100})
    assert len(moving) >= 5, result.stderr
    # The rate needs two rises: every line after the first that moved gives it and the time left.
    rated = [line for line, percent in zip(running, percents, strict=True) if percent > 0][1:]
    assert rated, result.stderr
    assert all("%/s, ETA 0:00:" in line for line in rated), result.stderr
    # The 20,000 orders take most of the time: their lines name the table and its rows/s,
    # counted from the records the service recorded as written (`progressDetail`).
    orders = [line for line in rated if line.split()[2] == "shop/orders"]
    assert len(orders) >= 3, result.stderr
    assert all(re.search(r" \(\d[\d,]* rows/s, [\d.]+%/s, ETA", line) for line in orders), (
        result.stderr
    )


@pytest.fixture(scope="module")
def scenario_service(tmp_path_factory: pytest.TempPathFactory):
    """`serve --demo --scenarios`: fault rules make the API answer 429 or 503 on cue."""
    running = start_service(tmp_path_factory.mktemp("export-retries"), "--demo", "--scenarios")
    yield running
    running.stop()


def _answered(service: Service, path: str) -> list[int]:
    """The statuses the service gave to the requests on `path`, in order."""
    requests = json_output(
        datapolicy("scenarios", "requests", *against(service), "--json", "--path-prefix", path)
    )
    return [entry["status"] for entry in requests]


def test_the_start_waits_out_a_rate_limit_and_an_outage(scenario_service: Service):
    """The request that starts the export, answered 429 then 503 with a Retry-After, is sent
    again after each wait and the export starts once (it exited 1 on the first 429)."""
    where = against(scenario_service)
    person = demo_user_id(1)
    action = f"/users/{person}/exportPersonalData"
    assert datapolicy("scenarios", "reset", *where).returncode == 0
    for status in ("429", "503"):
        datapolicy(
            "scenarios", "fault", *where, "--route", "/users/{id}/exportPersonalData",
            "--status", status, "--retry-after", "1",
        )  # fmt: skip
    location = str(scenario_service.data_dir / "exports" / "retried")
    result = datapolicy("export", person, "--to", location, *where)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[0-9a-f-]{36}\n", result.stdout)
    assert _answered(scenario_service, "/v1.0" + action) == [429, 503, 202]
    with scenario_service.client() as http:
        mine = {"$filter": f"userId eq '{person}'"}
        assert len(http.get("/dataPolicyOperations", params=mine).json()["value"]) == 1


def test_the_start_gives_up_after_five_repeats(scenario_service: Service):
    """Six answers in a row that say come back later: five repeats, then the error, exit 1."""
    where = against(scenario_service)
    person = demo_user_id(2)
    assert datapolicy("scenarios", "reset", *where).returncode == 0
    datapolicy(
        "scenarios", "fault", *where, "--route", "/users/{id}/exportPersonalData",
        "--status", "503", "--retry-after", "0", "--times", "6",
    )  # fmt: skip
    result = datapolicy("export", person, "--to", str(scenario_service.data_dir / "x"), *where)
    assert one_line_error(result).startswith("Error: 503 ")
    assert _answered(scenario_service, f"/v1.0/users/{person}/exportPersonalData") == [503] * 6


def test_polling_waits_out_a_rate_limit(scenario_service: Service):
    """--wait's polls, answered 429 with a Retry-After, go on after the wait to the end."""
    where = against(scenario_service)
    assert datapolicy("scenarios", "reset", *where).returncode == 0
    datapolicy(
        "scenarios", "fault", *where, "--route", "/dataPolicyOperations/{id}",
        "--method", "GET", "--status", "429", "--retry-after", "0", "--times", "3",
    )  # fmt: skip
    location = str(scenario_service.data_dir / "exports" / "polled")
    result = datapolicy("export", demo_user_id(3), "--to", location, "--wait", *where)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("complete: ")
    logged = _answered(scenario_service, "/v1.0/dataPolicyOperations/")
    assert logged.count(429) == 3, logged
