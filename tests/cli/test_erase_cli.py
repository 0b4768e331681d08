"""`datapolicy erase` against `serve --demo` (which ships erasure rules): a dry run and then
the erasure, each followed with --wait, ending with `export`'s statuses; an export afterwards
holds no orders and only masked account values."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from commands import against, datapolicy, json_output

from conftest import ProcessService, start_service, store_args

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.operation_store,
]  # the CLI talks to a `serve` process on its port


@pytest.fixture
def fresh_service(tmp_path: Path) -> Iterator[ProcessService]:
    """A server of the test's own, on an empty store, exporting from the demo shop."""
    running = start_service(tmp_path / "data", "--demo")
    yield running
    running.stop()


def test_a_dry_run_then_the_erasure_of_a_demo_user(fresh_service: ProcessService):
    with fresh_service.client() as http:
        person = http.get("/users", params={"$top": "1"}).json()["value"][0]
    dry = datapolicy("erase", person["id"], "--dry-run", "--wait", *against(fresh_service))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("complete: ")
    assert Path(dry.stdout.removeprefix("complete: ").strip()).is_file()

    done = json_output(
        datapolicy("erase", person["id"], "--wait", "--json", *against(fresh_service))
    )
    assert (done["status"], done["operationType"]) == ("complete", "erasePersonalData")
    trail = datapolicy(
        "audit",
        "list",
        "--operation",
        done["id"],
        "--json",
        "--data-dir",
        str(fresh_service.data_dir),
        *store_args(fresh_service.data_dir),
    )
    entries = [entry for entry in json_output(trail) if entry["action"].startswith("erasure.")]
    actions = [entry["action"] for entry in entries]
    # The worker's entries carry the id of the request that started the erasure.
    assert entries[0]["requestId"]
    assert {entry["requestId"] for entry in entries} == {entries[0]["requestId"]}
    assert actions == [
        "erasure.requested",
        "erasure.sourceCommitted",  # shop
        "erasure.sourceCommitted",  # uploads
        "erasure.completed",
    ]

    destination = fresh_service.data_dir / "exports"
    exported = datapolicy(
        "export", person["id"], "--to", str(destination), "--wait", *against(fresh_service)
    )
    assert exported.returncode == 0, exported.stderr
    package = Path(exported.stdout.removeprefix("complete: ").strip())
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        users = [
            orjson.loads(line) for line in archive.read("records/shop/users.jsonl").splitlines()
        ]
        orders = archive.read("records/shop/orders.jsonl")
    assert orders == b""
    assert not any(name.startswith("files/") for name in names)
    assert users[0]["display_name"] == "(erased)"
    assert users[0]["mail"].startswith("h:")
    assert person["mail"] not in str(users)

    # A minted token for `ops delete` holds PersonalData.Erase.All too, which deleting an
    # erasure needs (docs/security.md): the dry run's operation goes with its package.
    dry_package = Path(dry.stdout.removeprefix("complete: ").strip())
    deleted = datapolicy("ops", "delete", dry_package.stem, *against(fresh_service))
    assert deleted.returncode == 0, deleted.stderr
    with fresh_service.client() as http:
        assert http.get(f"/dataPolicyOperations/{dry_package.stem}").status_code == 404
