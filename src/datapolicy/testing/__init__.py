"""datapolicy as a stand-in for Microsoft Graph's exportPersonalData in a test suite.

The pytest plugin (`datapolicy.testing.plugin`, installed with the package) gives a test a
server in one line: `def test_x(datapolicy_server): ...`. Outside pytest, start one with
`DatapolicyServer.start(data_dir)`. Reference: docs/testing-with-datapolicy.md.
"""

from __future__ import annotations

from datapolicy.testing.scenarios import ScenarioError, Scenarios
from datapolicy.testing.server import DatapolicyServer

__all__ = ["DatapolicyServer", "ScenarioError", "Scenarios"]
