"""Erasure through the API and the CLI (docs/erasure.md): `POST /users/{id}/erasePersonalData`
answers as exportPersonalData does, a dry run publishes what would change and changes nothing,
an erasure changes the databases by the rules, `operationType` tells the operations apart and
filters them (and `dryRun` a dry run from the erasure itself), and the refusals: no
PersonalData.Erase.All (403), an unknown user (404), an export and an erasure of one person at
once (409).

A real `datapolicy serve` on a SQLite directory and shop of the test's own.
"""

from __future__ import annotations

import sqlite3
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from conftest import Service, configured_app, start_configured, token_for, wait_for
from datapolicy.auth.keys import signing_key
from datapolicy.auth.permissions import ERASE, EXPORT
from erasureshop import erasure_config
from jwtkinds import claims, sign

pytestmark = pytest.mark.operation_store  # starts services on the test store

TIMEOUT_S = 30
NO_MATCH = {"If-None-Match": 'W/"no-such-etag"'}  # a conditional GET: the routed endpoint


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("erasure")
    service = start_configured(root, erasure_config(root))
    yield service
    service.stop()


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """No workers: operations stay as started."""
    root = tmp_path_factory.mktemp("idle")
    service = start_configured(root, erasure_config(root), "--workers", "0")
    yield service
    service.stop()


def _erase(service: Service, user: str, **body: Any) -> httpx.Response:
    with service.client() as client:
        return client.post(f"/users/{user}/erasePersonalData", json=body)


def _finished(service: Service, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    with service.client() as client:
        while time.monotonic() < deadline:
            operation = client.get(url).json()
            if operation["status"] in ("complete", "failed"):
                return operation
            time.sleep(0.2)
    raise AssertionError(f"{url} did not finish")


def _rows(service: Service) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(service.data_dir.parent / "shop.sqlite3") as connection:
        return {
            name: connection.execute(f"SELECT * FROM {name} ORDER BY id").fetchall()
            for name in ("users", "orders", "invoices")
        }


def _summary(package: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(package) as archive:
        lines = archive.read("records/erasure/summary.jsonl").splitlines()
        return [orjson.loads(line) for line in lines]


def test_a_dry_run_then_the_erasure(running: Service):
    before = _rows(running)
    answer = _erase(running, "ada", dryRun=True)
    assert answer.status_code == 202, answer.text
    assert answer.content == b""
    assert answer.headers["Location"] == answer.headers["Operation-Location"]
    assert int(answer.headers["Retry-After"]) > 0
    dry = _finished(running, answer.headers["Location"])
    assert dry["status"] == "complete", dry
    assert dry["operationType"] == "erasePersonalData"
    assert dry["progressDetail"] is None  # what an export writes: an erasure has no rows/s
    assert _rows(running) == before  # nothing changed
    package = Path(dry["storageLocation"]) / f"{dry['id']}.zip"
    assert {(s["table"], s["rule"], s["rows"], s["cells"]) for s in _summary(package)} == {
        ("users", "mask", 1, 2),
        ("orders", "delete", 2, 0),
        ("invoices", "retain", 1, 0),
    }
    with zipfile.ZipFile(package) as archive:
        deleted = archive.read("records/shop/orders.jsonl").splitlines()
        masked = [
            orjson.loads(line)["mask"]
            for line in archive.read("records/shop/users.jsonl").splitlines()
        ]
    assert len(deleted) == 2
    assert {m["column"]: m["before"] for m in masked} == {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
    }

    done = _finished(running, _erase(running, "ada").headers["Location"])
    assert done["status"] == "complete", done
    # The service's log calls an erasure an erasure, from its queuing to its end.
    erasure_lines = wait_for(
        "the erasure's log lines",
        lambda: [
            message
            for message in (
                orjson.loads(line)["message"] for line in running.log.read_text().splitlines()
            )
            if message in ("erasure queued", f"erasure {done['id']} complete")
        ],
        10,
        running.log.read_text,
    )
    assert {"erasure queued", f"erasure {done['id']} complete"} <= set(erasure_lines)
    assert f"export {done['id']} complete" not in running.log.read_text()
    after = _rows(running)
    assert after["orders"] == [(3, "bob", 30)]
    assert after["invoices"] == before["invoices"]
    assert after["users"][1] == ("bob", "Bob Kahn", "bob@example.org")
    assert after["users"][0][:2] == ("ada", "(erased)")
    assert after["users"][0][2].startswith("h:")
    receipt = Path(done["storageLocation"]) / f"{done['id']}.zip"
    with zipfile.ZipFile(receipt) as archive:
        assert [name for name in archive.namelist() if name.startswith("records/")] == [
            "records/erasure/summary.jsonl"
        ]
        assert b"ada@example.com" not in archive.read("records/erasure/summary.jsonl")
        receipt_json = orjson.loads(archive.read("receipt.json"))
        page = archive.read("receipt.html")
    assert {(t["table"], t["rule"], len(t["keys"])) for t in receipt_json["tables"]} == {
        ("users", "mask", 1),
        ("orders", "delete", 2),
        ("invoices", "retain", 0),
    }
    assert receipt_json["operationId"] == done["id"]
    for personal in (b"ada@example.com", b"Ada", b'"ada"', b">ada<"):  # hashes are hex: a, d
        assert personal not in page
        assert personal not in orjson.dumps(receipt_json)
    with zipfile.ZipFile(package) as archive:
        assert "receipt.json" not in archive.namelist()  # a dry run's package is no receipt

    with running.client() as client:
        listed = client.get(
            "/dataPolicyOperations",
            params={"$filter": "operationType eq 'erasePersonalData'", "$orderby": "operationType"},
        ).json()["value"]
    assert {op["id"] for op in listed} == {dry["id"], done["id"]}


def test_without_the_erase_permission_the_answer_is_403(idle: Service):
    headers = {"Authorization": f"Bearer {token_for(idle.data_dir, EXPORT)}"}
    with httpx.Client(base_url=idle.url, headers=headers) as client:
        answer = client.post("/users/ada/erasePersonalData", json={})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "Authorization_RequestDenied"


def test_a_dry_run_needs_user_export_all_too_as_its_package_holds_the_person_s_rows(
    idle: Service,
):
    """PersonalData.Erase.All alone starts an erasure (the test above) but not a dry run,
    whose package holds the rows it would change: that is a 403 naming User.Export.All, and
    nothing is started. (With both, as the other tests' tokens have, a dry run starts.)"""
    eraser = {"Authorization": f"Bearer {token_for(idle.data_dir, ERASE, subject='eraser')}"}
    of_bob = {"$filter": "userId eq 'bob'"}
    with idle.client() as client:
        before = client.get("/dataPolicyOperations", params=of_bob).json()["value"]
    with httpx.Client(base_url=idle.url, headers=eraser) as client:
        refused = client.post("/users/bob/erasePersonalData", json={"dryRun": True})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
    assert EXPORT in refused.json()["error"]["message"]
    with idle.client() as client:
        assert client.get("/dataPolicyOperations", params=of_bob).json()["value"] == before


def test_an_unknown_user_is_404_and_bad_bodies_400(idle: Service):
    answer = _erase(idle, "nobody")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "Request_ResourceNotFound"
    assert _erase(idle, "bob", dryRun="yes").status_code == 400
    assert _erase(idle, "bob", colour=1).status_code == 400
    with idle.client() as client:  # which one would it be? Neither: refused
        twice = client.post(
            "/users/bob/erasePersonalData",
            content=b'{"dryRun": true, "dryRun": false}',
            headers={"Content-Type": "application/json"},
        )
    assert twice.status_code == 400
    assert "'dryRun' more than once" in twice.json()["error"]["message"]


def test_a_parameter_in_the_query_string_is_refused_not_ignored(idle: Service):
    """`?dryRun=true` with no body would be ignored and so erase for real (an empty body is
    `{"dryRun": false}`): a 400 naming the parameter, whatever its case, and nothing started
    (review finding)."""
    of_bob = {"$filter": "userId eq 'bob'"}
    with idle.client() as client:
        before = client.get("/dataPolicyOperations", params=of_bob).json()["value"]
        for query in ("dryRun=true", "DRYRUN=1", "$dryrun=true", "storageLocation=/x"):
            answer = client.post(f"/users/bob/erasePersonalData?{query}")
            assert answer.status_code == 400, query
            assert answer.json()["error"]["code"] == "BadRequest", query
            assert "JSON body, not in the query string" in answer.json()["error"]["message"]
        assert client.get("/dataPolicyOperations", params=of_bob).json()["value"] == before


def test_an_export_and_an_erasure_of_one_person_never_run_together(idle: Service):
    """The later one is refused with 409 while the other is unfinished; another person's
    erasure is not held up. Only PersonalData.Erase.All starts it (no User.Export.All)."""
    headers = {"Authorization": f"Bearer {token_for(idle.data_dir, ERASE)}"}
    with idle.client() as client:
        export = client.post(
            "/users/bob/exportPersonalData",
            json={"storageLocation": str(idle.data_dir / "exports")},
        )
        assert export.status_code == 202, export.text
    with httpx.Client(base_url=idle.url, headers=headers) as client:
        refused = client.post("/users/bob/erasePersonalData", json={})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "operationInProgress"
        assert "exportPersonalData" in refused.json()["error"]["message"]
        assert client.post("/users/ada/erasePersonalData", json={}).status_code == 202
    with idle.client() as client:
        again = client.post(
            "/users/ada/exportPersonalData",
            json={"storageLocation": str(idle.data_dir / "exports")},
        )
    assert again.status_code == 409


def test_a_request_id_used_for_an_export_or_a_dry_run_does_not_answer_an_erasure(
    tmp_path: Path,
):
    """A start's `client-request-id` is bound to what it asked for, an erasure and its dry-run
    flag included: an erasure sent with the id of an export (or of a dry run) of the same user
    and location is a 409 `IdempotencyKeyReused`, not a 202 with the export (or the dry run)
    that the caller would follow to `complete` and take the person for erased."""
    service = configured_app(tmp_path, erasure_config(tmp_path), "--workers", "0")
    location = str(service.data_dir / "exports")
    try:
        with service.client() as client:

            def start(user: str, action: str, key: str, **body: Any) -> httpx.Response:
                return client.post(
                    f"/users/{user}/{action}",
                    json={"storageLocation": location, **body},
                    headers={"client-request-id": key},
                )

            assert start("ada", "exportPersonalData", "k-export").status_code == 202
            assert start("bob", "erasePersonalData", "k-dry", dryRun=True).status_code == 202
            for user, key, body in (("ada", "k-export", {}), ("bob", "k-dry", {"dryRun": False})):
                refused = start(user, "erasePersonalData", key, **body)
                assert refused.status_code == 409, refused.text
                assert refused.json()["error"]["code"] == "IdempotencyKeyReused"
            again = start("bob", "erasePersonalData", "k-dry", dryRun=True)
            assert again.status_code == 202, again.text
            listed = client.get("/dataPolicyOperations").json()["value"]
            assert sorted(op["operationType"] for op in listed) == [
                "erasePersonalData",
                "exportPersonalData",
            ]
    finally:
        service.stop()


def test_each_operation_says_whether_it_is_a_dry_run_and_is_found_by_it(tmp_path: Path):
    """`dryRun` (docs/erasure.md, "Starting one"): true for a dry run, false for the erasure
    itself, null for an export; the same by id on the fast and the routed path, under
    `$select`, and in `$filter` and `$orderby`, so that `operationType eq 'erasePersonalData'
    and dryRun eq false` lists the erasures that change data. On its own it is no condition
    (a 400 saying how to compare it)."""
    config = erasure_config(tmp_path)
    with sqlite3.connect(tmp_path / "shop.sqlite3") as connection:
        connection.execute("INSERT INTO users VALUES ('carol', 'Carol', 'carol@example.org')")
    service = configured_app(tmp_path, config, "--workers", "0")
    location = {"storageLocation": str(service.data_dir / "exports")}
    try:
        with service.client() as client:
            started = {
                "dry": client.post("/users/ada/erasePersonalData", json={"dryRun": True}),
                "real": client.post("/users/bob/erasePersonalData", json={"dryRun": False}),
                "export": client.post("/users/carol/exportPersonalData", json=location),
            }
            names = {}
            for name, answer in started.items():
                assert answer.status_code == 202, answer.text
                fast = client.get(answer.headers["Location"])
                routed = client.get(answer.headers["Location"], headers=NO_MATCH)
                assert fast.status_code == routed.status_code == 200
                assert fast.content == routed.content
                assert fast.json()["dryRun"] is {"dry": True, "real": False, "export": None}[name]
                names[fast.json()["id"]] = name

            def listed(**params: str) -> list[str]:
                page = client.get("/dataPolicyOperations", params=params)
                assert page.status_code == 200, page.text
                return [names[item["id"]] for item in page.json()["value"]]

            erasures = "operationType eq 'erasePersonalData'"
            assert listed(**{"$filter": f"{erasures} and dryRun eq false"}) == ["real"]
            assert listed(**{"$filter": f"{erasures} and dryRun eq true"}) == ["dry"]
            assert listed(**{"$filter": "dryRun eq null"}) == ["export"]
            assert listed(**{"$filter": "dryRun ne true", "$orderby": "dryRun"}) == [
                "export",  # null first ascending
                "real",
            ]
            assert listed(**{"$orderby": "dryRun desc"}) == ["dry", "real", "export"]
            selected = client.get(
                "/dataPolicyOperations", params={"$select": "dryRun", "$orderby": "dryRun"}
            ).json()["value"]
            assert [item["dryRun"] for item in selected] == [None, False, True]
            assert set(selected[0]) == {"@odata.type", "@odata.etag", "dryRun"}
            alone = client.get("/dataPolicyOperations", params={"$filter": "not dryRun"})
            assert alone.status_code == 400, alone.text
            assert "dryRun eq true, or dryRun eq false" in alone.json()["error"]["message"]
    finally:
        service.stop()


@pytest.fixture(scope="module")
def approving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("approval")
    config = erasure_config(root).replace('approval = "none"', 'approval = "required"')
    service = start_configured(root, config)
    yield service
    service.stop()


def test_the_requester_through_another_client_application_cannot_approve(approving: Service):
    """The principal is the token's subject: the requester signed in to another application
    (another `azp`, the same `sub`) is refused as the requester is, and the erasure waits."""
    requester = {"Authorization": f"Bearer {token_for(approving.data_dir, ERASE, EXPORT)}"}
    elsewhere = sign(
        signing_key(approving.data_dir), claims(sub="tests", azp="console", roles=[ERASE])
    )
    with httpx.Client(base_url=approving.url, headers=requester) as client:
        url = client.post("/users/bob/erasePersonalData", json={}).headers["Location"]
        refused = client.post(f"{url}/approve", headers={"Authorization": f"Bearer {elsewhere}"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
        assert client.get(url).json()["approval"]["status"] == "pending"
        assert client.delete(url).status_code == 204


def test_user_export_all_alone_cannot_change_or_delete_an_erasure(approving: Service):
    """Deleting an erasure cancels it, or deletes its package (the receipt); moving it moves
    where its package goes: both need PersonalData.Erase.All, as starting one does. A token with
    only User.Export.All (which may read it) is a 403 and the erasure is unchanged."""
    requester = {"Authorization": f"Bearer {token_for(approving.data_dir, ERASE, EXPORT)}"}
    exporter = {"Authorization": f"Bearer {token_for(approving.data_dir, EXPORT, subject='x')}"}
    with httpx.Client(base_url=approving.url, headers=requester) as client:
        url = client.post("/users/bob/erasePersonalData", json={}).headers["Location"]
        before = client.get(url).json()
        elsewhere = {"storageLocation": str(approving.data_dir / "exports" / "elsewhere")}
        for refused in (
            client.delete(url, headers=exporter),
            client.patch(url, json=elsewhere, headers=exporter),
        ):
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
            assert "PersonalData.Erase.All" in refused.json()["error"]["message"]
        assert client.get(url).json() == before
        assert client.patch(url, json=elsewhere).status_code == 200
        assert client.delete(url).status_code == 204


def test_an_approval_with_if_match_approves_only_the_version_its_approver_read(
    approving: Service,
):
    """The approver read the erasure (its ETag); the requester moved it meanwhile: the approval
    is a 412 and the erasure still waits (the store's tests approve with the new one)."""
    requester = {"Authorization": f"Bearer {token_for(approving.data_dir, ERASE, EXPORT)}"}
    approver = {"Authorization": f"Bearer {token_for(approving.data_dir, ERASE, subject='dpo')}"}
    with httpx.Client(base_url=approving.url, headers=requester) as client:
        url = client.post("/users/bob/erasePersonalData", json={}).headers["Location"]
        read = client.get(url).headers["ETag"]
        elsewhere = {"storageLocation": str(approving.data_dir / "exports" / "elsewhere")}
        assert client.patch(url, json=elsewhere).headers["ETag"] != read
        stale = client.post(f"{url}/approve", headers={**approver, "If-Match": read})
        assert stale.status_code == 412, stale.text
        assert stale.json()["error"]["code"] == "PreconditionFailed"
        assert client.get(url).json()["approval"]["status"] == "pending"
        assert client.delete(url).status_code == 204


def test_a_required_approval_holds_the_erasure_until_another_principal_gives_it(
    approving: Service,
):
    before = _rows(approving)
    requester = {"Authorization": f"Bearer {token_for(approving.data_dir, ERASE, EXPORT)}"}
    approver = {"Authorization": f"Bearer {token_for(approving.data_dir, ERASE, subject='dpo')}"}
    with httpx.Client(base_url=approving.url, headers=requester) as client:
        url = client.post("/users/ada/erasePersonalData", json={}).headers["Location"]
        time.sleep(2)  # the worker polls every second: it would have claimed it by now
        assert client.get(url).json()["status"] == "notStarted"
        assert _rows(approving) == before
        refused = client.post(f"{url}/approve")
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
    with httpx.Client(base_url=approving.url, headers=approver) as client:
        assert client.post(f"{url}/approve").status_code == 204
        assert client.post(f"{url}/approve").status_code == 409  # once
    done = _finished(approving, url)
    assert done["status"] == "complete", done
    assert _rows(approving)["orders"] == [(3, "bob", 30)]
    with zipfile.ZipFile(Path(done["storageLocation"]) / f"{done['id']}.zip") as archive:
        manifest = orjson.loads(archive.read("manifest.json"))
        receipt = orjson.loads(archive.read("receipt.json"))
    # docs/package-format.md: who requested and approved, spelled out in both
    assert manifest["requestedBy"]["subject"] == receipt["requestedBy"]["subject"] == "tests"
    assert manifest["approvedBy"] == receipt["approvedBy"]
    assert manifest["approvedBy"]["subject"] == "dpo"
    assert manifest["approvedAt"].endswith("Z")
    assert receipt["approvedAt"] == manifest["approvedAt"]
