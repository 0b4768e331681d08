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


@pytest.mark.parametrize(
    "location",
    [
        "relative/path",
        "https://example.com/container",
        "ftp://example.com/x",
        "/etc",
        "{data}/demo/shop.sqlite3",
    ],
)
def test_creating_or_updating_an_operation_with_such_a_location_names_the_target(
    api, demo_service, location
):
    """docs/graph-compatibility.md: a refused location's error has `target` `storageLocation`
    for create and PATCH as for the actions, so a client shows the field at fault."""
    location = location.replace("{data}", str(demo_service.data_dir))
    created = api.post("/dataPolicyOperations", json={"userId": ADA, "storageLocation": location})
    fresh = api.post("/dataPolicyOperations", json={"userId": ADA})
    assert fresh.status_code == 201, fresh.text
    updated = api.patch(fresh.headers["location"], json={"storageLocation": location})
    for response in (created, updated):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"].startswith("StorageLocation"), error
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


def test_a_user_is_read_by_user_principal_name_ignoring_case(api, demo_service):
    body = api.get("/users/Ada.Lovelace@CONTOSO.example").json()
    assert body["id"] == ADA
    assert body["@odata.context"] == f"{demo_service.url}/$metadata#users/$entity"
    assert api.get("/users/ada.lovelace@contoso.example.org").status_code == 404


def test_a_data_subject_is_found_by_mail_and_counted(api, demo_service):
    """The data-subject request arrives as an e-mail address: `$filter=mail eq` finds the
    person whatever the case of the address, `$count=true` and `/users/$count` count."""
    body = api.get(
        "/users", params={"$filter": "mail eq 'ADA.Lovelace@example.com'", "$count": "true"}
    ).json()
    assert [user["id"] for user in body["value"]] == [ADA]
    assert body["@odata.count"] == 1
    assert api.get("/users/$count").text == "16"
    response = api.get("/users/$count", params={"$filter": "startswith(mail, 'a')"})
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == str(
        len(api.get("/users", params={"$filter": "startswith(mail, 'a')"}).json()["value"])
    )


def test_users_are_ordered_by_display_name_across_pages(api):
    names = []
    page = api.get("/users", params={"$orderby": "displayName", "$top": "5"}).json()
    names += [user["displayName"] for user in page["value"]]
    while "@odata.nextLink" in page:
        page = api.get(page["@odata.nextLink"]).json()
        names += [user["displayName"] for user in page["value"]]
    assert len(names) == 16
    assert names == sorted(names, key=str.lower)


def test_a_preferred_page_size_pages_the_users_as_it_pages_operations(api):
    """`Prefer: odata.maxpagesize` on /users as on operations' lists
    (docs/graph-compatibility.md): the page size applied and said in `Preference-Applied`,
    carried by the next links (a client following them need not send it again), `$top`
    winning over it."""
    first = api.get(
        "/users", params={"$orderby": "displayName"}, headers={"Prefer": "odata.maxpagesize=6"}
    )
    assert first.headers["preference-applied"] == "odata.maxpagesize=6"
    pages = [first.json()]
    while "@odata.nextLink" in pages[-1]:
        following = api.get(pages[-1]["@odata.nextLink"])  # without the header
        assert "preference-applied" not in following.headers
        pages.append(following.json())
    assert [len(page["value"]) for page in pages] == [6, 6, 4]
    everyone = api.get("/users", params={"$orderby": "displayName"}).json()["value"]
    assert [u["id"] for page in pages for u in page["value"]] == [u["id"] for u in everyone]
    topped = api.get("/users", params={"$top": "3"}, headers={"Prefer": "odata.maxpagesize=6"})
    assert len(topped.json()["value"]) == 3
    assert "preference-applied" not in topped.headers


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "$filter=manager eq 'x'",
            "Could not find a property named 'manager' on type 'microsoft.graph.user'.",
        ),
        ("$filter=mail eq", "Syntax error in $filter"),
        ("$filter=mail eq 1", "A value of type Edm.String is needed for 'mail'"),
        ("$orderby=jobTitle", "Could not find a property named 'jobTitle'"),
        ("$select=id,jobTitle", "Could not find a property named 'jobTitle'"),
        ("$search=ada", "$search on users must name the property to search"),
        (
            '$search="userPrincipalName:ada"',
            "The property 'userPrincipalName' of type 'microsoft.graph.user' cannot be searched",
        ),
        ('$search="displayName:ada', "unbalanced quotes"),
        ("$skip=1", "Query option '$skip' is not allowed on this request"),
        ("$skiptoken=abc", "The $skiptoken is not valid"),
        ("$top=0x10", "expected a non-negative integer"),
        ("$top=0", "$top must be an integer from 1 to 999."),
        ("$top=1000", "the maximum is 999"),
    ],
)
def test_bad_directory_queries_are_graph_400s_that_say_why(api, query, message):
    response = api.get(f"/users?{query}")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert message in error["message"]


def test_a_skiptoken_of_another_order_is_refused(api):
    page = api.get("/users", params={"$top": "2", "$orderby": "displayName"}).json()
    token = page["@odata.nextLink"].split("$skiptoken=")[1]
    response = api.get(f"/users?$top=2&$orderby=displayName desc&$skiptoken={token}")
    assert response.status_code == 400
    assert "different $orderby" in response.json()["error"]["message"]
