"""The Graph SDK's batch helper (msgraph-core's `BatchRequestContent`, `BatchRequestItem`,
`BatchRequestContentCollection`, sent by `GraphServiceClient.batch`) against a running
`datapolicy serve`, as a Graph client uses it: request builders' request information put in a
batch, the answer read back by id.

What the SDK itself cannot read is not asserted through it: msgraph-core 1.5's
`BatchResponseItem` drops a JSON body (it reads `body` as base64 bytes; microsoft/kiota-python
#737), with Graph as with datapolicy (docs/graph-compatibility.md, "JSON batching"). Statuses,
headers and base64 bodies it reads.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.models.data_policy_operation import DataPolicyOperation
from msgraph.generated.users.item.export_personal_data.export_personal_data_post_request_body import (  # noqa: E501
    ExportPersonalDataPostRequestBody,
)
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_content_collection import BatchRequestContentCollection
from msgraph_core.requests.batch_request_item import BatchRequestItem
from msgraph_core.requests.batch_response_content import BatchResponseContent
from msgraph_core.requests.batch_response_content_collection import (
    BatchResponseContentCollection,
)

from conftest import ProcessService
from graphclient import graph_client

with warnings.catch_warnings():  # as in test_graph_sdk.py: the builders' import warns once
    warnings.simplefilter("ignore", DeprecationWarning)
    from msgraph.generated.data_policy_operations.count.count_request_builder import (
        CountRequestBuilder,
    )

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def service(service_process: ProcessService) -> ProcessService:
    """The session's service in a process: the SDK reaches it over its port."""
    return service_process


@pytest.fixture
async def graph(service) -> AsyncIterator[GraphServiceClient]:
    async with graph_client(service) as client:
        yield client


async def test_a_batch_of_builders_requests_answers_each_by_id(graph, service, user_id):
    """A create, a `$count` after it, Graph's exportPersonalData and a read of a missing
    operation, in one batch built from the SDK's request builders: each status by id, the
    export's `Location`, and the `$count` text decoded from base64 by the SDK."""
    exports = f"{service.data_dir}/exports"
    count_query = CountRequestBuilder.CountRequestBuilderGetQueryParameters(
        filter=f"userId eq '{user_id}'"
    )
    create = BatchRequestItem(
        graph.data_policy_operations.to_post_request_information(
            DataPolicyOperation(user_id=user_id)
        ),
        id="create",
    )
    count = BatchRequestItem(
        graph.data_policy_operations.count.to_get_request_information(
            RequestConfiguration(query_parameters=count_query)
        ),
        id="count",
        depends_on=[create],
    )
    export = BatchRequestItem(
        graph.users.by_user_id(user_id).export_personal_data.to_post_request_information(
            ExportPersonalDataPostRequestBody(storage_location=exports)
        ),
        id="export",
        depends_on=[count],
    )
    missing = BatchRequestItem(
        graph.data_policy_operations.by_data_policy_operation_id(
            str(uuid.uuid4())
        ).to_get_request_information(),
        id="missing",
    )
    content = BatchRequestContent()
    for item in (create, count, export, missing):
        content.add_request(item.id, item)

    answer = await graph.batch.post(content)

    assert isinstance(answer, BatchResponseContent)
    assert answer.get_response_status_codes() == {
        "create": 201,
        "count": 200,
        "export": 202,
        "missing": 404,
    }
    counted = answer.get_response_stream_by_id("count")
    assert counted is not None
    assert counted.read() == b"1"
    location = answer.get_response_by_id("export").headers["Location"]
    assert location.startswith(f"{service.url}/dataPolicyOperations/")
    started = await graph.data_policy_operations.by_data_policy_operation_id(
        location.rsplit("/", 1)[1]
    ).get()
    assert started is not None
    assert started.user_id == user_id


async def test_the_sdk_splits_more_than_20_requests_into_batches_that_all_run(graph, user_id):
    """`BatchRequestContentCollection` sends 25 creates as two batches (20 and 5): every one is
    a 201, and the user has 25 operations."""
    collection = BatchRequestContentCollection()
    for index in range(25):
        collection.add_batch_request_item(
            BatchRequestItem(
                graph.data_policy_operations.to_post_request_information(
                    DataPolicyOperation(user_id=user_id)
                ),
                id=str(index),
            )
        )
    answers = await graph.batch.post(collection)
    assert isinstance(answers, BatchResponseContentCollection)
    statuses: dict[str, int] = {}
    for batch in answers.get_responses():
        statuses.update(batch.get_response_status_codes())
    assert statuses == {str(index): 201 for index in range(25)}
    count_query = CountRequestBuilder.CountRequestBuilderGetQueryParameters(
        filter=f"userId eq '{user_id}'"
    )
    counted = await graph.data_policy_operations.count.get(
        RequestConfiguration(query_parameters=count_query)
    )
    assert counted == 25
