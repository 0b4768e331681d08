"""The route -> permission matrix, for the paths and methods the HTTP tests do not walk:
HEAD, trailing slashes, unknown routes and methods, paths outside the API root."""

from __future__ import annotations

import pytest

from datapolicy.auth.permissions import (
    ANY_TOKEN,
    EXPORT,
    PUBLIC,
    READ_USERS,
    Requirement,
    requirement,
)


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("HEAD", "/dataPolicyOperations/abc", Requirement(permission=EXPORT)),
        ("HEAD", "/users", Requirement(permission=READ_USERS)),
        ("GET", "/dataPolicyOperations/$count", Requirement(permission=EXPORT)),
        ("GET", "/users/ada@example.com", Requirement(permission=READ_USERS)),
        ("PUT", "/dataPolicyOperations", ANY_TOKEN),  # then 405
        ("GET", "/dataPolicyOperations/", ANY_TOKEN),  # then 404: no empty id
        ("GET", "/dataPolicyOperations/a/b", ANY_TOKEN),
        ("GET", "/me", ANY_TOKEN),
        ("GET", None, ANY_TOKEN),  # outside /v1.0
        ("POST", "/$metadata", PUBLIC),  # then 405, without a token
        ("GET", "/docs/assets/swagger-ui.css", PUBLIC),
        ("GET", "/docs/other", ANY_TOKEN),
        ("GET", "/openapi.yaml", PUBLIC),
    ],
)
def test_requirement(method: str, path: str | None, needed: Requirement):
    assert requirement(method, path) == needed
