"""Shared fixtures: a real `datapolicy serve` process on a free loopback port.

Tests drive the service over HTTP exactly as clients do. One server is shared by the session;
tests keep out of each other's way by creating operations for a user id of their own
(`user_id` fixture) and filtering on it. Tests that need an empty store start their own server
with `start_service`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT_S = 30


@dataclass
class Service:
    url: str  # the API root, e.g. http://127.0.0.1:PORT/v1.0
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(data_dir: Path, *args: str) -> Service:
    """Start `datapolicy serve` and wait until it answers."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "datapolicy",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                *args,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    service = Service(f"http://127.0.0.1:{port}/v1.0", data_dir, process, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"datapolicy serve exited early:\n{log.read_text()}")
        try:
            httpx.get(f"{service.url}/openapi.json", timeout=1).raise_for_status()
            return service
        except httpx.HTTPError:
            time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"datapolicy serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The API alone (no export workers), so operations stay as the tests left them."""
    running = start_service(tmp_path_factory.mktemp("service"), "--workers", "0")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def demo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with export workers, exporting from the bundled demo shop."""
    running = start_service(tmp_path_factory.mktemp("demo"), "--demo")
    yield running
    running.stop()


@pytest.fixture
def fresh_service(tmp_path: Path) -> Iterator[Service]:
    """A server of the test's own, on an empty store, exporting from the demo shop."""
    running = start_service(tmp_path / "data", "--demo")
    yield running
    running.stop()


@pytest.fixture
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as http:
        yield http


@pytest.fixture
def user_id() -> str:
    """A user id no other test uses, so a test's operations are its own."""
    return str(uuid.uuid4())
