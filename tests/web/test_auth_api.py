"""Authentication and permissions over HTTP: every route of the matrix in docs/security.md with
every kind of credential, asserting the exact status, Graph's error code and the
`WWW-Authenticate` challenge.

The dataPolicyOperations routes are asked of the session's API-only service (no export workers,
so an operation stays notStarted and PATCH applies); the user routes of the demo service, whose
directory holds the demo shop's customers. `GET .../{id}` is answered by the read fast path:
it is protected like everything else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from conftest import Service, start_app, token_for
from datapolicy.auth.keys import signing_key
from datapolicy.auth.permissions import EXPORT, READ_USERS, SCENARIOS
from datapolicy.demo import demo_user_id
from graphclient import graph_client
from jwksserver import serve_jwks
from jwtkinds import REFUSED_KINDS, claims, refused, sign

pytestmark = pytest.mark.operation_store  # starts services on the test store

ADA = demo_user_id(0)
FORBIDDEN = "Insufficient privileges to complete the operation."


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # `{op}`: an operation made for the request
    permission: str | None  # None: public
    success: int
    body: dict[str, Any] | None = None
    demo: bool = False  # asked of the demo service (the user directory)
    scenarios: bool = False  # asked of a service with --scenarios (the admin API)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ROUTES = [
    Route("GET", "/dataPolicyOperations", EXPORT, 200),
    Route("POST", "/dataPolicyOperations", EXPORT, 201, body={"userId": "auth-tests"}),
    Route("GET", "/dataPolicyOperations/$count", EXPORT, 200),
    Route("GET", "/dataPolicyOperations/{op}", EXPORT, 200),
    Route(
        "PATCH", "/dataPolicyOperations/{op}", EXPORT, 200, body={"storageLocation": "{exports}"}
    ),
    Route("DELETE", "/dataPolicyOperations/{op}", EXPORT, 204),
    # Granted, still 404: the operation is notStarted (this service runs no exports).
    Route("GET", "/dataPolicyOperations/{op}/package", EXPORT, 404),
    Route("GET", "/users", READ_USERS, 200, demo=True),
    Route("GET", f"/users/{ADA}", READ_USERS, 200, demo=True),
    Route(
        "POST",
        f"/users/{ADA}/exportPersonalData",
        EXPORT,
        202,
        body={"storageLocation": "{exports}"},
        demo=True,
    ),
    *(
        Route(
            method, f"/admin/datapolicy/scenarios{path}", SCENARIOS, success, body, scenarios=True
        )
        for method, path, success, body in [
            ("GET", "", 200, None),
            ("GET", "/faults", 200, None),
            ("POST", "/faults", 201, {"sequence": [{"kind": "latency"}], "route": "/none"}),
            ("DELETE", "/faults", 204, None),
            ("DELETE", "/faults/999", 404, None),  # granted; no such rule
            ("GET", "/time", 200, None),
            ("PUT", "/time", 200, {"mode": "normal"}),
            ("GET", "/exportFailures", 200, None),
            ("POST", "/exportFailures", 201, {"code": "x", "operationId": "none"}),
            ("POST", "/operations/{op}/advance", 409, None),  # granted; not in step mode
            ("GET", "/requests", 200, None),
            ("DELETE", "/requests", 204, None),
            ("POST", "/reset", 200, None),
            ("GET", "/snapshots", 200, None),
            ("PUT", "/snapshots/auth", 201, None),
            ("POST", "/snapshots/never-taken/restore", 404, None),  # granted; no such snapshot
        ]
    ),
    Route("GET", "/$metadata", None, 200),
    Route("GET", "/openapi.json", None, 200),
    Route("GET", "/openapi.yaml", None, 200),
    Route("GET", "/docs", None, 200),
]
GRANTED = ("scp", "roles")  # the right permission, delegated and as an application role
KINDS = ("missing", "not bearer", *REFUSED_KINDS, "no permission", "other permission", *GRANTED)


@pytest.fixture(scope="module")
def scenario_service(tmp_path_factory: pytest.TempPathFactory):
    """An API-only service with the scenario admin API (`serve --scenarios`)."""
    running = start_app(tmp_path_factory.mktemp("auth-scenarios"), "--workers", "0", "--scenarios")
    yield running
    running.stop()


def other(permission: str | None) -> str:
    return READ_USERS if permission == EXPORT else EXPORT


def credentials(service: Service, route: Route, kind: str) -> tuple[dict[str, str], str]:
    """The headers for `kind`, and the part of the message a refusal must carry."""
    key = signing_key(service.data_dir)
    if kind == "missing":
        return {}, "Access token is empty."
    if kind == "not bearer":
        return {"Authorization": "Basic dXNlcjpwYXNz"}, "must be 'Bearer <token>'"
    if kind in GRANTED:
        grant = {"scp": route.permission} if kind == "scp" else {"roles": [route.permission]}
        return {"Authorization": f"Bearer {sign(key, claims(**grant))}"}, ""
    if kind == "no permission":
        token = token_for(service.data_dir)
    elif kind == "other permission":
        token = token_for(service.data_dir, other(route.permission))
    else:
        token, expected = refused(key, roles=[EXPORT, READ_USERS])[kind]
        return {"Authorization": f"Bearer {token}"}, expected
    return {"Authorization": f"Bearer {token}"}, f"lacks the {route.permission} permission"


def call(service: Service, route: Route, headers: dict[str, str]) -> httpx.Response:
    path = route.path
    if "{op}" in path:
        with service.client() as http:
            made = http.post("/dataPolicyOperations", json={"userId": "auth-tests"})
        path = path.replace("{op}", made.json()["id"])
    body = route.body
    if body is not None and body.get("storageLocation") == "{exports}":
        body = {"storageLocation": str(service.data_dir / "exports" / uuid.uuid4().hex)}
    with service.client(headers=headers) as http:
        return http.request(route.method, f"{service.url}{path}", json=body)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_matrix(request: pytest.FixtureRequest, route: Route, kind: str):
    fixture = "demo_service" if route.demo else "scenario_service" if route.scenarios else "service"
    service: Service = request.getfixturevalue(fixture)
    headers, expected = credentials(service, route, kind)
    response = call(service, route, headers)
    token = headers.get("Authorization", "").removeprefix("Bearer ")
    assert not token or token not in response.text + str(response.headers)

    if route.permission is None or kind in GRANTED:
        assert response.status_code == (route.success if kind in GRANTED else 200), response.text
        assert "www-authenticate" not in response.headers
        return
    error = response.json()["error"]
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    challenge = response.headers["www-authenticate"]
    if kind in ("no permission", "other permission"):
        assert response.status_code == 403, response.text
        assert error["code"] == "Authorization_RequestDenied"
        assert error["message"].startswith(FORBIDDEN)
        assert expected in error["message"]
        assert challenge == (
            f'Bearer realm="datapolicy", error="insufficient_scope", scope="{route.permission}"'
        )
        return
    assert response.status_code == 401, response.text
    assert error["code"] == "InvalidAuthenticationToken"
    assert expected in error["message"]
    if kind == "missing":
        assert challenge == 'Bearer realm="datapolicy"'
    else:
        assert challenge == (
            'Bearer realm="datapolicy", error="invalid_token", '
            f'error_description="{error["message"]}"'
        )


def test_head_unknown_routes_and_methods_need_a_token_but_no_permission(service: Service):
    bare = token_for(service.data_dir)
    for method, path, status in [
        ("HEAD", "/dataPolicyOperations", 403),
        ("GET", "/nothing-here", 400),  # Graph's "Resource not found for the segment"
        ("PUT", "/dataPolicyOperations", 405),
    ]:
        with service.client(headers={}) as anonymous:
            assert anonymous.request(method, path).status_code == 401
        with service.client(headers={"Authorization": f"Bearer {bare}"}) as http:
            assert http.request(method, path).status_code == status, (method, path)
    with service.client(headers={}) as anonymous:
        assert anonymous.get(f"{service.root}/").status_code == 401
        assert anonymous.get("/docs/assets/swagger-ui.css").status_code == 200


def test_a_configured_jwks_url_is_used_instead_of_the_local_key(tmp_path: Path):
    """[auth] jwks_url, issuer and audience: an identity provider's RS256 tokens are accepted,
    the service makes no key of its own, and `datapolicy token` refuses to make tokens."""
    provider = RSAKey.generate_key(2048, auto_kid=True)
    issuer, audience = "https://login.example/tenant/v2.0", "api://datapolicy-test"
    with serve_jwks(provider) as jwks:
        config = tmp_path / "datapolicy.toml"
        config.write_text(
            f'[auth]\njwks_url = "{jwks.url}"\nissuer = "{issuer}"\naudience = "{audience}"\n'
        )
        service = start_app(tmp_path / "data", "--config", str(config), "--workers", "0")
        try:
            url = "/dataPolicyOperations"
            http = service.client(headers={})
            good = sign(provider, claims(iss=issuer, aud=audience, scp=EXPORT))
            assert http.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 200
            for bad, message in [
                (sign(provider, claims(aud=audience, scp=EXPORT)), "issuer"),
                (sign(provider, claims(iss=issuer, scp=EXPORT)), "audience"),
            ]:
                answer = http.get(url, headers={"Authorization": f"Bearer {bad}"})
                assert answer.status_code == 401
                assert message in answer.json()["error"]["message"]
            assert jwks.fetches == 1
            assert not (tmp_path / "data" / "signing-key.jwk").exists()
        finally:
            service.stop()


@pytest.mark.e2e  # the SDK reaches the service over a port
@pytest.mark.asyncio(loop_scope="session")
async def test_the_graph_sdk_reads_the_refusals_as_odata_errors(service_process: Service):
    """The SDK raises ODataError with Graph's codes for a bad token and a missing permission."""
    for token, status, code in [
        ("not-a-jwt", 401, "InvalidAuthenticationToken"),
        (token_for(service_process.data_dir, READ_USERS), 403, "Authorization_RequestDenied"),
    ]:
        async with graph_client(service_process, token=token) as graph:
            with pytest.raises(ODataError) as raised:
                await graph.data_policy_operations.get()
        assert raised.value.response_status_code == status
        assert raised.value.error.code == code
        assert raised.value.error.inner_error.request_id
