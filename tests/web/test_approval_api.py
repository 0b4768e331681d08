"""`approval` over HTTP, in-process on the test store (docs/erasure.md, "Approval"): with
`[erasure] approval = "required"` an erasure says it is pending from its start, by id (fast and
routed path alike), in lists and under `$select`; once another principal approved it, who and
when; who requested it throughout, and with `dryRun` what it would do; exports and erasures that
need no approval have none. As the OpenAPI description and `$metadata` declare it, unchanged by
the Graph profile, neither filterable nor orderable, never taken from a client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from approvals import serve
from conftest import AppService, token_for
from datapolicy.auth.permissions import ERASE, EXPORT

pytestmark = pytest.mark.operation_store  # starts services on the test store

REQUESTER = {"application": "datapolicy-cli", "subject": "tests"}  # `headers`' default
PENDING = {
    "status": "pending",
    "requestedBy": REQUESTER,
    "approvedBy": None,
    "approvedDateTime": None,
}
NO_MATCH = {"if-none-match": 'W/"no-such-etag"'}  # a conditional GET: the routed endpoint


def headers(service: AppService, *permissions: str, subject: str = "tests") -> dict[str, str]:
    token = token_for(service.data_dir, *permissions, subject=subject)
    return {"Authorization": f"Bearer {token}"}


def erase(client: httpx.Client, user: str) -> str:
    response = client.post(f"/users/{user}/erasePersonalData", json={"dryRun": True})
    assert response.status_code == 202, response.text
    return response.headers["Location"]


@pytest.fixture
def required(tmp_path: Path) -> Iterator[AppService]:
    service = serve(tmp_path, "required")
    yield service
    service.stop()


def own(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("@")}


def test_an_erasure_says_it_waits_for_approval_then_who_approved_it_and_when(required):
    requester = headers(required, ERASE, EXPORT)
    approver = headers(required, ERASE, EXPORT, subject="dpo")
    with required.client(headers=requester) as client:
        url = erase(client, "ada")
        export = client.post("/dataPolicyOperations", json={"userId": "bob"}).json()
        fast = client.get(url)
        routed = client.get(url, headers=NO_MATCH)
        assert fast.status_code == routed.status_code == 200
        assert fast.content == routed.content
        waiting = fast.json()
        assert (waiting["status"], waiting["approval"]) == ("notStarted", PENDING)
        assert export["approval"] is None
        assert client.get(f"/dataPolicyOperations/{export['id']}").json()["approval"] is None
    with required.client(headers=approver) as client:
        before = datetime.now().astimezone()
        assert client.post(f"{url}/approve").status_code == 204
        after = datetime.now().astimezone()
        approved = client.get(url).json()
    assert approved["@odata.etag"] != waiting["@odata.etag"]
    approval = approved["approval"]
    assert approval["status"] == "approved"
    assert approval["requestedBy"] == REQUESTER
    assert approval["approvedBy"] == {"application": "datapolicy-cli", "subject": "dpo"}
    assert approval["approvedDateTime"].endswith("Z")
    moment = datetime.fromisoformat(approval["approvedDateTime"])
    assert before.replace(microsecond=0) <= moment <= after
    with required.client(headers=requester) as client:
        assert client.get(url, headers=NO_MATCH).json() == approved
        listed = client.get("/dataPolicyOperations").json()["value"]
        assert {item["id"]: item["approval"] for item in listed} == {
            approved["id"]: approval,
            export["id"]: None,
        }
        selected = client.get(
            "/dataPolicyOperations", params={"$select": "operationType,approval"}
        ).json()["value"]
        assert [own(item) for item in selected] == [
            {"operationType": "erasePersonalData", "approval": approval},
            {"operationType": "exportPersonalData", "approval": None},
        ]
        one = client.get(url, params={"$select": "approval"}).json()
        assert own(one) == {"approval": approval}


def test_an_approver_sees_what_it_approves_a_dry_run_or_the_erasure_and_who_asked(required):
    """The trust problem approval leaves open unless the operation says it: an approver must
    not take the erasure itself for a harmless dry run. Each waiting erasure says which it is
    (`dryRun`) and who requested it (`approval.requestedBy`, the requester's token: the
    principal the approver cannot be), by id on the fast and the routed path and in a list;
    `operationType eq 'erasePersonalData' and dryRun eq false` lists only the real ones; the
    requester stays named once approved."""
    alice = headers(required, ERASE, EXPORT, subject="alice")
    bob = headers(required, ERASE, EXPORT, subject="bob")
    with required.client(headers=alice) as client:
        dry = erase(client, "ada")  # a dry run
    with required.client(headers=bob) as client:
        real = client.post("/users/bob/erasePersonalData", json={"dryRun": False})
        assert real.status_code == 202, real.text
    with required.client(headers=headers(required, ERASE, EXPORT, subject="dpo")) as client:
        seen = {}
        for url in (dry, real.headers["Location"]):
            fast, routed = client.get(url), client.get(url, headers=NO_MATCH)
            assert fast.content == routed.content
            seen[fast.json()["id"]] = fast.json()
        kinds = {
            (body["dryRun"], body["approval"]["status"], body["approval"]["requestedBy"]["subject"])
            for body in seen.values()
        }
        assert kinds == {(True, "pending", "alice"), (False, "pending", "bob")}
        for body in seen.values():
            assert body["approval"]["requestedBy"]["application"] == "datapolicy-cli"
        waiting = "operationType eq 'erasePersonalData' and status eq 'notStarted'"
        listed = client.get(
            "/dataPolicyOperations",
            params={"$filter": f"{waiting} and dryRun eq false", "$select": "dryRun,approval"},
        ).json()["value"]
        assert [own(item) for item in listed] == [
            {
                "dryRun": False,
                "approval": seen[real.headers["Location"].rsplit("/", 1)[1]]["approval"],
            }
        ]
        assert client.post(f"{real.headers['Location']}/approve").status_code == 204
        approved = client.get(real.headers["Location"]).json()["approval"]
    assert approved["status"] == "approved"
    assert approved["requestedBy"] == {"application": "datapolicy-cli", "subject": "bob"}
    assert approved["approvedBy"] == {"application": "datapolicy-cli", "subject": "dpo"}


def test_an_erasure_that_needs_no_approval_has_none(tmp_path):
    service = serve(tmp_path, "none")
    try:
        with service.client(headers=headers(service, ERASE, EXPORT)) as client:
            url = erase(client, "ada")
            assert client.get(url).json()["approval"] is None
    finally:
        service.stop()


def test_the_served_entity_is_valid_against_the_served_description(required):
    with required.client(headers=headers(required, ERASE, EXPORT)) as client:
        url = erase(client, "ada")
        document = client.get("/openapi.json").json()
        waiting = client.get(url).json()
    with required.client(headers=headers(required, ERASE, EXPORT, subject="dpo")) as client:
        client.post(f"{url}/approve").raise_for_status()
        approved = client.get(url).json()
    validator = Draft202012Validator(
        {
            "$ref": "#/components/schemas/microsoft.graph.dataPolicyOperation",
            "components": document["components"],
        }
    )
    for body in (waiting, approved):
        assert list(validator.iter_errors(body)) == []
    assert list(validator.iter_errors({**waiting, "approval": {"status": "maybe"}}))
    parameters = document["components"]["parameters"]
    assert "approval" in parameters["datapolicy.select"]["schema"]["items"]["enum"]


def test_metadata_declares_the_approval_type(required):
    with required.client(headers={}) as client:
        csdl = client.get("/$metadata").text
    assert '<Property Name="approval" Type="microsoft.graph.dataPolicyOperationApproval"' in csdl
    assert '<ComplexType Name="dataPolicyOperationApproval">' in csdl
    assert '<Property Name="approvedBy" Type="microsoft.graph.dataPolicyOperationPrincipal"/>' in (
        csdl
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"$filter": "approval eq null"}, "cannot be used in $filter"),
        ({"$filter": "approval/status eq 'pending'"}, "not the fields of a complex property"),
        ({"$orderby": "approval"}, "cannot be used in $orderby"),
    ],
)
def test_approval_is_neither_filterable_nor_orderable(required, query, message):
    with required.client(headers=headers(required, EXPORT)) as client:
        response = client.get("/dataPolicyOperations", params=query)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BadRequest"
    assert message in response.json()["error"]["message"]


def test_a_client_cannot_set_the_approval(required):
    with required.client(headers=headers(required, EXPORT)) as client:
        refused = client.post("/dataPolicyOperations", json={"userId": "ada", "approval": PENDING})
        assert refused.status_code == 400, refused.text
        assert "'approval' cannot be set" in refused.json()["error"]["message"]
        created = client.post("/dataPolicyOperations", json={"userId": "ada", "approval": None})
        assert created.status_code == 201, created.text
        url = f"/dataPolicyOperations/{created.json()['id']}"
        patched = client.patch(url, json={"approval": PENDING})
        assert patched.status_code == 400, patched.text
        echoed = client.patch(url, json={"approval": None, "storageLocation": "x"})
        assert "'approval'" not in echoed.text


def test_the_graph_profile_shows_the_approval_unchanged(tmp_path):
    service = serve(tmp_path, "required", "--profile", "graph")
    try:
        with service.client(headers=headers(service, ERASE, EXPORT)) as client:
            url = erase(client, "ada")
            body = client.get(url).json()
        assert (body["status"], body["approval"]) == ("running", PENDING)
    finally:
        service.stop()
