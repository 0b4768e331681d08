"""`datapolicy users` against a running service: the directory as a table and as JSON."""

from __future__ import annotations

import pytest
from commands import against, datapolicy, json_output, one_line_error

from conftest import ProcessService, Service, start_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_service(demo_process: ProcessService) -> ProcessService:
    """The session's demo service in a process: the CLI reaches it over its port."""
    return demo_process


def test_list_pages_through_the_directory_and_show_finds_one(demo_service: Service):
    with demo_service.client() as http:
        directory = http.get("/users", params={"$top": "999"}).json()["value"]
    everyone = json_output(
        datapolicy("users", "list", "--top", "2", "--all", "--json", *against(demo_service))
    )
    assert [user["id"] for user in everyone] == [user["id"] for user in directory]
    first = directory[0]
    table = datapolicy("users", "list", "--top", "2", *against(demo_service))
    assert table.returncode == 0, table.stderr
    assert first["id"] in table.stdout
    assert first["displayName"] in table.stdout
    shown = json_output(datapolicy("users", "show", first["id"], "--json", *against(demo_service)))
    assert shown == {key: value for key, value in first.items() if not key.startswith("@")}


def test_an_unknown_user_is_one_line(demo_service: Service):
    result = datapolicy("users", "show", "nobody", *against(demo_service))
    assert one_line_error(result).startswith("Error: 404 Request_ResourceNotFound: ")


def test_list_finds_people_by_filter_and_by_search(demo_service: Service):
    by_mail = json_output(
        datapolicy(
            "users",
            "list",
            "--filter",
            "mail eq 'ADA.LOVELACE@example.com'",
            "--json",
            *against(demo_service),
        )
    )
    assert [user["displayName"] for user in by_mail] == ["Ada Lovelace"]
    by_word = json_output(
        datapolicy("users", "list", "--search", "LOVE", "--json", *against(demo_service))
    )
    assert [user["displayName"] for user in by_word] == ["Ada Lovelace"]
    graph_syntax = json_output(
        datapolicy(
            "users",
            "list",
            "--search",
            '"displayName:a" AND "mail:a"',
            "--orderby",
            "displayName",
            "--top",
            "2",
            "--all",
            "--json",
            *against(demo_service),
        )
    )
    names = [user["displayName"] for user in graph_syntax]
    assert names
    assert names == sorted(names, key=str.lower)
    assert all(user["mail"].startswith("a") for user in graph_syntax)


def test_a_bad_filter_is_one_line(demo_service: Service):
    result = datapolicy("users", "list", "--filter", "manager eq 'x'", *against(demo_service))
    assert one_line_error(result).startswith("Error: 400 BadRequest: Could not find a property")


@pytest.mark.operation_store  # starts a service on the test store
def test_advanced_queries_are_answered_under_the_graph_profile(tmp_path):
    """Under `--profile graph` the service applies Graph's rule for advanced queries
    (docs/graph-compatibility.md, "Directory queries"): `endsWith`, `ne`, `not` and `$filter`
    with `$orderby` need `$count=true` as well as `ConsistencyLevel: eventual`. The CLI sends
    both, so each of its queries is answered as in the default profile."""
    graph = start_service(tmp_path / "data", "--demo", "--profile", "graph")
    try:
        for query in (
            ("--filter", "endswith(mail, '@example.com')"),
            ("--filter", "not startswith(mail, 'a')"),
            ("--filter", "mail ne 'ada.lovelace@example.com'"),
            ("--filter", "startswith(mail, 'a')", "--orderby", "displayName"),
            ("--search", "love", "--orderby", "displayName"),
        ):
            found = json_output(datapolicy("users", "list", *query, "--json", *against(graph)))
            assert found, query
    finally:
        graph.stop()
