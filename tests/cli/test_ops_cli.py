"""`datapolicy ops` against a running service: list with OData options, show, cancel, delete."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from commands import against, datapolicy, json_output, one_line_error

from conftest import ProcessService, Service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service(service_process: ProcessService) -> ProcessService:
    """The session's service in a process: the CLI reaches it over its port."""
    return service_process


@pytest.fixture(scope="module")
def demo_service(demo_process: ProcessService) -> ProcessService:
    """The session's demo service in a process: the CLI reaches it over its port."""
    return demo_process


def _start(client: httpx.Client, user_id: str, count: int) -> list[str]:
    """`count` notStarted operations for the user (the session's service runs no exports)."""
    ids = []
    for _ in range(count):
        response = client.post("/dataPolicyOperations", json={"userId": user_id})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def test_list_passes_filter_orderby_and_top_and_follows_next_links_with_all(
    service: Service, client: httpx.Client, user_id: str
):
    ids = _start(client, user_id, 3)
    mine = ("--filter", f"userId eq '{user_id}'", "--orderby", "submittedDateTime desc")

    def listed(*options: str) -> list[str]:
        result = datapolicy("ops", "list", *mine, *options, "--json", *against(service))
        return [operation["id"] for operation in json_output(result)]

    assert listed() == ids[::-1]
    assert listed("--top", "2") == ids[:0:-1]
    assert listed("--top", "2", "--all") == ids[::-1]
    table = datapolicy("ops", "list", *mine, *against(service))
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if user_id in line]
    assert len(rows) == 3
    assert all("notStarted" in row for row in rows)
    assert "status" in table.stdout.splitlines()[1]


def test_show_prints_every_property(service: Service, client: httpx.Client, user_id: str):
    (operation_id,) = _start(client, user_id, 1)
    shown = json_output(datapolicy("ops", "show", operation_id, "--json", *against(service)))
    served = client.get(f"/dataPolicyOperations/{operation_id}").json()
    assert shown == {key: value for key, value in served.items() if not key.startswith("@")}
    table = datapolicy("ops", "show", operation_id, *against(service))
    assert any("storageLocation" in line for line in table.stdout.splitlines())


def test_cancel_removes_an_unfinished_operation(
    service: Service, client: httpx.Client, user_id: str
):
    (operation_id,) = _start(client, user_id, 1)
    result = datapolicy("ops", "cancel", operation_id, *against(service))
    assert (result.returncode, result.stdout.strip()) == (0, f"cancelled {operation_id}")
    assert client.get(f"/dataPolicyOperations/{operation_id}").status_code == 404
    again = datapolicy("ops", "cancel", operation_id, *against(service))
    assert one_line_error(again) == (
        f"Error: 404 ResourceNotFound: The dataPolicyOperation '{operation_id}' does not exist."
    )


def test_cancel_refuses_a_complete_operation_which_delete_removes_with_its_package(
    demo_service: Service, tmp_path: Path
):
    with demo_service.client() as http:
        person = http.get("/users", params={"$top": "1"}).json()["value"][0]["id"]
    destination = demo_service.data_dir / "exports" / tmp_path.name
    args = ("export", person, "--to", str(destination), "--wait", "--json")
    operation = json_output(datapolicy(*args, *against(demo_service)))
    refused = datapolicy("ops", "cancel", operation["id"], *against(demo_service))
    assert one_line_error(refused) == (
        f"Error: operation {operation['id']} is already complete; "
        "`datapolicy ops delete` removes it (and its package)"
    )
    assert (destination / f"{operation['id']}.zip").is_file()
    deleted = datapolicy("ops", "delete", operation["id"], *against(demo_service))
    assert deleted.stdout.strip() == f"deleted {operation['id']}"
    with demo_service.client() as http:
        assert http.get(f"/dataPolicyOperations/{operation['id']}").status_code == 404


def test_errors_are_one_line_with_status_and_graph_code(service: Service, tmp_path: Path):
    bad_filter = datapolicy("ops", "list", "--filter", "nonsense eq 1", *against(service))
    assert one_line_error(bad_filter).startswith("Error: 400 BadRequest: ")
    no_token = datapolicy("ops", "list", "--url", service.url, "--token", "not-a-token")
    assert one_line_error(no_token).startswith("Error: 401 InvalidAuthenticationToken: ")
    no_key = datapolicy("ops", "list", "--url", service.url, "--data-dir", str(tmp_path))
    assert one_line_error(no_key).startswith("Error: no token: give --token or DATAPOLICY_TOKEN")
    unreachable = datapolicy("ops", "list", *against(service), "--url", "http://127.0.0.1:9/v1.0")
    assert one_line_error(unreachable).startswith("Error: cannot reach http://127.0.0.1:9/v1.0")


def test_the_url_and_token_come_from_the_environment(service: Service, user_id: str):
    env = {"DATAPOLICY_URL": service.url, "DATAPOLICY_TOKEN": service.token}
    result = datapolicy("ops", "list", "--filter", f"userId eq '{user_id}'", "--json", env=env)
    assert json_output(result) == []
