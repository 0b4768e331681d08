"""The route -> permission matrix of the route table, for the paths and methods the HTTP tests
do not walk: HEAD, trailing slashes, unknown routes and methods, paths outside the API root."""

from __future__ import annotations

import pytest

from datapolicy.auth.permissions import ANY_TOKEN, ERASE, EXPORT, PUBLIC, READ_USERS, Requirement
from datapolicy.web.routes.table import API_ROUTES, RouteTable

TABLE = RouteTable(API_ROUTES)


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("HEAD", "/v1.0/dataPolicyOperations/abc", Requirement(permission=EXPORT)),
        ("HEAD", "/v1.0/users", Requirement(permission=READ_USERS)),
        ("GET", "/v1.0/dataPolicyOperations/$count", Requirement(permission=EXPORT)),
        ("GET", "/v1.0/users/ada@example.com", Requirement(permission=READ_USERS)),
        ("PUT", "/v1.0/dataPolicyOperations", ANY_TOKEN),  # then 405
        ("GET", "/v1.0/dataPolicyOperations/", ANY_TOKEN),  # then 404: no empty id
        ("GET", "/v1.0/dataPolicyOperations/$value", ANY_TOKEN),  # then 404: not a key
        ("GET", "/v1.0/dataPolicyOperations/a/b", ANY_TOKEN),
        ("GET", "/v1.0/me", ANY_TOKEN),
        ("GET", "/elsewhere", ANY_TOKEN),  # outside /v1.0
        ("POST", "/v1.0/$metadata", PUBLIC),  # then 405, without a token
        ("GET", "/v1.0/docs/assets/swagger-ui.css", PUBLIC),
        ("GET", "/v1.0/docs/other", ANY_TOKEN),
        ("GET", "/v1.0/docs/assets", ANY_TOKEN),  # no asset: Starlette's Mount serves none
        ("POST", "/v1.0/users/x\n/exportPersonalData", Requirement(permission=EXPORT)),
        ("GET", "/v1.0/dataPolicyOperations\n", ANY_TOKEN),  # not the list: another path
        ("GET", "/beta/dataPolicyOperations('a''b')", Requirement(permission=EXPORT)),
        ("POST", "/beta/users/x/microsoft.graph.erasePersonalData", Requirement(permission=ERASE)),
        ("GET", "/beta/", ANY_TOKEN),  # the service document: any valid token
        ("GET", "/v1.0/openapi.yaml", PUBLIC),
    ],
)
def test_requirement(method: str, path: str, needed: Requirement):
    assert TABLE.match(path).requirement(method) == needed
