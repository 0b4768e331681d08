"""Running the real `datapolicy` command in a subprocess, as an operator would.

Test modules here import this by name (`from commands import datapolicy`): pytest puts each
test directory without an `__init__.py` on `sys.path`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from conftest import Service


def datapolicy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`datapolicy ARGS...`; DATAPOLICY_* variables of the test run's own environment removed,
    so only what the test passes counts."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DATAPOLICY_")}
    return subprocess.run(
        [sys.executable, "-m", "datapolicy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**inherited, **(env or {})},
    )


def against(service: Service) -> tuple[str, ...]:
    """The options that point an API command at `service`, minting its token from the service's
    own data directory (the default when no --token is given)."""
    return ("--url", service.url, "--data-dir", str(service.data_dir))


def json_output(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: exactly one line on stderr, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
