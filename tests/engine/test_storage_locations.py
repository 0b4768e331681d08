"""Where packages may go: a corpus of hostile storage locations, each refused with a 400 and a
Graph error body when the request arrives, with nothing written anywhere (the allowed root, the
directory beside it and a loopback HTTP server stand for every target), and the check made again
when the package is written (docs/security.md, "Where packages may go")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Service, start_app
from databases import SQLITE, store_database
from datapolicy.config import (
    AzureStorageConfig,
    EngineConfig,
    LocalStorageConfig,
    S3PresignedStorageConfig,
    StorageConfig,
)
from datapolicy.engine.service import ExportService
from datapolicy.engine.targets import StorageLocationError
from datapolicy.engine.targets.local import LocalTarget
from datapolicy.engine.worker import ExportContext, Worker
from datapolicy.model import OperationStatus
from datapolicy.store import OperationStore
from datapolicy.store.queue import OperationQueue
from datapolicy.store.tables import operations
from listeners import Listener, running_listener
from packages import package_bytes

pytestmark = pytest.mark.operation_store  # starts services on the test store

SAS = "?sv=2023-01-03&sr=c&sp=cw&sig=c2VjcmV0"
PRESIGNED = (
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20990101%2Fus-east-1%2Fs3"
    "%2Faws4_request&X-Amz-Date=20990101T000000Z&X-Amz-Expires=3600"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature=abc123"
)
ALLOWED_AZURE = ("allowed.example", "*.blob.core.windows.net", "*.internal", "*.localhost")
ALLOWED_PRESIGNED = ("s3.allowed.example",)


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    yield from running_listener()


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An allowed root with a symlink out of it, a FIFO and a file; a directory beside it."""
    base = tmp_path_factory.mktemp("locations")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "to-dev").symlink_to("/dev")
    (root / "loop").symlink_to("loop")
    os.mkfifo(root / "fifo")
    (root / "file").write_bytes(b"")
    return {"base": base, "root": root, "outside": outside}


def hostile_locations(root: Path, port: int) -> list[tuple[str, str]]:
    """(id, location): every one must be refused."""
    r = str(root)
    cases = [
        # local paths: traversal, symlinks out, devices, FIFOs, files, other machines
        ("dotdot", f"{r}/../outside"),
        ("dotdot-inner", f"{r}/a/../../outside"),
        ("file-url-dotdot", f"file://{r}/../outside"),
        ("file-url-encoded-dotdot", f"file://{r}/%2e%2e/outside"),
        ("absolute-escape", "/etc"),
        ("tmp", "/tmp"),
        ("symlink-escape", f"{r}/escape"),
        ("through-symlinked-dir", f"{r}/escape/deeper"),
        ("symlink-to-dev", f"{r}/to-dev/zero"),
        ("dev-zero", "/dev/zero"),
        ("dev-null-file-url", "file:///dev/null"),
        ("fifo", f"{r}/fifo"),
        ("regular-file", f"{r}/file"),
        ("file-url-host", "file://evil.example/share"),
        ("unc-backslashes", "\\\\host\\share"),
        ("unc-slashes", "//host/share"),
        ("backslash-in-path", f"{r}\\..\\outside"),
        ("relative", "relative/path"),
        ("home", "~/exports"),
        ("symlink-loop", f"{r}/loop/inside"),
        ("long-component", f"{r}/{'a' * 256}"),
        ("long-multibyte-component", f"{r}/{'é' * 128}"),
        ("nul", f"{r}/a\x00b"),
        ("newline", f"{r}/a\nb"),
        ("encoded-nul", f"file://{r}/a%00b"),
        ("leading-space", f" {r}"),
        # other schemes
        ("ftp", "ftp://allowed.example/x"),
        ("javascript", "javascript:alert(1)"),
        ("data", "data:text/plain,hello"),
        ("gopher", "gopher://allowed.example/"),
        ("smb", "smb://host/share"),
        ("ldap", "ldap://allowed.example/"),
        # oversized
        ("oversized", f"https://acct.blob.core.windows.net/cont{SAS}&x={'a' * 2100}"),
        ("oversized-path", "/" + "a" * 9000),
        # header / log injection
        ("crlf", f"https://acct.blob.core.windows.net/cont{SAS}\r\nX-Injected: 1"),
        ("encoded-crlf", f"https://acct.blob.core.windows.net/cont%0d%0a{SAS}"),
        ("tab", f"https://acct.blob.core.windows.net/cont\t{SAS}"),
        # userinfo tricks and confusing parses
        ("userinfo", f"https://allowed.example@evil.example/acct/cont{SAS}"),
        ("userinfo-password", f"https://user:pw@allowed.example/acct/cont{SAS}"),
        ("backslash-userinfo", f"https://acct.blob.core.windows.net\\@evil.example/cont{SAS}"),
        ("fragment-at", f"https://evil.example#@acct.blob.core.windows.net/cont{SAS}"),
        # urllib3, requests and botocore end the host at a backslash; urlsplit does not
        ("backslash-host", f"https://127.0.0.1:{port}\\.blob.core.windows.net/acct/cont{SAS}"),
        ("backslash-presigned", f"https://127.0.0.1:{port}\\.s3.allowed.example/b/k{PRESIGNED}"),
        ("percent-host", f"https://allowed%2eexample/acct/cont{SAS}"),
        ("percent-at-host", f"https://allowed.example%40evil.example/acct/cont{SAS}"),
        ("cyrillic-lookalike", f"https://\u0430llowed.example/acct/cont{SAS}"),
        ("fullwidth-lookalike", f"https://\uff41llowed.example/acct/cont{SAS}"),
        ("punycode-unlisted", f"https://xn--llowed-example-q9k.com/acct/cont{SAS}"),
        ("trailing-dot", f"https://allowed.example./acct/cont{SAS}"),
        ("wildcard-trailing-dot", f"https://acct.blob.core.windows.net./cont{SAS}"),
        ("unlisted", f"https://unlisted.example/acct/cont{SAS}"),
        ("unlisted-presigned", f"https://unlisted.example/bucket/key{PRESIGNED}"),
        ("explicit-port-on-wildcard", f"https://acct.blob.core.windows.net:8443/cont{SAS}"),
        ("bad-port", f"https://allowed.example:99999/acct/cont{SAS}"),
        ("plain-http", f"http://acct.blob.core.windows.net/cont{SAS}"),
    ]
    # metadata and loopback hosts, in every spelling, for both kinds of http(s) target; the
    # ones with the recorder's port would reach it if they were let through
    hosts = [
        "169.254.169.254",
        "metadata.google.internal",
        "metadata.localhost",
        "[fd00:ec2::254]",
        "[::1]",
        "127.0.0.1",
        "0.0.0.0",
        "127.1",
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "localhost",
        "localhost.",
        "10.0.0.1",
        "[fe80::1]",
    ]
    for host in hosts:
        for suffix, label in (("", ""), (f":{port}", ":port")):
            url = f"{host}{suffix}"
            cases.append((f"azure-{host}{label}", f"https://{url}/acct/cont{SAS}"))
            cases.append((f"http-{host}{label}", f"http://{url}/acct/cont{SAS}"))
            cases.append((f"presigned-{host}{label}", f"http://{url}/bucket/key{PRESIGNED}"))
    return cases


CORPUS_IDS = [case_id for case_id, _ in hostile_locations(Path("/r"), 1)]


def storage_config(root: Path) -> StorageConfig:
    return StorageConfig(
        local=LocalStorageConfig(roots=(root,)),
        azure=AzureStorageConfig(allowed_hosts=ALLOWED_AZURE),
        s3_presigned=S3PresignedStorageConfig(allowed_hosts=ALLOWED_PRESIGNED),
    )


def snapshot(*directories: Path) -> list[tuple[str, int]]:
    """Every path under the directories (symlinks not followed), with its size."""
    found = []
    for directory in directories:
        for path in sorted(directory.rglob("*")):
            found.append(
                (str(path), 0 if path.is_symlink() or path.is_dir() else path.lstat().st_size)
            )
    return found


@pytest.fixture(scope="module")
def api(layout: dict[str, Path]) -> Iterator[Service]:
    config = layout["base"] / "datapolicy.toml"

    def toml_list(values: tuple[str, ...]) -> str:
        return "[" + ", ".join(f'"{value}"' for value in values) + "]"

    config.write_text(
        f'[storage.local]\nroots = ["{layout["root"]}"]\n'
        f"[storage.azure]\nallowed_hosts = {toml_list(ALLOWED_AZURE)}\n"
        f"[storage.s3_presigned]\nallowed_hosts = {toml_list(ALLOWED_PRESIGNED)}\n"
    )
    running = start_app(layout["base"] / "data", "--workers", "0", "--config", str(config))
    yield running
    running.stop()


def test_the_corpus_has_no_duplicate_cases():
    assert len(CORPUS_IDS) == len(set(CORPUS_IDS))


@pytest.mark.parametrize("case_id", CORPUS_IDS)
def test_a_hostile_location_is_refused_at_post_with_nothing_written(
    case_id: str, api: Service, layout: dict[str, Path], listener: Listener
):
    """Each location is a 400 with Graph's error body naming storageLocation and saying why,
    on both routes that start an export; no operation is stored, nothing appears under the
    root or beside it, and the loopback server receives no request."""
    location = dict(hostile_locations(layout["root"], listener.port))[case_id]
    before = snapshot(layout["root"], layout["outside"])
    connections = listener.connections
    with api.client() as client:
        for path, body in (
            ("/dataPolicyOperations", {"userId": "alice", "storageLocation": location}),
            ("/users/alice/exportPersonalData", {"storageLocation": location}),
        ):
            response = client.post(path, json=body)
            assert response.status_code == 400, (path, response.text)
            error = response.json()["error"]
            assert error["code"].startswith("StorageLocation") or error["code"] in (
                "invalidRequest",
                "BadRequest",
            ), error
            assert len(error["message"]) > 20, error  # a reason, not just "invalid"
            assert "innerError" in error
        listed = client.get("/dataPolicyOperations")
        assert listed.status_code == 200
        assert listed.json()["value"] == []
    assert snapshot(layout["root"], layout["outside"]) == before
    assert listener.connections == connections


@pytest.fixture(scope="module")
def export_service(
    layout: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExportService]:
    with store_database(SQLITE, tmp_path_factory.mktemp("store")) as database:
        context = ExportContext(sources=(), directory=None, storage=storage_config(layout["root"]))
        yield ExportService(OperationStore(database), context, str(layout["root"]))


@pytest.mark.parametrize("case_id", CORPUS_IDS)
def test_a_hostile_location_is_refused_by_the_export_service(
    case_id: str, layout: dict[str, Path], listener: Listener, export_service: ExportService
):
    """The engine's one entry point refuses what the API refuses (both routes use it), with
    nothing stored or written."""
    location = dict(hostile_locations(layout["root"], listener.port))[case_id]
    before = snapshot(layout["root"], layout["outside"])
    connections = listener.connections
    with pytest.raises(StorageLocationError) as refused:
        export_service.start("alice", location)
    assert len(refused.value.message) > 20
    assert export_service.store.database.fetch_all(operations.select()) == []
    assert snapshot(layout["root"], layout["outside"]) == before
    assert listener.connections == connections


def test_an_allowed_location_is_accepted(api: Service, layout: dict[str, Path]):
    """The corpus is refused for what it is, not because nothing is allowed."""
    with api.client() as client:
        response = client.post(
            "/dataPolicyOperations",
            json={"userId": "alice", "storageLocation": str(layout["root"] / "alice")},
        )
        assert response.status_code == 201, response.text
        client.delete(f"/dataPolicyOperations/{response.json()['id']}")


def test_a_directory_swapped_for_a_symlink_after_the_request_fails_the_export(tmp_path: Path):
    """Write-time re-check: the location was a directory inside the root when the export was
    requested; by the time the worker writes, it is a symlink out of the root. The export fails
    with a clear storage-location error and nothing is written outside the root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    with store_database(SQLITE, tmp_path / "store") as database:
        store = OperationStore(database)
        context = ExportContext(sources=(), directory=None, storage=storage_config(root))
        service = ExportService(store, context, str(root))
        operation, _ = service.start("alice", str(root / "alice"))
        assert (root / "alice").is_dir()  # checked and made at request time

        (root / "alice").rmdir()
        (root / "alice").symlink_to(outside)

        worker = Worker(OperationQueue(database), context, EngineConfig(max_attempts=1))
        assert worker.run_once()
        failed = store.get(operation.id)
    assert failed.status is OperationStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "StorageLocationInvalid"
    assert "not inside an allowed root" in failed.error.message
    assert list(outside.iterdir()) == []


def test_a_directory_swapped_between_the_check_and_the_open_is_not_followed(tmp_path: Path):
    """The narrower race: the destination passes the write-time check, then one of its
    directories becomes a symlink before the partial file is created. The directories are
    opened one by one without following symlinks, so the write is refused, not redirected."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    (outside / "b").mkdir()
    target = LocalTarget(root / "a" / "b", (root,))
    checked = target._resolved

    def check_then_swap(*, create: bool) -> tuple[Path, Path]:
        result = checked(create=create)
        (root / "a" / "b").rmdir()
        (root / "a").rename(tmp_path / "a-old")
        (root / "a").symlink_to(outside)
        return result

    target._resolved = check_then_swap  # type: ignore[method-assign]
    with pytest.raises(StorageLocationError, match="changed while in use"):
        target.begin("op")
    assert list((outside / "b").iterdir()) == []


def test_a_check_creates_nothing_and_prepare_makes_every_missing_level(tmp_path: Path):
    """A check runs for requests that are then refused and for downloads, so it leaves the disk
    as it was, even when the root itself is not there yet (the service's default root is made
    by its first export); prepare() makes each missing level, the root included."""
    root = tmp_path / "root"
    target = LocalTarget(root / "a" / "b", (root,))
    target.check()
    assert list(tmp_path.iterdir()) == []
    target.prepare()
    assert (root / "a" / "b").is_dir()


def test_local_packages_are_owner_only(tmp_path: Path):
    """Directories the target makes are 0700 and packages 0600, from creation (os.open and
    os.mkdir modes, so there is no moment at which another user could open them)."""
    root = tmp_path / "root"
    root.mkdir()
    target = LocalTarget(root / "a" / "b", (root,))
    target.check()
    assert list(root.iterdir()) == []  # a check creates nothing; prepare() makes the directory
    target.prepare()
    upload = target.begin("op")
    data, manifest = package_bytes(b"personal data")
    upload.stream.write(data)
    upload.finish(manifest)
    published = Path(upload.publish())
    assert published.read_bytes() == data
    assert published.stat().st_mode & 0o777 == 0o600
    assert (root / "a").stat().st_mode & 0o777 == 0o700
    assert (root / "a" / "b").stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in (root / "a" / "b").iterdir()) == ["op.zip"]


def test_an_allowed_http_location_is_not_refused_by_the_host_checks():
    """The host checks refuse ambiguity, not ordinary URLs: upper case, IPv6 and listed hosts
    pass them (the target's own checks come after)."""
    from datapolicy.engine.targets.hosts import http_url

    for url in (
        "HTTPS://ACCT.BLOB.CORE.WINDOWS.NET/cont",
        "https://[2001:db8::1]:8443/acct/cont",
        "http://127.0.0.1:10000/acct/cont",
        "https://xn--bcher-kva.example/acct/cont",
    ):
        assert http_url(url) is not None, url


def test_oversized_location_message_names_the_limit(api: Service):
    with api.client() as client:
        response = client.post(
            "/users/alice/exportPersonalData", json={"storageLocation": "/" + "a" * 3000}
        )
    assert response.status_code == 400
    assert "2048" in response.json()["error"]["message"]
