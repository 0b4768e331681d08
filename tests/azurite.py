"""A real Azurite (Azure Blob emulator) for the tests, on a free loopback port.

Installed by scripts/install-test-services into .tools/azurite. Without it the tests that need it
are skipped locally and fail under CI (CI=true), where it must be there.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ResourceTypes,
    generate_account_sas,
    generate_blob_sas,
    generate_container_sas,
)

from conftest import free_port

BINARY = Path(__file__).resolve().parent.parent / ".tools/azurite/node_modules/.bin/azurite-blob"
ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and key
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT_S = 30


def require_binary() -> None:
    if BINARY.exists():
        return
    reason = f"Azurite is not installed ({BINARY}): run scripts/install-test-services"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Azurite:
    location: Path  # where it keeps its data: kept across a restart
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}/{ACCOUNT}"

    def start(self) -> Azurite:
        require_binary()
        self.location.mkdir(parents=True, exist_ok=True)
        log = (self.location.parent / f"azurite-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(BINARY),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.location),
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--silent",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"azurite exited with {self.process.returncode}")
            try:
                httpx.get(f"{self.endpoint}?comp=list", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("azurite did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # --- the account, with its key (what a test sees, not what the service gets) ---

    def service(self) -> BlobServiceClient:
        return BlobServiceClient(
            self.endpoint, credential={"account_name": ACCOUNT, "account_key": KEY}
        )

    def new_container(self) -> ContainerClient:
        return self.service().create_container(f"c{uuid.uuid4().hex[:20]}")

    def container_sas_url(self, container: str, permission: str = "w", **sas: object) -> str:
        token = generate_container_sas(
            ACCOUNT,
            container,
            account_key=KEY,
            permission=permission,
            expiry=sas.pop("expiry", datetime.now(UTC) + timedelta(hours=1)),
            **sas,
        )
        return f"{self.endpoint}/{container}?{token}"

    def policy_sas_url(self, container: str, policy_id: str) -> str:
        """A SAS whose permissions come from the container's stored access policy."""
        token = generate_container_sas(ACCOUNT, container, account_key=KEY, policy_id=policy_id)
        return f"{self.endpoint}/{container}?{token}"

    def blob_sas_url(self, container: str, blob: str, permission: str = "w") -> str:
        token = generate_blob_sas(
            ACCOUNT,
            container,
            blob,
            account_key=KEY,
            permission=permission,
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        return f"{self.endpoint}/{container}/{blob}?{token}"

    def account_sas_url(self, container: str) -> str:
        token = generate_account_sas(
            ACCOUNT,
            KEY,
            resource_types=ResourceTypes(container=True, object=True),
            permission=AccountSasPermissions(write=True, create=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        return f"{self.endpoint}/{container}?{token}"


def signature(url: str) -> str:
    """The `sig` value of a SAS URL, as sent (percent-encoded) and decoded."""
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query)["sig"][0]


def blob_names(container: ContainerClient) -> list[str]:
    return sorted(blob.name for blob in container.list_blobs())


def uncommitted_blocks(container: ContainerClient, name: str) -> list[object]:
    """The uncommitted blocks of blob `name` (none if the blob has no blocks at all)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return list(container.get_blob_client(name).get_block_list("uncommitted")[1])
    except ResourceNotFoundError:
        return []
