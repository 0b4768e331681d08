"""The official Microsoft Graph Python SDK against scenario controls, through
`datapolicy.testing`'s `DatapolicyServer` (what the `datapolicy_server` fixture yields; one
server for the module here, reset before each test, to keep the file fast). The fixture itself
is exercised by tests/testing/test_readme_example.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import HeadersInspectionHandlerOption
from msgraph.generated.models.data_policy_operation_status import DataPolicyOperationStatus
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.export_personal_data.export_personal_data_post_request_body import (  # noqa: E501
    ExportPersonalDataPostRequestBody,
)

from datapolicy.demo import demo_user_id
from datapolicy.testing import DatapolicyServer

# e2e: the testing plugin's `serve --scenarios` process, reached by the Graph SDK
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
Status = DataPolicyOperationStatus


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatapolicyServer]:
    server = DatapolicyServer.start(tmp_path_factory.mktemp("sdk-scenarios") / "data", "--demo")
    yield server
    server.stop()


@pytest.fixture
def server(module_server: DatapolicyServer) -> DatapolicyServer:
    module_server.scenarios.reset()
    return module_server


async def start_export(server: DatapolicyServer) -> str:
    headers = HeadersInspectionHandlerOption(inspect_response_headers=True)
    await server.graph_client.users.by_user_id(demo_user_id(0)).export_personal_data.post(
        ExportPersonalDataPostRequestBody(storage_location=str(Path(server.data_dir, "exports"))),
        request_configuration=RequestConfiguration(options=[headers]),
    )
    return next(iter(headers.response_headers.get("location"))).rsplit("/", 1)[-1]


async def test_the_sdk_retries_a_429_after_the_retry_after_it_was_given(server):
    """The SDK's retry handler waits the injected Retry-After (2 s) and sends Retry-Attempt; the
    call succeeds and the log shows both requests that far apart."""
    server.scenarios.fault({"status": 429, "retryAfter": 2}, route="/dataPolicyOperations")
    page = await server.graph_client.data_policy_operations.get()
    assert page.value == []
    first, retry = server.scenarios.requests(path_prefix="/v1.0/dataPolicyOperations")
    assert (first["status"], retry["status"]) == (429, 200)
    assert "retry-attempt" not in first["headers"]
    assert retry["headers"]["retry-attempt"] == "1"
    waited = datetime.fromisoformat(retry["time"]) - datetime.fromisoformat(first["time"])
    assert waited.total_seconds() >= 2


async def test_a_stepped_export_is_seen_in_each_state_one_poll_at_a_time(server):
    """With step on poll, the SDK's successive GETs see notStarted, running, complete."""
    server.scenarios.step(on_poll=True)
    operation_id = await start_export(server)
    operation = server.graph_client.data_policy_operations.by_data_policy_operation_id(operation_id)
    seen = [(await operation.get()).status for _ in range(3)]
    assert seen == [Status.NotStarted, Status.Running, Status.Complete]
    assert (await operation.get()).progress == 100


@pytest.mark.parametrize(("status", "code"), [(500, "chosenFailure"), (400, "InvalidInput")])
async def test_an_injected_error_is_an_odata_error_with_the_chosen_status_and_code(
    server, status, code
):
    server.scenarios.fault({"status": status, "code": code, "message": "Injected."}, method="GET")
    with pytest.raises(ODataError) as raised:
        await server.graph_client.data_policy_operations.get()
    assert raised.value.response_status_code == status
    assert raised.value.error.code == code
    assert raised.value.error.message == "Injected."
    assert raised.value.error.inner_error.request_id


async def test_a_forced_export_failure_reads_as_failed_with_the_chosen_error(server):
    server.scenarios.fail_next_export("quotaExceeded", "No room left.")
    operation_id = await start_export(server)
    item = server.graph_client.data_policy_operations.by_data_policy_operation_id(operation_id)
    deadline = time.monotonic() + 30
    while (operation := await item.get()).status != Status.Failed:
        assert time.monotonic() < deadline, operation
        await asyncio.sleep(0.1)
    assert operation.additional_data["error"] == {
        "code": "quotaExceeded",
        "message": "No room left.",
    }


async def test_a_dropped_connection_reaches_the_sdk_caller_as_a_transport_error(server):
    server.scenarios.fault({"kind": "drop"}, route="/dataPolicyOperations")
    with pytest.raises(httpx.RemoteProtocolError):
        await server.graph_client.data_policy_operations.get()
    assert (await server.graph_client.data_policy_operations.get()).value == []
