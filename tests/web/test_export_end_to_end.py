"""One person's export, end to end: a `datapolicy serve` process configured by a TOML file whose
user directory is in PostgreSQL and whose sources are a SQLite forum, a PostgreSQL CRM, a
MariaDB shop and a directory of uploaded files; the export is started and followed with the
official Microsoft Graph SDK, and the package it writes is opened and checked.

The databases are real (tests/databases.py), each a scratch namespace of this module's own.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import HeadersInspectionHandlerOption
from msgraph.generated.models.data_policy_operation_status import DataPolicyOperationStatus
from sqlalchemy import create_engine, text

from conftest import Service, start_service
from databases import MARIADB, POSTGRESQL, scratch_database
from datapolicy.engine.verify import verify_package
from graphclient import graph_client

pytestmark = pytest.mark.operation_store  # starts services on the test store

with warnings.catch_warnings():  # see tests/web/test_graph_sdk.py
    warnings.simplefilter("ignore", DeprecationWarning)
    from msgraph.generated.users.item.export_personal_data.export_personal_data_post_request_body import (  # noqa: E501
        ExportPersonalDataPostRequestBody,
    )

EXPORT_TIMEOUT_S = 30

ADA = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
GRACE = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
ALAN = "9b2e4d1a-0c3f-4e8b-8f6a-2d1c5b7e9a40"
PEOPLE = {
    ADA: ("Ada Lovelace", "ada@example.com", "ada@contoso.example"),
    GRACE: ("Grace Hopper", "grace@example.com", "grace@contoso.example"),
    ALAN: ("Alan Turing", "alan@example.com", "alan@contoso.example"),
}

# PostgreSQL: the user directory, and the CRM source (people <- tickets <- ticket_comments).
CRM = [
    """CREATE TABLE people (
        id VARCHAR(36) PRIMARY KEY, display_name TEXT, mail TEXT, upn TEXT,
        password_hash TEXT NOT NULL)""",
    """CREATE TABLE tickets (
        id INTEGER PRIMARY KEY, person_id VARCHAR(36) NOT NULL REFERENCES people(id),
        subject TEXT NOT NULL, opened_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE ticket_comments (
        id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        body TEXT NOT NULL)""",
    *(
        f"INSERT INTO people VALUES ('{uid}', '{name}', '{mail}', '{upn}', 'secret-{uid}')"
        for uid, (name, mail, upn) in PEOPLE.items()
    ),
    f"""INSERT INTO tickets VALUES
        (1, '{GRACE}', 'Grace: printer', '2025-01-02T03:04:05Z'),
        (2, '{ADA}', 'Ada: invoice', '2025-02-03T04:05:06Z'),
        (3, '{ALAN}', 'Alan: login', '2025-03-04T05:06:07Z'),
        (4, '{ADA}', 'Ada: address', '2025-04-05T06:07:08Z')""",
    """INSERT INTO ticket_comments VALUES
        (1, 2, 'on Ada''s invoice'), (2, 1, 'on Grace''s printer'),
        (3, 4, 'on Ada''s address'), (4, 3, 'on Alan''s login')""",
]
# MariaDB: the shop source (customers <- orders <- order_items).
SHOP = [
    "CREATE TABLE customers (id VARCHAR(36) PRIMARY KEY, name TEXT NOT NULL)",
    """CREATE TABLE orders (
        id INTEGER PRIMARY KEY, customer_id VARCHAR(36) NOT NULL,
        total DECIMAL(10, 2) NOT NULL, FOREIGN KEY (customer_id) REFERENCES customers(id))""",
    """CREATE TABLE order_items (
        id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, product TEXT NOT NULL,
        FOREIGN KEY (order_id) REFERENCES orders(id))""",
    f"INSERT INTO customers VALUES ('{ADA}', 'Ada'), ('{GRACE}', 'Grace'), ('{ALAN}', 'Alan')",
    f"""INSERT INTO orders VALUES
        (1, '{ADA}', 12.50), (2, '{GRACE}', 3.00), (3, '{ADA}', 99.99)""",
    """INSERT INTO order_items VALUES
        (1, 2, 'Grace''s mug'), (2, 1, 'Ada''s pen'), (3, 3, 'Ada''s lamp'),
        (4, 1, 'Ada''s ink')""",
]
# SQLite: the forum source (posts by author, and messages through a query).
FORUM = [
    "CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id TEXT NOT NULL, body TEXT NOT NULL)",
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY, sender TEXT NOT NULL, recipient TEXT NOT NULL,
        body TEXT NOT NULL)""",
    f"""INSERT INTO posts VALUES
        (1, '{ALAN}', 'Alan posts'), (2, '{ADA}', 'Ada posts'), (3, '{GRACE}', 'Grace posts')""",
    f"""INSERT INTO messages VALUES
        (1, '{ADA}', '{GRACE}', 'Ada to Grace'), (2, '{GRACE}', '{ALAN}', 'Grace to Alan'),
        (3, '{ALAN}', '{ADA}', 'Alan to Ada')""",
]
FILES = {
    ADA: {"avatar.txt": "Ada's picture\n", "documents/notes.md": "# Ada's notes\n"},
    GRACE: {"avatar.txt": "Grace's picture\n"},
}

# What Ada's package must hold: every entry, and the ids of the rows in each record file.
ADA_RECORDS = {
    "records/forum/posts.jsonl": [2],
    "records/forum/messages.jsonl": [1, 3],
    "records/crm/people.jsonl": [ADA],
    "records/crm/tickets.jsonl": [2, 4],
    "records/crm/ticket_comments.jsonl": [1, 3],
    "records/shop/customers.jsonl": [ADA],
    "records/shop/orders.jsonl": [1, 3],
    "records/shop/order_items.jsonl": [2, 3, 4],
}
ADA_FILES = {f"files/uploads/{path}": content for path, content in FILES[ADA].items()}


@dataclass
class World:
    service: Service
    exports: Path  # the permitted storage root
    outside: Path  # a directory outside every root


def run_script(url: str, statements: list[str]) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def write_config(base: Path, crm: str, shop: str) -> Path:
    path = base / "datapolicy.toml"
    path.write_text(
        f"""\
[directory]
url = "{crm}"
table = "people"
display_name_column = "display_name"
mail_column = "mail"
user_principal_name_column = "upn"

[[sources.sql]]
name = "forum"
url = "sqlite:///forum.sqlite3"   # relative to this file

  [[sources.sql.tables]]
  table = "posts"
  user_key = "author_id"

  [[sources.sql.queries]]
  name = "messages"
  sql = '''
    SELECT id, sender, recipient, body FROM messages
    WHERE sender = :user_id OR recipient = :user_id ORDER BY id'''

[[sources.sql]]
name = "crm"
url = "{crm}"

  [[sources.sql.tables]]
  table = "people"
  user_key = "id"
  exclude = ["password_hash"]

  [[sources.sql.tables]]
  table = "tickets"
  user_key = "person_id"

  [[sources.sql.tables]]
  table = "ticket_comments"
  parent = "tickets"

[[sources.sql]]
name = "shop"
url = "{shop}"

  [[sources.sql.tables]]
  table = "customers"
  user_key = "id"

  [[sources.sql.tables]]
  table = "orders"
  user_key = "customer_id"

  [[sources.sql.tables]]
  table = "order_items"
  parent = "orders"

[[sources.files]]
name = "uploads"
path = "uploads/{{userId}}"

[storage.local]
roots = ["exports"]

[engine]
workers = 1
lease_seconds = 3
heartbeat_seconds = 0.1
poll_seconds = 0.05
max_attempts = 1
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Three databases and a file store holding three people, and a service configured to
    export from them."""
    base = tmp_path_factory.mktemp("end-to-end")
    with ExitStack() as stack:
        crm = stack.enter_context(scratch_database(POSTGRESQL, base))
        shop = stack.enter_context(scratch_database(MARIADB, base))
        run_script(crm, CRM)
        run_script(shop, SHOP)
        run_script(f"sqlite:///{base / 'forum.sqlite3'}", FORUM)
        for person, files in FILES.items():
            for relative, content in files.items():
                path = base / "uploads" / person / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
        config = write_config(base, crm, shop)
        service = start_service(base / "data", "--config", str(config))
        try:
            yield World(service, base / "exports", base / "elsewhere")
        finally:
            service.stop()


def read_package(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and every other entry of a package."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    return orjson.loads(entries.pop("manifest.json")), entries


def jsonl(content: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in content.splitlines()]


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.timeout(60)
async def test_an_export_through_the_graph_sdk_holds_exactly_the_persons_data(world):
    """exportPersonalData through the Graph SDK answers with a Location naming the operation;
    the operation, polled with the SDK, runs to complete with progress that only rises and ends
    at 100; the package at <location>/<operationId>.zip holds exactly Ada's rows from SQLite
    (a table and a query), PostgreSQL and MariaDB (children found through reflected foreign
    keys, the password column excluded) and exactly her files, nothing of anyone else's; and
    it verifies, by verify_package and by `datapolicy verify`."""
    location = world.exports / f"ada-{uuid.uuid4().hex[:8]}"
    async with graph_client(world.service) as graph:
        inspect = HeadersInspectionHandlerOption(inspect_response_headers=True)
        accepted = await graph.users.by_user_id(ADA).export_personal_data.post(
            ExportPersonalDataPostRequestBody(storage_location=str(location)),
            request_configuration=RequestConfiguration(options=[inspect]),
        )
        assert accepted is None  # 202 with no body
        operation_url = next(iter(inspect.response_headers.get("location")))
        assert operation_url.startswith(f"{world.service.url}/dataPolicyOperations/")
        operation_id = operation_url.rstrip("/").rsplit("/", 1)[-1]
        uuid.UUID(operation_id)

        item = graph.data_policy_operations.by_data_policy_operation_id(operation_id)
        seen = []
        deadline = time.monotonic() + EXPORT_TIMEOUT_S
        while True:
            operation = await item.get()
            assert operation.id == operation_id
            seen.append(operation)
            if operation.status in (
                DataPolicyOperationStatus.Complete,
                DataPolicyOperationStatus.Failed,
            ):
                break
            assert time.monotonic() < deadline, f"still {operation.status} after the timeout"
            await asyncio.sleep(0.05)

    final = seen[-1]
    assert final.status == DataPolicyOperationStatus.Complete, (
        final.additional_data.get("error"),
        world.service.log.read_text(),
    )
    assert final.user_id == ADA
    assert final.storage_location == str(location)
    assert final.completed_date_time is not None
    progress = [operation.progress for operation in seen]
    assert progress == sorted(progress), f"progress went down: {progress}"
    assert progress[-1] == 100

    package = location / f"{operation_id}.zip"
    check_package(package, operation_id)
    assert verify_package(package) == []
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "datapolicy",
        "verify",
        str(package),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await cli.communicate()
    assert cli.returncode == 0, output.decode()
    assert output.decode().strip().endswith(": OK")


def check_package(package: Path, operation_id: str) -> None:
    """Ada's package: exactly her rows and files, listed right in the manifest."""
    manifest, entries = read_package(package)
    assert manifest["operationId"] == operation_id
    assert manifest["user"] == {
        "id": ADA,
        "displayName": "Ada Lovelace",
        "mail": "ada@example.com",
        "userPrincipalName": "ada@contoso.example",
    }
    assert set(entries) == {*ADA_RECORDS, *ADA_FILES, "index.html"}
    for name, expected in ADA_RECORDS.items():
        assert [row["id"] for row in jsonl(entries[name])] == expected, name
    for name, content in ADA_FILES.items():
        assert entries[name].decode() == content
    messages = jsonl(entries["records/forum/messages.jsonl"])
    assert all(ADA in (m["sender"], m["recipient"]) for m in messages)
    (person,) = jsonl(entries["records/crm/people.jsonl"])
    assert person == {
        "id": ADA,
        "display_name": "Ada Lovelace",
        "mail": "ada@example.com",
        "upn": "ada@contoso.example",
    }
    assert {row["person_id"] for row in jsonl(entries["records/crm/tickets.jsonl"])} == {ADA}
    orders = jsonl(entries["records/shop/orders.jsonl"])
    assert [(o["customer_id"], o["total"]) for o in orders] == [(ADA, 12.5), (ADA, 99.99)]
    assert b'"total":12.50' in entries["records/shop/orders.jsonl"]  # decimals keep every digit
    shared = ("records/forum/messages.jsonl", "index.html")
    everything_but_messages = b"".join(
        content for name, content in entries.items() if name not in shared
    )
    for other in (GRACE, ALAN):
        assert other.encode() not in everything_but_messages
    for marker in (b"Grace", b"Alan", b"password_hash", b"secret-"):
        assert marker not in everything_but_messages
    # the report shows the messages' rows too, and nothing else of another person's
    for marker in (GRACE.encode(), ALAN.encode(), b"Grace", b"Alan", b"password_hash"):
        assert entries["index.html"].count(marker) == entries[shared[0]].count(marker)
    assert [(s["name"], s["kind"], s["records"], s["files"]) for s in manifest["sources"]] == [
        ("forum", "sql", 3, 0),
        ("crm", "sql", 5, 0),
        ("shop", "sql", 6, 0),
        ("uploads", "files", 0, 2),
    ]


@pytest.fixture
def api(world: World) -> Iterator[httpx.Client]:
    with world.service.client() as client:
        yield client


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_an_unknown_user_is_a_404_request_resource_not_found(api):
    """A user id that the directory does not hold is Graph's 404 Request_ResourceNotFound,
    both for GET /users/{id} and for exportPersonalData (which then starts nothing)."""
    unknown = str(uuid.uuid4())
    for response in (
        api.get(f"/users/{unknown}"),
        api.post(f"/users/{unknown}/exportPersonalData", json={"storageLocation": "/x"}),
    ):
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["code"] == "Request_ResourceNotFound"
        assert unknown in error["message"]
    listed = api.get("/dataPolicyOperations", params={"$filter": f"userId eq '{unknown}'"})
    assert listed.json()["value"] == []


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_location_outside_the_roots_is_a_400_with_the_reason(api, world):
    """A storageLocation outside the configured [storage.local] roots is a 400 with code
    StorageLocationInvalid and a message saying why; nothing is written there."""
    response = api.post(
        f"/users/{ADA}/exportPersonalData", json={"storageLocation": str(world.outside)}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "StorageLocationInvalid"
    assert "not inside an allowed root" in error["message"]
    assert str(world.outside) in error["message"]
    assert not world.outside.exists()


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_users_are_answered_from_the_configured_directory(api, world):
    """GET /users lists the directory's people in id order, and GET /users/{id} reads one, in
    Graph's shape: @odata.context, @odata.type and the mapped id, displayName, mail and
    userPrincipalName (never other columns of the table)."""
    listed = api.get("/users").json()
    assert listed["@odata.context"] == f"{world.service.url}/$metadata#users"
    assert "@odata.nextLink" not in listed
    assert listed["value"] == [
        {
            "@odata.type": "#microsoft.graph.user",
            "id": uid,
            "displayName": name,
            "mail": mail,
            "userPrincipalName": upn,
        }
        for uid, (name, mail, upn) in sorted(PEOPLE.items())
    ]
    one = api.get(f"/users/{GRACE}").json()
    assert one == {
        "@odata.context": f"{world.service.url}/$metadata#users/$entity",
        "@odata.type": "#microsoft.graph.user",
        "id": GRACE,
        "displayName": "Grace Hopper",
        "mail": "grace@example.com",
        "userPrincipalName": "grace@contoso.example",
    }
