"""`GET /dataPolicyOperations/{id}/package`: a complete export's package from its local
directory (each download audited), and a Graph-style 404 whenever there is no such file to
hand out."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from conftest import Service, service_database
from datapolicy.demo import demo_user_id
from datapolicy.engine.verify import verify_package
from datapolicy.store.audit import AuditAction, AuditFilter, open_audit_log

pytestmark = pytest.mark.operation_store  # starts services on the test store

EXPORT_TIMEOUT_S = 30


def _complete_export(http: httpx.Client, user_id: str) -> dict[str, object]:
    operation = http.post("/dataPolicyOperations", json={"userId": user_id}).json()
    deadline = time.monotonic() + EXPORT_TIMEOUT_S
    while operation["status"] != "complete":
        assert operation["status"] in ("notStarted", "running"), operation
        assert time.monotonic() < deadline, operation
        time.sleep(0.05)
        operation = http.get(f"/dataPolicyOperations/{operation['id']}").json()
    return operation


def test_a_complete_local_package_is_served_as_an_uncached_zip_attachment(
    demo_service: Service, tmp_path: Path
):
    with demo_service.client() as http:
        operation = _complete_export(http, demo_user_id(1))
        url = f"/dataPolicyOperations/{operation['id']}/package"
        response = http.get(url)
        head = http.head(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{operation["id"]}.zip"'
    )
    package = tmp_path / "package.zip"
    package.write_bytes(response.content)
    assert verify_package(package) == []
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(response.content))


def test_a_download_is_audited_as_package_downloaded_before_it_is_sent(demo_service: Service):
    with demo_service.client() as http:
        operation = _complete_export(http, demo_user_id(3))
        response = http.get(f"/dataPolicyOperations/{operation['id']}/package")
    assert response.status_code == 200
    with service_database(demo_service.data_dir) as database:
        log = open_audit_log(database)
        try:
            (entry,) = log.entries(
                AuditFilter(operation_id=operation["id"], action=AuditAction.PACKAGE_DOWNLOADED)
            )
        finally:
            log.close()
    assert entry.record.request_id == response.headers["request-id"]
    assert (entry.record.subject, entry.record.user_id) == ("tests", demo_user_id(3))


def test_a_package_gone_from_disk_is_a_404_not_a_500(demo_service: Service):
    with demo_service.client() as http:
        operation = _complete_export(http, demo_user_id(2))
        Path(str(operation["storageLocation"]), f"{operation['id']}.zip").unlink()
        response = http.get(f"/dataPolicyOperations/{operation['id']}/package")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "ResourceNotFound"
    assert "not on this server's disk" in error["message"]


def test_a_refused_patch_and_a_package_get_create_no_directory(demo_service: Service):
    """Checks change nothing: a PATCH the store refuses (409: the export is complete) does not
    make the directory it named, and a download whose directory is gone does not make it
    again (both used to, checking the location by preparing it)."""
    with demo_service.client() as http:
        first = _complete_export(http, demo_user_id(4))
        directory = Path(str(first["storageLocation"])) / f"own-{first['id']}"
        response = http.post(
            "/dataPolicyOperations",
            json={"userId": demo_user_id(4), "storageLocation": str(directory)},
        )
        assert response.status_code == 201, response.text
        operation = response.json()
        url = f"/dataPolicyOperations/{operation['id']}"
        deadline = time.monotonic() + EXPORT_TIMEOUT_S
        while http.get(url).json()["status"] != "complete":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        moved = directory / "moved"
        refused = http.patch(url, json={"storageLocation": str(moved)})
        assert refused.status_code == 409, refused.text
        assert not moved.exists()
        (directory / f"{operation['id']}.zip").unlink()
        directory.rmdir()
        gone = http.get(f"{url}/package")
    assert gone.status_code == 404, gone.text
    assert not directory.exists()


def test_an_operation_not_yet_complete_has_no_package(client: httpx.Client, user_id: str):
    operation = client.post("/dataPolicyOperations", json={"userId": user_id}).json()
    response = client.get(f"/dataPolicyOperations/{operation['id']}/package")
    assert response.status_code == 404
    assert "is notStarted" in response.json()["error"]["message"]


def test_unknown_operations_and_query_options_are_refused_in_graphs_shape(
    client: httpx.Client, user_id: str
):
    missing = client.get("/dataPolicyOperations/no-such-operation/package")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ResourceNotFound"
    operation = client.post("/dataPolicyOperations", json={"userId": user_id}).json()
    option = client.get(f"/dataPolicyOperations/{operation['id']}/package?$select=id")
    assert option.status_code == 400
    assert option.json()["error"]["code"] == "BadRequest"
