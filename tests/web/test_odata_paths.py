"""The other ways Graph's clients write the same paths (web/routes/table.py): actions named with
Graph's namespace (`microsoft.graph.exportPersonalData`), and keys in parentheses as OData string
literals (`dataPolicyOperations('id')`, percent-encoded or not, a quote inside doubled). Each
form answers exactly as the plain path does: same handler, same permission, same answer."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import Service, token_for
from datapolicy.auth.permissions import ERASE, EXPORT, READ_USERS
from datapolicy.demo import demo_user_id

ADA = demo_user_id(0)


def literal(key: str) -> str:
    """`key` as an OData string literal: in quotes, a quote inside doubled."""
    return "'" + key.replace("'", "''") + "'"


def _without_ids(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """A response's status, headers and body, but for what differs on every request."""
    headers = {
        name: value
        for name, value in response.headers.items()
        if name not in ("request-id", "client-request-id", "date")
    }
    body = response.content
    if response.headers.get("content-type", "").startswith("application/json") and body:
        document = response.json()
        if isinstance(document.get("error"), dict):
            document["error"].pop("innerError", None)
        body = repr(document).encode()
    return response.status_code, headers, body


@pytest.fixture
def api(demo_service: Service):
    with demo_service.client() as http:
        yield http


def test_the_qualified_export_action_is_the_export_action(api, demo_service):
    """`POST /users/{id}/microsoft.graph.exportPersonalData`: 202 with the new operation's
    `Location`, which completes, as the unqualified action answers."""
    location = f"{demo_service.data_dir}/exports/{uuid.uuid4().hex}"
    for path in (
        f"/users/{ADA}/microsoft.graph.exportPersonalData",
        f"/users('{ADA}')/microsoft.graph.exportPersonalData",
    ):
        response = api.post(path, json={"storageLocation": location})
        assert response.status_code == 202, response.text
        assert response.content == b""
        assert response.headers["retry-after"] == "60"
        operation = api.get(response.headers["location"]).json()
        assert operation["userId"] == ADA
        assert operation["operationType"] == "exportPersonalData"


def test_the_qualified_actions_need_the_same_permissions(demo_service):
    """Each qualified name asks what its action asks: without the permission, Graph's 403
    naming it; a refused body is refused alike."""
    cases = [
        (f"/users/{ADA}/microsoft.graph.exportPersonalData", EXPORT, {"storageLocation": "/x"}),
        (f"/users/{ADA}/microsoft.graph.erasePersonalData", ERASE, {"dryRun": True}),
        ("/dataPolicyOperations/some-id/microsoft.graph.approve", ERASE, None),
    ]
    others = token_for(demo_service.data_dir, READ_USERS)
    with demo_service.client(headers={"Authorization": f"Bearer {others}"}) as http:
        for path, permission, body in cases:
            plain = path.replace("microsoft.graph.", "")
            refused, refused_plain = http.post(path, json=body), http.post(plain, json=body)
            assert refused.status_code == 403, refused.text
            assert permission in refused.json()["error"]["message"]
            assert _without_ids(refused) == _without_ids(refused_plain)


def test_the_qualified_actions_answer_as_the_unqualified_ones(api):
    """Errors included: an unknown user, a bad body, an operation that does not exist, and a
    method the action lacks (405 with the same `Allow`)."""
    stranger = str(uuid.uuid4())
    for method, path, body in [
        ("POST", f"/users/{stranger}/exportPersonalData", {"storageLocation": "/nowhere"}),
        ("POST", f"/users/{ADA}/exportPersonalData", {"storageLocation": 5}),
        ("POST", f"/users/{ADA}/exportPersonalData", {"storageLocation": "relative"}),
        ("POST", f"/users/{stranger}/erasePersonalData", {"dryRun": True}),
        ("POST", f"/users/{ADA}/erasePersonalData", {"dryRun": "yes"}),
        ("POST", "/dataPolicyOperations/no-such-operation/approve", None),
        ("GET", f"/users/{ADA}/exportPersonalData", None),
        ("DELETE", "/dataPolicyOperations/x/approve", None),
    ]:
        qualified = path.rsplit("/", 1)
        qualified_path = f"{qualified[0]}/microsoft.graph.{qualified[1]}"
        expected = _without_ids(api.request(method, path, json=body))
        assert _without_ids(api.request(method, qualified_path, json=body)) == expected, path


def test_an_operation_is_addressed_by_its_key_in_parentheses(client, user_id):
    """GET, PATCH and DELETE of `dataPolicyOperations('id')` and `(%27id%27)` act on the entity
    `dataPolicyOperations/id` names; its package and approve routes take the form too."""
    created = client.post("/dataPolicyOperations", json={"userId": user_id}).json()
    key = created["id"]
    plain = client.get(f"/dataPolicyOperations/{key}")
    for path in (f"/dataPolicyOperations('{key}')", f"/dataPolicyOperations(%27{key}%27)"):
        assert _without_ids(client.get(path)) == _without_ids(plain)
    patched = client.patch(
        f"/dataPolicyOperations('{key}')",
        json={"storageLocation": created["storageLocation"] + "/elsewhere"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["id"] == key
    assert (
        client.get(f"/dataPolicyOperations/{key}").json()["storageLocation"].endswith("/elsewhere")
    )
    package = client.get(f"/dataPolicyOperations('{key}')/package")
    assert _without_ids(package) == _without_ids(client.get(f"/dataPolicyOperations/{key}/package"))
    assert client.delete(f"/dataPolicyOperations('{key}')").status_code == 204
    assert client.get(f"/dataPolicyOperations/{key}").status_code == 404


def test_a_user_is_addressed_by_its_key_in_parentheses(api):
    plain = api.get(f"/users/{ADA}", params={"$select": "displayName"})
    in_parentheses = api.get(f"/users('{ADA}')", params={"$select": "displayName"})
    assert _without_ids(in_parentheses) == _without_ids(plain)
    assert plain.status_code == 200


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], exclude_characters="/%"),
        min_size=1,
        max_size=12,
    )
    # "." and ".." cannot be written as a segment: the client removes dot segments (RFC 3986)
    .filter(lambda key: not key.startswith("$") and key not in (".", ".."))
)
@example(key="O'Brien")
@example(key="''")
@example(key="a)b(")
def test_a_key_in_parentheses_is_the_key_its_literal_stands_for(client, key):
    """Any key (quotes, parentheses, spaces, non-ASCII), written as an OData literal and
    percent-encoded as a client does, reaches the handler as the same key: the same answer as
    the key written as a segment (here the 404, which names the key)."""
    as_segment = client.get("/dataPolicyOperations/" + quote(key, safe=""))
    in_parentheses = client.get(f"/dataPolicyOperations({quote(literal(key), safe='')})")
    assert in_parentheses.status_code == 404, in_parentheses.text
    assert _without_ids(in_parentheses) == _without_ids(as_segment)


@pytest.mark.parametrize(
    ("path", "segment"),
    [
        ("/dataPolicyOperations('a'b')", "dataPolicyOperations('a'b')"),  # a quote not doubled
        ("/dataPolicyOperations('')", "dataPolicyOperations('')"),  # no key
        ("/dataPolicyOperations(abc)", "dataPolicyOperations(abc)"),  # not a string literal
        ("/dataPolicyOperations('$count')", "dataPolicyOperations('$count')"),  # no `$` key
        ("/dataPolicyOperations('a')/nothing", "nothing"),
    ],
)
def test_what_is_not_a_key_in_parentheses_is_an_unknown_segment(client, path, segment):
    response = client.get(path)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        **response.json()["error"],
        "code": "BadRequest",
        "message": f"Resource not found for the segment '{segment}'.",
    }
