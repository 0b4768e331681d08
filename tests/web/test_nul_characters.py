"""NUL characters, which PostgreSQL's text cannot hold, in every place a request can put one,
against a service whose user directory is in PostgreSQL (and whose store is, on the PostgreSQL
pass): each is a clear 400 or 404 in Graph's shape, never the 500 that psycopg's "cannot contain
NUL" made of a user id or a `/users` `$skiptoken`."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from conftest import Service, configured_app
from databases import POSTGRESQL, scratch_database

pytestmark = pytest.mark.operation_store  # starts services on the test store

USER = "nul-test-user"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    base: Path = tmp_path_factory.mktemp("nul")
    with scratch_database(POSTGRESQL, base) as url:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE people (id VARCHAR(64) PRIMARY KEY)"))
            connection.execute(text(f"INSERT INTO people VALUES ('{USER}')"))
        engine.dispose()
        config = f'[directory]\nurl = "{url}"\ntable = "people"\n'
        running = configured_app(base, config, "--workers", "0")
        yield running
        running.stop()


def token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


CASES = [
    ("GET", "/users/a%00b", None, 404),
    ("GET", f"/users/{USER}%00", None, 404),
    ("POST", "/users/a%00b/exportPersonalData", {"storageLocation": "x"}, 404),
    ("GET", f"/users?$skiptoken={token('a' + chr(0))}", None, 400),
    ("GET", "/users?$skiptoken=%00", None, 400),
    ("GET", "/dataPolicyOperations/a%00b", None, 404),
    ("PATCH", "/dataPolicyOperations/a%00b", {"storageLocation": "x"}, 404),
    ("DELETE", "/dataPolicyOperations/a%00b", None, 404),
    ("GET", "/dataPolicyOperations/a%00b/package", None, 404),
    ("POST", "/dataPolicyOperations", {"userId": "a\u0000b"}, 400),
    ("GET", "/dataPolicyOperations?$filter=userId eq 'a%00b'", None, 400),
    ("GET", "/dataPolicyOperations?$skiptoken=%00", None, 400),
    ("GET", "/dataPolicyOperations?$search=%22a%00%22", None, 400),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), CASES)
def test_a_nul_is_a_clear_4xx(service: Service, method: str, path: str, body, status: int):
    with service.client() as http:
        response = http.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"]


def test_the_directory_still_answers_for_real_users(service: Service):
    with service.client() as http:
        assert http.get(f"/users/{USER}").json()["id"] == USER
        assert [user["id"] for user in http.get("/users").json()["value"]] == [USER]
