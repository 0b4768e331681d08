"""The official Microsoft Graph Python SDK (`msgraph-sdk`) against a running `datapolicy serve`.

The SDK is used as a Graph client would use it, changed only in its base URL and its token
(docs/graph-compatibility.md, "Pointing the Graph SDK at datapolicy"): a static bearer token
signed with the service's own key and `adapter.base_url` pointed at the service's API root. One
test also keeps the SDK's own way of deriving the base URL from the httpx client, which ends in
`/` and so sends `/v1.0//...`.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import HeadersInspectionHandlerOption
from msgraph import GraphServiceClient
from msgraph.generated.models.data_policy_operation import DataPolicyOperation
from msgraph.generated.models.data_policy_operation_collection_response import (
    DataPolicyOperationCollectionResponse,
)
from msgraph.generated.models.data_policy_operation_status import DataPolicyOperationStatus
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_core.tasks.page_iterator import PageIterator

from conftest import ProcessService
from graphclient import graph_client

# Importing the request builders imports kiota_abstractions.default_query_parameters, whose class
# body warns (DeprecationWarning) once per process; pytest turns warnings into errors here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from msgraph.generated.data_policy_operations.count.count_request_builder import (
        CountRequestBuilder,
    )
    from msgraph.generated.data_policy_operations.data_policy_operations_request_builder import (
        DataPolicyOperationsRequestBuilder,
    )
    from msgraph.generated.data_policy_operations.item.data_policy_operation_item_request_builder import (  # noqa: E501
        DataPolicyOperationItemRequestBuilder,
    )

# Fixtures are session-loop (pyproject.toml); the tests must share that loop with the SDK client.
# The SDK reaches the service over its port.
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def service(service_process: ProcessService) -> ProcessService:
    """The session's service in a process: the Graph SDK reaches it over its port."""
    return service_process


ListQuery = DataPolicyOperationsRequestBuilder.DataPolicyOperationsRequestBuilderGetQueryParameters
ItemQuery = (
    DataPolicyOperationItemRequestBuilder.DataPolicyOperationItemRequestBuilderGetQueryParameters
)
CountQuery = CountRequestBuilder.CountRequestBuilderGetQueryParameters


def exports(service, name: str | None = None) -> str:
    """A storage location inside the service's permitted exports root."""
    root = f"{service.data_dir}/exports"
    return root if name is None else f"{root}/{name}"


@pytest.fixture
async def graph(service) -> AsyncIterator[GraphServiceClient]:
    """A Graph SDK client whose base URL is the service's API root, without a trailing slash."""
    async with graph_client(service) as client:
        yield client


@pytest.fixture
async def graph_default_base_url(service) -> AsyncIterator[GraphServiceClient]:
    """A Graph SDK client that takes its base URL from the httpx client, as the SDK does by
    default: that URL ends in `/`, and the templates add another."""
    async with graph_client(service, explicit_base_url=False) as client:
        yield client


def list_config(**query: Any) -> RequestConfiguration:
    return RequestConfiguration(query_parameters=ListQuery(**query))


async def create(graph: GraphServiceClient, user_id: str, **fields: Any) -> DataPolicyOperation:
    created = await graph.data_policy_operations.post(
        DataPolicyOperation(user_id=user_id, **fields)
    )
    assert created is not None
    return created


async def odata_error(awaitable: Any) -> ODataError:
    with pytest.raises(ODataError) as raised:
        await awaitable
    return raised.value


# --- create ------------------------------------------------------------------------------------


async def test_create_returns_the_operation_in_its_initial_state(graph, service, user_id):
    """POST through the SDK returns a parsed DataPolicyOperation with a server-assigned id,
    status notStarted, progress 0, a recent submittedDateTime and no completedDateTime."""
    before = datetime.now(UTC)
    created = await create(graph, user_id)
    assert created.id
    uuid.UUID(created.id)  # a GUID string, as Graph's keys are
    assert created.user_id == user_id
    assert created.status == DataPolicyOperationStatus.NotStarted
    assert created.progress == 0
    assert created.completed_date_time is None
    assert created.storage_location == exports(service)  # the default location
    assert created.submitted_date_time is not None
    assert created.submitted_date_time.tzinfo is not None
    assert before - timedelta(seconds=5) <= created.submitted_date_time <= datetime.now(UTC)
    assert created.odata_type == "#microsoft.graph.dataPolicyOperation"
    assert created.additional_data["@odata.etag"]


async def test_create_accepts_a_storage_location(graph, service, user_id):
    """storageLocation is writable on create and comes back as sent."""
    location = exports(service, "created")
    created = await create(graph, user_id, storage_location=location)
    assert created.storage_location == location


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("status", DataPolicyOperationStatus.Running, "status"),
        ("progress", 0.5, "progress"),
        ("completed_date_time", datetime(2024, 1, 1, tzinfo=UTC), "completedDateTime"),
        ("id", "chosen-by-client", "id"),
        ("submitted_date_time", datetime(2024, 1, 1, tzinfo=UTC), "submittedDateTime"),
    ],
)
async def test_create_refuses_non_initial_read_only_values(graph, user_id, field, value, name):
    """Sending a read-only property with a value other than its initial one is an ODataError
    400 naming the property, and nothing is created."""
    error = await odata_error(
        graph.data_policy_operations.post(DataPolicyOperation(user_id=user_id, **{field: value}))
    )
    assert error.response_status_code == 400
    assert error.error is not None
    assert error.error.code == "BadRequest"
    assert f"'{name}'" in error.error.message
    count = await graph.data_policy_operations.count.get(
        RequestConfiguration(query_parameters=CountQuery(filter=f"userId eq '{user_id}'"))
    )
    assert count == 0


async def test_default_trailing_slash_base_url_works(graph_default_base_url, user_id):
    """With the SDK's default base URL (ending in `/`, so paths start `/v1.0//`), create, get,
    list and `$count` all reach the right routes: the server collapses the double slash."""
    graph = graph_default_base_url
    assert graph.request_adapter.base_url.endswith("/v1.0/")
    created = await create(graph, user_id)
    fetched = await graph.data_policy_operations.by_data_policy_operation_id(created.id).get()
    assert fetched.id == created.id
    page = await graph.data_policy_operations.get(list_config(filter=f"userId eq '{user_id}'"))
    assert [op.id for op in page.value] == [created.id]
    count = await graph.data_policy_operations.count.get(
        RequestConfiguration(query_parameters=CountQuery(filter=f"userId eq '{user_id}'"))
    )
    assert count == 1


# --- get ---------------------------------------------------------------------------------------


async def test_get_by_id_returns_the_entity_with_its_etag(graph, service, user_id):
    """GET by id parses into the same operation; `@odata.etag` and `@odata.context` land in
    additional_data."""
    created = await create(graph, user_id)
    fetched = await graph.data_policy_operations.by_data_policy_operation_id(created.id).get()
    assert fetched.id == created.id
    assert fetched.user_id == user_id
    assert fetched.status == DataPolicyOperationStatus.NotStarted
    assert fetched.progress == 0
    assert fetched.submitted_date_time == created.submitted_date_time
    assert fetched.completed_date_time is None
    assert fetched.additional_data["@odata.etag"] == created.additional_data["@odata.etag"]
    assert fetched.additional_data["@odata.etag"].startswith('W/"')
    assert (
        fetched.additional_data["@odata.context"]
        == f"{service.url}/$metadata#dataPolicyOperations/$entity"
    )


async def test_get_by_id_with_select_returns_only_the_selected_properties(graph, service, user_id):
    """`$select` (query_parameters select=[...]) narrows the entity and its context URL; the
    unselected properties parse as None, and the ETag is still there."""
    created = await create(graph, user_id, storage_location=exports(service, "x"))
    fetched = await graph.data_policy_operations.by_data_policy_operation_id(created.id).get(
        RequestConfiguration(query_parameters=ItemQuery(select=["id", "status"]))
    )
    assert fetched.id == created.id
    assert fetched.status == DataPolicyOperationStatus.NotStarted
    assert fetched.user_id is None
    assert fetched.storage_location is None
    assert fetched.submitted_date_time is None
    assert fetched.progress is None
    assert fetched.additional_data["@odata.etag"] == created.additional_data["@odata.etag"]
    assert (
        fetched.additional_data["@odata.context"]
        == f"{service.url}/$metadata#dataPolicyOperations(id,status)/$entity"
    )


async def test_unknown_id_is_a_404_resource_not_found(graph):
    """An id that does not exist raises ODataError 404 with code ResourceNotFound, and the
    camelCase innerError parses so that inner_error.request_id is filled in."""
    missing = str(uuid.uuid4())
    error = await odata_error(
        graph.data_policy_operations.by_data_policy_operation_id(missing).get()
    )
    assert error.response_status_code == 404
    assert error.error.code == "ResourceNotFound"
    assert error.error.message
    inner = error.error.inner_error
    assert inner is not None
    assert inner.request_id
    uuid.UUID(inner.request_id)
    assert inner.client_request_id
    assert inner.date is not None
    assert error.response_headers["request-id"] == inner.request_id


# --- list and $count ---------------------------------------------------------------------------


async def test_list_with_filter_orderby_select_top_skip_and_count(graph, service, user_id):
    """List with `$filter`, `$orderby`, `$select`, `$top`, `$skip` and `$count=true` as the SDK
    sends them: the right slice in the right order, narrowed, with odata_count and a nextLink."""
    ids = [(await create(graph, user_id)).id for _ in range(5)]
    page = await graph.data_policy_operations.get(
        list_config(
            filter=f"userId eq '{user_id}'",
            orderby=["submittedDateTime desc"],
            select=["id", "submittedDateTime"],
            top=2,
            skip=1,
            count=True,
        )
    )
    assert isinstance(page, DataPolicyOperationCollectionResponse)
    assert page.odata_count == 5
    newest_first = list(reversed(ids))
    assert [op.id for op in page.value] == newest_first[1:3]
    assert all(op.user_id is None and op.status is None for op in page.value)
    assert all(op.submitted_date_time is not None for op in page.value)
    assert page.value[0].submitted_date_time > page.value[1].submitted_date_time
    assert page.odata_next_link
    assert page.odata_next_link.startswith(f"{service.url}/dataPolicyOperations?")
    assert page.additional_data["@odata.context"] == (
        f"{service.url}/$metadata#dataPolicyOperations(id,submittedDateTime)"
    )


async def test_list_filter_matches_only_that_user(graph, user_id):
    """A `userId eq` filter returns that user's operations only, in submission order, and no
    nextLink when everything fits on one page."""
    other = str(uuid.uuid4())
    mine = [(await create(graph, user_id)).id for _ in range(2)]
    await create(graph, other)
    page = await graph.data_policy_operations.get(list_config(filter=f"userId eq '{user_id}'"))
    assert [op.id for op in page.value] == mine
    assert all(op.user_id == user_id for op in page.value)
    assert page.odata_next_link is None
    assert page.odata_count is None


async def test_list_with_search(graph, service, user_id):
    """`$search="text"` (the SDK percent-encodes the quotes) matches the text in the searchable
    properties, here a storageLocation unique to this test."""
    marker = uuid.uuid4().hex
    hit = await create(graph, user_id, storage_location=exports(service, marker))
    await create(graph, user_id, storage_location=exports(service, "other"))
    page = await graph.data_policy_operations.get(list_config(search=f'"{marker}"'))
    assert [op.id for op in page.value] == [hit.id]
    by_user = await graph.data_policy_operations.get(
        list_config(search=f'"userId:{user_id}"', count=True)
    )
    assert by_user.odata_count == 2


async def test_list_with_expand_of_a_property_is_a_400(graph):
    """`$expand` of a property is not supported (the entity has no navigation properties):
    ODataError 400."""
    error = await odata_error(graph.data_policy_operations.get(list_config(expand=["anything"])))
    assert error.response_status_code == 400
    assert error.error.code == "BadRequest"


async def test_expand_star_is_accepted_and_expands_nothing(graph, user_id):
    """`$expand=*` through the SDK's query parameters answers as without it."""
    created = await create(graph, user_id)
    page = await graph.data_policy_operations.get(
        list_config(filter=f"userId eq '{user_id}'", expand=["*"])
    )
    assert [op.id for op in page.value] == [created.id]
    item = graph.data_policy_operations.by_data_policy_operation_id(created.id)
    fetched = await item.get(RequestConfiguration(query_parameters=ItemQuery(expand=["*"])))
    assert fetched.id == created.id


async def test_graphs_filter_forms(graph, user_id):
    """The forms Graph's documentation writes: `startsWith` in camel case, the qualified enum
    literal, `status` compared by the enum's value."""
    created = await create(graph, user_id)
    status = "microsoft.graph.dataPolicyOperationStatus'notStarted'"
    for condition, expected in [
        (f"startsWith(userId, '{user_id[:8]}') and status eq {status}", [created.id]),
        (f"STARTSWITH(userId, '{user_id[:8]}') and status in ({status})", [created.id]),
        (f"userId eq '{user_id}' and status lt 'running'", [created.id]),
        (f"userId eq '{user_id}' and status gt {status}", []),
    ]:
        page = await graph.data_policy_operations.get(list_config(filter=condition))
        assert [op.id for op in page.value] == expected, condition


async def test_prefer_maxpagesize_sets_the_page_size_and_next_links_keep_it(graph, user_id):
    """`Prefer: odata.maxpagesize=2` in the SDK's request configuration gives pages of 2, with
    `Preference-Applied`; the next links, followed without the header (`with_url`, and
    msgraph_core's PageIterator), still give pages of 2, and every operation once."""
    ids = [(await create(graph, user_id)).id for _ in range(5)]
    inspect = HeadersInspectionHandlerOption(inspect_response_headers=True)
    config = RequestConfiguration(
        query_parameters=ListQuery(filter=f"userId eq '{user_id}'"), options=[inspect]
    )
    config.headers.add("Prefer", "odata.maxpagesize=2")
    first = await graph.data_policy_operations.get(config)
    assert [op.id for op in first.value] == ids[:2]
    assert inspect.response_headers.get("preference-applied") == {"odata.maxpagesize=2"}
    sizes, link = [len(first.value)], first.odata_next_link
    while link:  # the SDK's own way to a next link: `with_url`, without the Prefer header
        page = await graph.data_policy_operations.with_url(link).get()
        sizes.append(len(page.value))
        link = page.odata_next_link
    assert sizes == [2, 2, 1]
    seen: list[str] = []

    def collect(operation: DataPolicyOperation) -> bool:
        seen.append(operation.id)
        return True

    await PageIterator(first, graph.request_adapter).iterate(collect)
    assert seen == ids


async def test_count_with_filter(graph, user_id):
    """`/$count` through `count.get()` (text/plain) parses as an int honouring `$filter`."""
    for _ in range(3):
        await create(graph, user_id)
    count = await graph.data_policy_operations.count.get(
        RequestConfiguration(
            query_parameters=CountQuery(filter=f"userId eq '{user_id}' and status eq 'notStarted'")
        )
    )
    assert count == 3
    none = await graph.data_policy_operations.count.get(
        RequestConfiguration(
            query_parameters=CountQuery(filter=f"userId eq '{user_id}' and status eq 'running'")
        )
    )
    assert none == 0


async def test_page_iterator_follows_next_links(graph, user_id):
    """msgraph_core's PageIterator follows the absolute `@odata.nextLink`s (with `$top`,
    `$filter` and the `$skiptoken` they carry) through every page: each operation is seen
    exactly once, in submission order."""
    ids = [(await create(graph, user_id)).id for _ in range(7)]
    first = await graph.data_policy_operations.get(
        list_config(filter=f"userId eq '{user_id}'", top=2)
    )
    assert len(first.value) == 2
    assert first.odata_next_link
    seen: list[str] = []

    def collect(operation: DataPolicyOperation) -> bool:
        seen.append(operation.id)
        return True  # keep going

    iterator = PageIterator(first, graph.request_adapter)
    await iterator.iterate(collect)
    assert seen == ids


# --- update ------------------------------------------------------------------------------------


async def test_patch_storage_location_returns_the_updated_entity(graph, service, user_id):
    """PATCH of storageLocation returns the updated entity (with a new ETag), and a later GET
    sees the change."""
    created = await create(graph, user_id)
    location = exports(service, "patched")
    item = graph.data_policy_operations.by_data_policy_operation_id(created.id)
    updated = await item.patch(DataPolicyOperation(storage_location=location))
    assert updated.id == created.id
    assert updated.storage_location == location
    assert updated.user_id == user_id
    assert updated.status == DataPolicyOperationStatus.NotStarted
    assert updated.additional_data["@odata.etag"] != created.additional_data["@odata.etag"]
    fetched = await item.get()
    assert fetched.storage_location == location
    assert fetched.additional_data["@odata.etag"] == updated.additional_data["@odata.etag"]


async def test_patch_changing_user_id_is_a_400(graph, service, user_id):
    """userId cannot change after create: a PATCH sending another userId is ODataError 400 and
    the operation is unchanged; echoing the current userId back is accepted."""
    created = await create(graph, user_id)
    item = graph.data_policy_operations.by_data_policy_operation_id(created.id)
    error = await odata_error(item.patch(DataPolicyOperation(user_id=str(uuid.uuid4()))))
    assert error.response_status_code == 400
    assert error.error.code == "BadRequest"
    assert "'userId'" in error.error.message
    assert (await item.get()).user_id == user_id
    echoed = await item.patch(
        DataPolicyOperation(user_id=user_id, storage_location=exports(service, "y"))
    )
    assert echoed.user_id == user_id
    assert echoed.storage_location == exports(service, "y")


# --- delete ------------------------------------------------------------------------------------


async def test_delete_honours_if_match(graph, service, user_id):
    """DELETE with a stale If-Match ETag (added through RequestConfiguration headers) is an
    ODataError 412 and the operation survives; with the current ETag it is deleted, and a
    later GET is a 404."""
    created = await create(graph, user_id)
    stale = created.additional_data["@odata.etag"]
    item = graph.data_policy_operations.by_data_policy_operation_id(created.id)
    updated = await item.patch(DataPolicyOperation(storage_location=exports(service, "new")))
    current = updated.additional_data["@odata.etag"]
    assert current != stale

    config = RequestConfiguration()
    config.headers.add("If-Match", stale)
    error = await odata_error(item.delete(config))
    assert error.response_status_code == 412
    assert error.error.code == "PreconditionFailed"
    assert (await item.get()).id == created.id

    config = RequestConfiguration()
    config.headers.add("If-Match", current)
    assert await item.delete(config) is None
    gone = await odata_error(item.get())
    assert gone.response_status_code == 404
    assert gone.error.code == "ResourceNotFound"


async def test_delete_without_if_match_deletes(graph, user_id):
    """DELETE without If-Match is unconditional; deleting again is a 404."""
    created = await create(graph, user_id)
    item = graph.data_policy_operations.by_data_policy_operation_id(created.id)
    assert await item.delete() is None
    again = await odata_error(item.delete())
    assert again.response_status_code == 404
