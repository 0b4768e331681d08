"""`serve --profile graph`: each Graph error of the exportPersonalData and dataPolicyOperations
routes documented in docs/graph-compatibility.md ("The Graph profile") comes back through the
official Graph SDK with Graph's status, code and message."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from msgraph import GraphServiceClient
from msgraph.generated.models.data_policy_operation import DataPolicyOperation
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from conftest import Service, start_service, token_for
from datapolicy.auth.permissions import EXPORT
from datapolicy.demo import demo_user_id
from datapolicy.testing.graph import graph_client as sdk_client
from graphclient import graph_client

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from msgraph.generated.users.item.export_personal_data.export_personal_data_post_request_body import (  # noqa: E501
        ExportPersonalDataPostRequestBody,
    )

# e2e: the Graph SDK reaches a `serve --profile graph` process over its port
pytestmark = [
    pytest.mark.operation_store,
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="session"),
]
ADA = demo_user_id(0)
INVALID_GUID = "The specified object-id: {} in the request uri is an invalid Guid."


@pytest.fixture(scope="module")
def graph_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("graph-profile")
    config = root / "datapolicy.toml"
    config.write_text('[storage.azure]\nallowed_hosts = ["*.blob.core.windows.net"]\n')
    running = start_service(root / "data", "--demo", "--profile", "graph", "--config", str(config))
    yield running
    running.stop()


@pytest.fixture
async def graph(graph_service: Service) -> AsyncIterator[GraphServiceClient]:
    async with graph_client(graph_service) as client:
        yield client


async def odata_error(awaitable) -> ODataError:
    with pytest.raises(ODataError) as raised:
        await awaitable
    return raised.value


def assert_graph_error(error: ODataError, status: int, code: str, message: str) -> None:
    assert error.response_status_code == status
    assert (error.error.code, error.error.message) == (code, message)
    assert error.error.inner_error.request_id


def export_body(location: str) -> ExportPersonalDataPostRequestBody:
    return ExportPersonalDataPostRequestBody(storage_location=location)


async def test_an_operation_id_that_is_not_a_guid_is_400_bad_request(graph):
    item = graph.data_policy_operations.by_data_policy_operation_id("not-a-guid")
    assert_graph_error(
        await odata_error(item.get()), 400, "BadRequest", INVALID_GUID.format("not-a-guid")
    )


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_an_unknown_operation_is_400_operation_not_found(graph, method):
    """Graph's backend answers 400 OperationNotFound, not 404, on every method by id."""
    item = graph.data_policy_operations.by_data_policy_operation_id(str(uuid.uuid4()))
    call = (
        item.patch(DataPolicyOperation(storage_location="x"))
        if method == "patch"
        else getattr(item, method)()
    )
    assert_graph_error(
        await odata_error(call),
        400,
        "OperationNotFound",
        "Cannot find any operations with the input Id.",
    )


async def test_a_known_operation_is_read_as_usual(graph, graph_service):
    """The profile changes errors only: an existing operation reads as in the default profile."""
    created = await graph.data_policy_operations.post(DataPolicyOperation(user_id=ADA))
    fetched = await graph.data_policy_operations.by_data_policy_operation_id(created.id).get()
    assert fetched.id == created.id


async def test_export_for_a_user_id_that_is_not_a_guid_is_400_invalid_input(graph):
    users = graph.users.by_user_id("alice@contoso.com")
    error = await odata_error(users.export_personal_data.post(export_body("https://x")))
    assert_graph_error(error, 400, "InvalidInput", INVALID_GUID.format("alice@contoso.com"))


@pytest.mark.parametrize(
    ("location", "code", "message"),
    [
        ("", "StorageLocationInvalid", "Storage Location is not valid."),
        (
            "https://account.blob.core.windows.net/container",
            "SharedAccessSignatureTokenInvalid",
            "Storage destination does not include SAS credentials.",
        ),
        (
            "/srv/exports",
            "StorageLocationNotAzureBlob",
            "Storage destination must be an azure blob container.",
        ),
        (
            "s3://bucket/prefix",
            "StorageLocationNotAzureBlob",
            "Storage destination must be an azure blob container.",
        ),
    ],
)
async def test_only_azure_blob_locations_are_accepted(
    graph, graph_service, location, code, message
):
    """A local directory (accepted by default) or an S3 URL is refused as Graph refuses what is
    not an Azure Blob container; like every refused location, naming `storageLocation` as the
    target (docs/security.md), also on the Graph profile's `/me/exportPersonalData`."""
    if location.startswith("/srv"):
        location = str(graph_service.data_dir / "exports")  # permitted in the default profile
    action = graph.users.by_user_id(ADA).export_personal_data
    error = await odata_error(action.post(export_body(location)))
    assert_graph_error(error, 400, code, message)
    assert error.error.target == "storageLocation"
    token = token_for(graph_service.data_dir, EXPORT, subject=ADA)
    with graph_service.client(headers={"Authorization": f"Bearer {token}"}) as http:
        mine = http.post("/me/exportPersonalData", json={"storageLocation": location})
    assert mine.status_code == 400
    assert mine.json()["error"]["code"] == code
    assert mine.json()["error"]["target"] == "storageLocation"


async def test_me_export_is_the_callers_own(graph_service):
    """POST /me/exportPersonalData (the SDK's `.me`, as msgraph's own adapter sends it) exports
    the token's subject: a GUID subject reaches the export checks; another subject is Graph's
    invalid-GUID error; without User.Export.All it is 403."""
    body = export_body(str(graph_service.data_dir / "exports"))
    for subject, status, code in [
        (ADA, 400, "StorageLocationNotAzureBlob"),
        ("tests", 400, "InvalidInput"),
    ]:
        graph = sdk_client(
            graph_service.url, token_for(graph_service.data_dir, EXPORT, subject=subject)
        )
        error = await odata_error(graph.me.export_personal_data.post(body))
        assert (error.response_status_code, error.error.code) == (status, code), error.error.message
    graph = sdk_client(graph_service.url, token_for(graph_service.data_dir))
    error = await odata_error(graph.me.export_personal_data.post(body))
    assert (error.response_status_code, error.error.code) == (403, "Forbidden")


async def test_me_export_by_its_qualified_name_is_the_same(graph_service):
    """`/me/microsoft.graph.exportPersonalData` (an alias in the route table) is answered as
    `/me/exportPersonalData`, under `/v1.0` and `/beta`: the caller's export, then Graph's
    checks; without User.Export.All, 403."""
    body = {"storageLocation": str(graph_service.data_dir / "exports")}
    mine = {"Authorization": f"Bearer {token_for(graph_service.data_dir, EXPORT, subject=ADA)}"}
    bare = {"Authorization": f"Bearer {token_for(graph_service.data_dir)}"}
    async with httpx.AsyncClient(base_url=graph_service.root) as http:
        for root in ("/v1.0", "/beta"):
            for headers, status, code in [
                (mine, 400, "StorageLocationNotAzureBlob"),
                (bare, 403, "Forbidden"),
            ]:
                answers = [
                    await http.post(f"{root}/me/{name}", json=body, headers=headers)
                    for name in ("exportPersonalData", "microsoft.graph.exportPersonalData")
                ]
                for answer in answers:
                    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
