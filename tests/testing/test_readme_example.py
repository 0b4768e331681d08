"""The README's examples, run as written. The pytest example is copied out of the README into a
fresh directory and run by pytest in a subprocess, where only the installed plugin
(`datapolicy.testing.plugin`, entry point pytest11) provides `datapolicy_server`; the SDK
section's `export_error` is run against a `datapolicy_server` whose export was made to fail. If
the README, the SDK or the plugin drifts, this fails."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import wait_for

pytest_plugins = ("pytester",)

README = Path(__file__).parents[2] / "README.md"
MARKER = "<!-- datapolicy-testing-example -->"
SDK_ERROR_MARKER = "<!-- datapolicy-sdk-error-example -->"


def readme_example(marker: str = MARKER) -> str:
    text = README.read_text()
    found = re.search(re.escape(marker) + r"\n```python\n(.*?)\n```", text, re.DOTALL)
    assert found, f"no python block after {marker} in the README"
    return found.group(1) + "\n"


@pytest.mark.e2e  # pytest in a subprocess, whose plugin starts `datapolicy serve`
def test_the_readme_example_passes_as_written(pytester: pytest.Pytester):
    pytester.makepyfile(test_export=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(passed=2)


def _failed_export(server: Any) -> str:
    """The id of an export of the demo's first user that the scenario controls made fail."""
    server.scenarios.fail_next_export("storageFull", "The storage location is full.")
    headers = {"Authorization": f"Bearer {server.token()}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        user_id = http.get("/users", params={"$top": "1"}).json()["value"][0]["id"]
        started = http.post(
            f"/users/{user_id}/exportPersonalData",
            json={"storageLocation": str(server.data_dir / "exports")},
        )
        assert started.status_code == 202, started.text
        operation_id: str = started.headers["location"].rstrip("/").rsplit("/", 1)[-1]

        def failed() -> bool:
            status = http.get(f"/dataPolicyOperations/{operation_id}").json()["status"]
            return status == "failed"

        wait_for("the failed export", failed, 60, server.log.read_text)
    return operation_id


@pytest.mark.e2e  # `datapolicy_server` starts `datapolicy serve --scenarios`
async def test_the_readme_reads_a_failed_operations_error_from_additional_data(
    datapolicy_server: Any,
):
    """The SDK model has no `error`: the README's `export_error` finds it in additional_data,
    as the service sent it."""
    namespace: dict[str, Any] = {}
    exec(readme_example(SDK_ERROR_MARKER), namespace)  # the README's code, as written
    operation_id = _failed_export(datapolicy_server)
    assert await namespace["export_error"](datapolicy_server.graph_client, operation_id) == {
        "code": "storageFull",
        "message": "The storage location is full.",
    }
