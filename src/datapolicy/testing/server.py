"""A `datapolicy serve --scenarios` process on a free loopback port, for tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from datapolicy.testing.scenarios import Scenarios

STARTUP_TIMEOUT_S = 30
TOKEN_LIFETIME_S = 24 * 3600
ALL_PERMISSIONS = ("User.Export.All", "User.Read.All", "DataPolicy.Scenarios.ReadWrite.All")
# `serve`'s line once it listens, with the port it bound (the system's choice under --port 0).
SERVING_ON = re.compile(r"datapolicy serving on https?://\S+:(\d+)/v1\.0 ")


@dataclass
class DatapolicyServer:
    """A running `datapolicy serve --scenarios`; `stop()` ends it."""

    base_url: str  # the API root, http://127.0.0.1:PORT/v1.0
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    _scenarios: Scenarios | None = field(default=None, repr=False)
    _graph_client: Any = field(default=None, repr=False)

    @classmethod
    def start(cls, data_dir: Path, *args: str) -> DatapolicyServer:
        """Start a server on a free loopback port and wait until it is ready."""
        process, port, log = start_serve(data_dir, "--scenarios", *args)
        return cls(f"http://127.0.0.1:{port}/v1.0", data_dir, process, log)

    def token(self, *permissions: str) -> str:
        """A token signed with the server's own key, with `permissions` (default: all)."""
        from datapolicy.auth.keys import signing_key
        from datapolicy.auth.tokens import issue_token
        from datapolicy.config import AuthConfig

        defaults = AuthConfig()
        return issue_token(
            signing_key(self.data_dir),
            issuer=defaults.issuer,
            audience=defaults.audience,
            permissions=permissions or ALL_PERMISSIONS,
            lifetime=TOKEN_LIFETIME_S,
            subject="datapolicy-testing",
        )

    @property
    def scenarios(self) -> Scenarios:
        if self._scenarios is None:
            self._scenarios = Scenarios(self.base_url, self.token())
        return self._scenarios

    @property
    def graph_client(self) -> Any:
        """A `msgraph.GraphServiceClient` for this server (testing/graph.py), with a token
        holding every permission; msgraph-sdk is imported on first use."""
        if self._graph_client is None:
            from datapolicy.testing.graph import graph_client

            self._graph_client = graph_client(self.base_url, self.token())
        return self._graph_client

    def stop(self) -> int:
        if self._scenarios is not None:
            self._scenarios.close()
        return stop_process(self.process)


def start_serve(
    data_dir: Path,
    *args: str,
    ready_path: str = "/readyz",
    port: int | None = None,
    log: Path | None = None,
    scheme: str = "http",
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`datapolicy serve` with `args` on `port` (default: a free loopback port the process
    chooses itself, `--port 0`), its output in `log` (default `data_dir/serve.log`), once
    `ready_path` answers 2xx over `scheme` ("https" for a server given `--tls-*`; its
    certificate is not checked here): the process, the port and the log. Raises RuntimeError
    with the log if it exits or is not ready within STARTUP_TIMEOUT_S. No load balancer routes
    to a test's server, so it stops without a drain: DATAPOLICY_SHUTDOWN_DRAIN_SECONDS is 0
    (over a configuration file's `shutdown_drain_seconds`) unless the environment sets it or
    `args` give the option."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log or data_dir / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "datapolicy", "serve"),
                *("--host", "127.0.0.1", "--port", str(port or 0), "--data-dir", str(data_dir)),
                *args,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={"DATAPOLICY_SHUTDOWN_DRAIN_SECONDS": "0", **os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"datapolicy serve exited early:\n{log.read_text()}")
        bound = bound_port(log)
        if bound is None:
            time.sleep(0.05)
            continue
        try:
            url = f"{scheme}://127.0.0.1:{bound}{ready_path}"
            httpx.get(url, timeout=1, verify=False).raise_for_status()
            return process, bound, log
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"datapolicy serve did not start:\n{log.read_text()}")


def bound_port(log: Path) -> int | None:
    """The port a `serve` writing to `log` says it listens on, or None before it does. Tests
    start `serve` on `--port 0` and read this: a free port chosen by the test and passed in could
    be taken by another test's server in between, and that server's answers taken for this one's."""
    serving = SERVING_ON.search(log.read_text(errors="replace"))
    return None if serving is None else int(serving[1])


def stop_process(process: subprocess.Popen[bytes]) -> int:
    """Terminate a `datapolicy` process, killing it if it has not exited in 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
