"""Graph's rule for advanced directory queries on `/users` (web/routes/advanced_queries.py):
under `serve --profile graph`, `$search`, `/users/$count`, `endsWith`, `ne`, `not` and
`$filter` with `$orderby` need `ConsistencyLevel: eventual` (and all but `$search` also
`$count=true`), with Graph's codes and messages; `$count=true` without the header is ignored.
Without the profile, every one of them is answered without the header."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from conftest import Service, start_app
from datapolicy.demo import demo_user_id

pytestmark = pytest.mark.operation_store  # starts services on the test store

ADA = demo_user_id(0)
EVENTUAL = {"ConsistencyLevel": "eventual"}
HINT = (
    "is not supported because the required parameters might be missing. Try adding "
    "$count=true query parameter and ConsistencyLevel:eventual header. Refer to "
    "https://aka.ms/graph-docs/advanced-queries for more information"
)
# Each advanced query, and Graph's answer without the advanced query parameters.
ADVANCED = [
    (
        {"$search": '"displayName:ada"'},
        "Request with $search query parameter only works through MSGraph with a special "
        "request header: 'ConsistencyLevel: eventual'",
    ),
    ({"$filter": "endswith(mail, '@example.com')"}, f"Operator 'endsWith' {HINT}"),
    ({"$filter": "mail ne 'x@example.com'"}, f"Operator 'ne' {HINT}"),
    ({"$filter": "not startswith(displayName, 'Ada')"}, f"Operator 'not' {HINT}"),
    (
        {"$filter": "startswith(displayName, 'A')", "$orderby": "displayName"},
        "Sorting not supported for current query.",
    ),
]


@pytest.fixture(scope="module")
def graph_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start_app(
        tmp_path_factory.mktemp("graph-users"), "--demo", "--workers", "0", "--profile", "graph"
    )
    yield running
    running.stop()


@pytest.fixture
def graph(graph_service: Service) -> Iterator[httpx.Client]:
    with graph_service.client() as http:
        yield http


@pytest.fixture
def api(demo_service: Service) -> Iterator[httpx.Client]:
    with demo_service.client() as http:
        yield http


@pytest.mark.parametrize(("params", "message"), ADVANCED)
def test_advanced_queries_without_the_parameters_are_graphs_400(graph, params, message):
    response = graph.get("/users", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "Request_UnsupportedQuery"
    assert response.json()["error"]["message"] == message


@pytest.mark.parametrize(("params", "message"), ADVANCED)
def test_advanced_queries_with_the_parameters_are_answered(graph, api, params, message):
    answered = graph.get("/users", params={**params, "$count": "true"}, headers=EVENTUAL)
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["@odata.count"] == len(body["value"]) > 0
    # Without the profile: the same answer, header or not.
    plain = api.get("/users", params={**params, "$count": "true"}).json()
    assert [u["id"] for u in plain["value"]] == [u["id"] for u in body["value"]]


def test_search_needs_only_the_header(graph):
    response = graph.get("/users", params={"$search": '"mail:ada"'}, headers=EVENTUAL)
    assert [user["id"] for user in response.json()["value"]] == [ADA]


def test_count_segment_needs_the_header(graph, api):
    response = graph.get("/users/$count")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "Request_BadRequest",
        "$count is not currently supported.",
    )
    assert graph.get("/users/$count", headers=EVENTUAL).text == "16"
    assert graph.get("/users/$count", headers={"ConsistencyLevel": "Eventual "}).text == "16"
    assert api.get("/users/$count").text == "16"


def test_count_option_without_the_header_is_ignored_as_graph_does(graph, api):
    params = {"$filter": "startswith(mail, 'ada')", "$count": "true"}
    assert "@odata.count" not in graph.get("/users", params=params).json()
    assert graph.get("/users", params=params, headers=EVENTUAL).json()["@odata.count"] == 1
    assert api.get("/users", params=params).json()["@odata.count"] == 1


def test_default_queries_need_no_header_under_the_profile(graph):
    for params in (
        {"$filter": "mail eq 'ada.lovelace@example.com'"},
        {"$filter": "startswith(displayName, 'Ada') or mail in ('a@x', 'b@x')"},
        {"$orderby": "displayName", "$top": "2"},
    ):
        assert graph.get("/users", params=params).status_code == 200, params
