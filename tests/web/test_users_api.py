"""/users and exportPersonalData over HTTP, against the demo directory and real exports."""

from __future__ import annotations

import os
import time
import uuid

import httpx
import pytest

from datapolicy.demo import demo_user_id
from datapolicy.engine.verify import verify_package

ADA = demo_user_id(0)


@pytest.fixture
def api(demo_service):
    with demo_service.client() as http:
        yield http


def wait_until_finished(api: httpx.Client, url: str, timeout: float = 30) -> list[dict]:
    """Poll an operation until it ends; returns every state seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        seen.append(api.get(url).json())
        if seen[-1]["status"] in ("complete", "failed"):
            return seen
        assert time.monotonic() < deadline, seen[-1]
        time.sleep(0.1)


def test_users_are_listed_in_pages_in_graphs_shape(api, demo_service):
    first = api.get("/users", params={"$top": "5"}).json()
    assert first["@odata.context"] == f"{demo_service.url}/$metadata#users"
    assert len(first["value"]) == 5
    assert set(first["value"][0]) == {
        "@odata.type",
        "id",
        "displayName",
        "mail",
        "userPrincipalName",
    }
    ids = [user["id"] for user in first["value"]]
    page = first
    while "@odata.nextLink" in page:
        page = api.get(page["@odata.nextLink"]).json()
        ids += [user["id"] for user in page["value"]]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids)) == 16


def test_a_user_is_read_by_id_with_select(api, demo_service):
    body = api.get(f"/users/{ADA}", params={"$select": "displayName,mail"}).json()
    assert body == {
        "@odata.context": f"{demo_service.url}/$metadata#users(displayName,mail)/$entity",
        "@odata.type": "#microsoft.graph.user",
        "displayName": "Ada Lovelace",
        "mail": "ada.lovelace@example.com",
    }


def test_unknown_users_are_graphs_404(api):
    response = api.get(f"/users/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "Request_ResourceNotFound"
    response = api.post(
        f"/users/{uuid.uuid4()}/exportPersonalData", json={"storageLocation": "/nowhere"}
    )
    assert response.status_code == 404
    response = api.post("/dataPolicyOperations", json={"userId": "nobody"})
    assert response.status_code == 404


def test_export_personal_data_is_202_with_location_and_completes(api, demo_service):
    location = f"{demo_service.data_dir}/exports/{uuid.uuid4().hex}"
    response = api.post(f"/users/{ADA}/exportPersonalData", json={"storageLocation": location})
    assert response.status_code == 202
    assert response.content == b""
    assert response.headers["retry-after"] == "60"
    operation_url = response.headers["location"]
    assert operation_url.startswith(f"{demo_service.url}/dataPolicyOperations/")
    assert response.headers["operation-location"] == operation_url
    states = wait_until_finished(api, operation_url)
    final = states[-1]
    assert final["status"] == "complete", final
    assert final["progress"] == 100
    assert final["completedDateTime"] is not None
    progress = [state["progress"] for state in states]
    assert progress == sorted(progress), "progress never goes down"
    assert verify_package(f"{location}/{final['id']}.zip") == []


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("relative/path", "absolute path"),
        ("https://example.com/container", "must be an Azure Blob container SAS URL"),
        ("ftp://example.com/x", "Storage Location is not valid"),
        ("file://host/share/x", "without a host"),
        ("/etc", "not inside an allowed root"),
        ("{data}/exports/../../escape", "may not contain '..'"),
        ("{data}/exports/a\u0000b", "NUL"),
        ("{data}/demo/shop.sqlite3", "not inside an allowed root"),
        ("", "Storage Location is not valid"),
    ],
)
@pytest.mark.parametrize("action", ["exportPersonalData", "erasePersonalData"])
def test_storage_locations_that_cannot_be_used_are_400_with_the_reason(
    api, demo_service, location, reason, action
):
    """Refused by the checks in the route (an empty location) or in the targets
    (engine/targets/), either way with `target` `storageLocation` (docs/security.md)."""
    location = location.replace("{data}", str(demo_service.data_dir))
    body = {
        "storageLocation": location,
        **({"dryRun": True} if action == "erasePersonalData" else {}),
    }
    response = api.post(f"/users/{ADA}/{action}", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "StorageLocationInvalid" or error["code"].startswith("StorageLocation")
    assert reason in error["message"]
    assert error["target"] == "storageLocation"


def test_a_symlink_out_of_the_root_is_refused(api, demo_service, tmp_path):
    link = demo_service.data_dir / "exports" / f"link-{uuid.uuid4().hex}"
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(tmp_path, link)
    response = api.post(f"/users/{ADA}/exportPersonalData", json={"storageLocation": str(link)})
    assert response.status_code == 400
    assert "not inside an allowed root" in response.json()["error"]["message"]
    assert list(tmp_path.iterdir()) == []


def test_a_repeated_start_with_the_same_request_id_is_one_export(api, demo_service):
    location = f"{demo_service.data_dir}/exports/{uuid.uuid4().hex}"
    headers = {"client-request-id": str(uuid.uuid4())}
    first = api.post(
        f"/users/{ADA}/exportPersonalData", json={"storageLocation": location}, headers=headers
    )
    again = api.post(
        f"/users/{ADA}/exportPersonalData", json={"storageLocation": location}, headers=headers
    )
    other = api.post(
        f"/users/{ADA}/exportPersonalData",
        json={"storageLocation": location},
        headers={"operation-id": str(uuid.uuid4())},
    )
    assert first.headers["location"] == again.headers["location"]
    assert other.headers["location"] != first.headers["location"]


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 400), ({"storageLocation": 5}, 400), ({"storageLocation": "/x", "extra": 1}, 400)],
)
def test_bad_action_bodies_are_400(api, body, status):
    assert api.post(f"/users/{ADA}/exportPersonalData", json=body).status_code == status
