"""The pytest plugin (entry point `pytest11`): fixtures only, no hooks, light imports.

- `datapolicy_server`: a `datapolicy serve --scenarios` on a free loopback port with a fresh
  data directory, for one test; a `DatapolicyServer` with `.base_url`, `.token()`,
  `.graph_client` and `.scenarios`.
- `datapolicy_server_args`: extra `serve` arguments (default `--demo`: the bundled demo shop
  as the data to export); override it in a conftest.py for your own configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from datapolicy.testing.server import DatapolicyServer


@pytest.fixture
def datapolicy_server_args() -> list[str]:
    """Extra `datapolicy serve` arguments for `datapolicy_server`; override to configure it."""
    return ["--demo"]


@pytest.fixture
def datapolicy_server(
    tmp_path_factory: pytest.TempPathFactory, datapolicy_server_args: list[str]
) -> Iterator[DatapolicyServer]:
    """A datapolicy server with scenario controls, on a fresh data directory, for one test.
    Imported here, not at the top: the plugin loads in every pytest run of an environment that
    has datapolicy, and must cost nothing (nor need httpx) where this fixture is not used."""
    from datapolicy.testing.server import DatapolicyServer

    server = DatapolicyServer.start(
        tmp_path_factory.mktemp("datapolicy") / "data", *datapolicy_server_args
    )
    try:
        yield server
    finally:
        server.stop()
