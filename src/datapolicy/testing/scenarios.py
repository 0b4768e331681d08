"""The scenario admin API (`/v1.0/admin/datapolicy/scenarios`, docs/testing-with-datapolicy.md)
as Python calls, for tests and for `datapolicy.testing`'s fixture."""

from __future__ import annotations

from typing import Any

import httpx

ADMIN = "/admin/datapolicy/scenarios"  # relative to the API root


class ScenarioError(Exception):
    """The scenario admin API refused a request; the message is its status and Graph error."""


class Scenarios:
    """The scenario admin API (`/v1.0/admin/datapolicy/scenarios`) as Python calls."""

    def __init__(self, base_url: str, token: str):
        self._http = httpx.Client(
            base_url=f"{base_url}{ADMIN}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str = "", **arguments: Any) -> Any:
        response = self._http.request(method, path, **arguments)
        if response.is_error:
            raise ScenarioError(f"{response.status_code} {response.text}")
        return response.json() if response.content else None

    # --- faults ----------------------------------------------------------------------------

    def fault(
        self,
        *faults: dict[str, Any],
        route: str | None = None,
        method: str | None = None,
        operation_id: str | None = None,
        rate: float | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Add a fault rule: the `faults` in sequence, one per matching request, or (with
        `rate`) the one fault at that rate. A fault is e.g. `{"status": 429, "retryAfter": 1}`,
        `{"kind": "latency", "seconds": 2}`, `{"kind": "timeout", "seconds": 30}`,
        `{"kind": "drop"}`. `route` is relative to the API root, `{id}` matching a segment."""
        rule: dict[str, Any] = {"seed": seed}
        if rate is None:
            rule["sequence"] = list(faults)
        else:
            (rule["fault"],) = faults
            rule["rate"] = rate
        for name, value in (("route", route), ("method", method), ("operationId", operation_id)):
            if value is not None:
                rule[name] = value
        created: dict[str, Any] = self._call("POST", "/faults", json=rule)
        return created

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # --- time and export failures ---------------------------------------------------------------

    def step(self, *, on_poll: bool = False) -> None:
        """Hold every export at notStarted, then running, until `advance` (or, `on_poll`, until
        the next GET of the operation)."""
        self._call("PUT", "/time", json={"mode": "step", "stepOnPoll": on_poll})

    def slow(self, seconds_per_export: float) -> None:
        self._call("PUT", "/time", json={"mode": "slow", "secondsPerExport": seconds_per_export})

    def normal_time(self) -> None:
        self._call("PUT", "/time", json={"mode": "normal"})

    def advance(self, operation_id: str) -> str:
        """Let a stepped export go on to its next state; returns that state."""
        status: str = self._call("POST", f"/operations/{operation_id}/advance")["status"]
        return status

    def fail_next_export(
        self, code: str, message: str = "The export failed.", operation_id: str | None = None
    ) -> None:
        body = {"code": code, "message": message, "operationId": operation_id}
        self._call("POST", "/exportFailures", json=body)

    # --- what clients sent -------------------------------------------------------------------

    def requests(
        self, method: str | None = None, path_prefix: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """Logged requests, oldest first: method, path, query, headers (secrets redacted),
        bodySize, status, fault, durationMs, sequence."""
        params = {"since": str(since)}
        if method is not None:
            params["method"] = method
        if path_prefix is not None:
            params["pathPrefix"] = path_prefix
        logged: list[dict[str, Any]] = self._call("GET", "/requests", params=params)["value"]
        return logged

    # --- data ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """No operations, packages, fault rules, forced failures or logged requests."""
        self._call("POST", "/reset")

    def snapshot(self, name: str) -> None:
        self._call("PUT", f"/snapshots/{name}")

    def restore(self, name: str) -> None:
        self._call("POST", f"/snapshots/{name}/restore")
