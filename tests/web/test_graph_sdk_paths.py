"""Graph's SDKs against the paths of issue 16, changed only in their base URL and token
(tests/graphclient.py): the beta SDK's request builders pointed at `/beta`; the namespace-
qualified action path that older SDKs and Microsoft's OpenAPI description build, sent through
the current SDK's own request adapter (it now builds the unqualified one); Graph's 400 for an
unknown segment, and the `target` of a refused storage location, as the SDKs parse them."""

from __future__ import annotations

import uuid
import warnings

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import HeadersInspectionHandlerOption
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_beta.generated.models.data_policy_operation import DataPolicyOperation
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError as BetaODataError

from conftest import ProcessService
from datapolicy.demo import demo_user_id
from graphclient import beta_graph_client, graph_client

with warnings.catch_warnings():  # see tests/web/test_graph_sdk.py
    warnings.simplefilter("ignore", DeprecationWarning)
    from msgraph.generated.users.item.export_personal_data.export_personal_data_post_request_body import (  # noqa: E501
        ExportPersonalDataPostRequestBody,
    )
    from msgraph_beta.generated.data_policy_operations.data_policy_operations_request_builder import (  # noqa: E501
        DataPolicyOperationsRequestBuilder,
    )
    from msgraph_beta.generated.users.item.export_personal_data.export_personal_data_post_request_body import (  # noqa: E501
        ExportPersonalDataPostRequestBody as BetaExportBody,
    )

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ADA = demo_user_id(0)
ListQuery = DataPolicyOperationsRequestBuilder.DataPolicyOperationsRequestBuilderGetQueryParameters


@pytest.fixture(scope="module")
def service(demo_process: ProcessService) -> ProcessService:
    """The demo in a process: a directory to export from, reached over its port."""
    return demo_process


def location_of(service: ProcessService) -> str:
    return f"{service.data_dir}/exports/{uuid.uuid4().hex}"


async def test_the_qualified_export_action_through_the_sdks_request_adapter(service):
    """The SDK's request for exportPersonalData, its URL template qualified as older SDKs wrote
    it, sent by the SDK's own adapter: 202 and the operation's Location, which the SDK reads."""
    async with graph_client(service) as graph:
        builder = graph.users.by_user_id(ADA).export_personal_data
        request = builder.to_post_request_information(
            ExportPersonalDataPostRequestBody(storage_location=location_of(service))
        )
        request.url_template = request.url_template.replace(
            "/exportPersonalData", "/microsoft.graph.exportPersonalData"
        )
        inspect = HeadersInspectionHandlerOption(inspect_response_headers=True)
        request.add_request_options([inspect])
        await graph.request_adapter.send_no_response_content_async(request, {"XXX": ODataError})
        assert request.url == f"{service.url}/users/{ADA}/microsoft.graph.exportPersonalData"
        location = next(iter(inspect.response_headers.get("location")))
        assert location.startswith(f"{service.url}/dataPolicyOperations/")
        operation_id = location.rsplit("/", 1)[1]
        operation = await graph.data_policy_operations.by_data_policy_operation_id(
            operation_id
        ).get()
        assert operation.user_id == ADA


async def test_a_refused_storage_location_names_its_target_to_the_sdk(service):
    async with graph_client(service) as graph:
        with pytest.raises(ODataError) as raised:
            await graph.users.by_user_id(ADA).export_personal_data.post(
                ExportPersonalDataPostRequestBody(storage_location="/etc")
            )
    assert raised.value.response_status_code == 400
    assert raised.value.error.code == "StorageLocationInvalid"
    assert raised.value.error.target == "storageLocation"


async def test_the_beta_sdk_creates_reads_lists_and_counts_under_beta(service):
    async with beta_graph_client(service) as beta:
        created = await beta.data_policy_operations.post(DataPolicyOperation(user_id=ADA))
        assert created is not None
        assert created.additional_data["@odata.context"] == (
            f"{service.root}/beta/$metadata#dataPolicyOperations/$entity"
        )
        item = beta.data_policy_operations.by_data_policy_operation_id(created.id)
        fetched = await item.get()
        assert (fetched.id, fetched.user_id) == (created.id, ADA)
        page = await beta.data_policy_operations.get(
            RequestConfiguration(
                query_parameters=ListQuery(filter=f"userId eq '{ADA}'", top=1, count=True)
            )
        )
        assert page.odata_count >= 1
        assert page.odata_next_link is None or page.odata_next_link.startswith(
            f"{service.root}/beta/dataPolicyOperations?"
        )
        assert await beta.data_policy_operations.count.get() >= 1


async def test_the_beta_sdks_export_action_answers_under_beta(service):
    async with beta_graph_client(service) as beta:
        inspect = HeadersInspectionHandlerOption(inspect_response_headers=True)
        accepted = await beta.users.by_user_id(ADA).export_personal_data.post(
            BetaExportBody(storage_location=location_of(service)),
            request_configuration=RequestConfiguration(options=[inspect]),
        )
        assert accepted is None  # 202 with no body
        location = next(iter(inspect.response_headers.get("location")))
        assert location.startswith(f"{service.root}/beta/dataPolicyOperations/")
        user = await beta.users.by_user_id(ADA).get()
        assert user.id == ADA


async def test_an_unknown_segment_is_graphs_400_to_the_beta_sdk(service):
    """A request builder for what the service does not have (a user's manager): Graph's 400
    naming the segment, parsed by the SDK into its error."""
    async with beta_graph_client(service) as beta:
        with pytest.raises(BetaODataError) as raised:
            await beta.users.by_user_id(ADA).manager.get()
    assert raised.value.response_status_code == 400
    assert raised.value.error.code == "BadRequest"
    assert raised.value.error.message == "Resource not found for the segment 'manager'."
