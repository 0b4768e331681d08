"""The official Graph SDK finds people in the directory as it finds them in Graph: its
`users.get` with `$filter`, `$search`, `$count`, `$orderby` and the `ConsistencyLevel` header
(the Graph profile's rule), its `users.count`, its page iterator, and `users.by_user_id` with a
userPrincipalName."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterator

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_core.tasks.page_iterator import PageIterator

from conftest import Service, start_service
from datapolicy.demo import demo_user_id
from graphclient import graph_client

with warnings.catch_warnings():  # the request builders' module warns on import
    warnings.simplefilter("ignore", DeprecationWarning)
    from msgraph.generated.users.count.count_request_builder import CountRequestBuilder
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder

# e2e: the SDK reaches a `serve --demo --profile graph` process over its port
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.operation_store,  # starts a service on the test store
    pytest.mark.asyncio(loop_scope="session"),
]
ADA = demo_user_id(0)
Query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters
CountQuery = CountRequestBuilder.CountRequestBuilderGetQueryParameters


@pytest.fixture(scope="module")
def graph_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("users-sdk")
    running = start_service(root / "data", "--demo", "--workers", "0", "--profile", "graph")
    yield running
    running.stop()


@pytest.fixture
async def graph(graph_service: Service) -> AsyncIterator[GraphServiceClient]:
    async with graph_client(graph_service) as client:
        yield client


def eventual(query: object) -> RequestConfiguration:
    config = RequestConfiguration(query_parameters=query)
    config.headers.add("ConsistencyLevel", "eventual")
    return config


async def test_a_person_is_found_by_mail_with_a_count(graph: GraphServiceClient):
    page = await graph.users.get(
        request_configuration=eventual(
            Query(filter="mail eq 'Ada.Lovelace@example.com'", count=True, select=["id", "mail"])
        )
    )
    assert [user.id for user in page.value] == [ADA]
    assert page.value[0].mail == "ada.lovelace@example.com"
    assert page.odata_count == 1


async def test_search_and_order_with_the_consistency_header(graph: GraphServiceClient):
    page = await graph.users.get(
        request_configuration=eventual(
            Query(search='"displayName:a"', orderby=["displayName"], count=True)
        )
    )
    names = [user.display_name for user in page.value]
    assert names
    assert names == sorted(names, key=str.lower)
    assert all(any(w.lower().startswith("a") for w in name.split()) for name in names)
    assert page.odata_count == len(names)


async def test_search_without_the_header_is_graphs_error(graph: GraphServiceClient):
    config = RequestConfiguration(query_parameters=Query(search='"displayName:ada"'))
    with pytest.raises(ODataError) as raised:
        await graph.users.get(request_configuration=config)
    assert raised.value.response_status_code == 400
    assert raised.value.error.code == "Request_UnsupportedQuery"


async def test_the_count_segment(graph: GraphServiceClient):
    total = await graph.users.count.get(
        request_configuration=eventual(CountQuery(filter="startswith(mail, 'ada')"))
    )
    assert total == 1


async def test_a_user_is_read_by_user_principal_name(graph: GraphServiceClient):
    user = await graph.users.by_user_id("ada.lovelace@contoso.example").get()
    assert (user.id, user.display_name) == (ADA, "Ada Lovelace")


async def test_the_page_iterator_reads_every_user(graph: GraphServiceClient):
    first = await graph.users.get(
        request_configuration=RequestConfiguration(query_parameters=Query(top=5))
    )
    seen: list[str] = []

    def collect(user) -> bool:
        seen.append(user.id)
        return True

    iterator = PageIterator(first, graph.request_adapter)
    await iterator.iterate(collect)
    assert len(seen) == len(set(seen)) == 16
