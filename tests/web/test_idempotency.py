"""Idempotency keys (`client-request-id`, `Operation-Id`) on both start routes, through a running
service: a key answers only the caller that used it and only the request it was used for.

A Hypothesis test generates sequences of starts (caller, user, location, key, route) and checks
each answer against a reference model: a new key starts a new export; the same caller repeating
the same request with its key gets that request's operation back; the same caller reusing the
key for another user or location gets 409 `IdempotencyKeyReused`, naming no operation; another
caller's start with the same key is a start of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Service, token_for
from datapolicy.auth.permissions import EXPORT
from datapolicy.engine import EXPORTS_DIR

CALLERS = ("alice", "bob", "carol")
USERS = ("u1", "u2")
KEYS = (None, "k1", "k2")
LOCATIONS = (None, "", "a", "b")  # None: the default; "": the default, named; else a subfolder
ROUTES = ("operations", "action")


@dataclass(frozen=True)
class Start:
    caller: str
    user: str
    location: str | None
    key: str | None
    route: str
    header: str  # which header carries the key


starts = st.builds(
    Start,
    caller=st.sampled_from(CALLERS),
    user=st.sampled_from(USERS),
    location=st.sampled_from(LOCATIONS),
    key=st.sampled_from(KEYS),
    route=st.sampled_from(ROUTES),
    header=st.sampled_from(("client-request-id", "operation-id")),
)


class Reference:
    """What each start must answer: the model of an idempotency key scoped to its caller and
    bound to its request."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str, str], tuple[tuple[str, str], str]] = {}
        self.ids: set[str] = set()

    def expect(self, start: Start, request: tuple[str, str]) -> tuple[str, str | None]:
        """("new", None), ("same", operation id) or ("conflict", None)."""
        if start.key is None:
            return "new", None
        known = self.keys.get((start.caller, start.header, start.key))
        if known is None:
            return "new", None
        asked, operation_id = known
        return ("same", operation_id) if asked == request else ("conflict", None)

    def record(self, start: Start, request: tuple[str, str], operation_id: str) -> None:
        self.ids.add(operation_id)
        if start.key is not None:
            self.keys[(start.caller, start.header, start.key)] = (request, operation_id)


def send(http: httpx.Client, service: Service, run: str, start: Start) -> httpx.Response:
    exports = service.data_dir.absolute() / EXPORTS_DIR
    location = None
    if start.location is not None:
        location = str(exports / start.location) if start.location else str(exports)
    if start.route == "action" and location is None:
        location = str(exports)  # the action requires one
    headers = {
        "Authorization": f"Bearer {token_for(service.data_dir, EXPORT, subject=start.caller)}"
    }
    if start.key is not None:
        headers[start.header] = f"{run}-{start.key}"
    user = f"{run}-{start.user}"
    body = {} if location is None else {"storageLocation": location}
    if start.route == "action":
        return http.post(f"/users/{user}/exportPersonalData", json=body, headers=headers)
    return http.post("/dataPolicyOperations", json={"userId": user, **body}, headers=headers)


def resolved(service: Service, run: str, start: Start) -> tuple[str, str]:
    exports = service.data_dir.absolute() / EXPORTS_DIR
    location = str(exports / start.location) if start.location else str(exports)
    return f"{run}-{start.user}", location


def operation_id_of(response: httpx.Response) -> str:
    if response.status_code == 202:
        return response.headers["location"].rsplit("/", 1)[1]
    return response.json()["id"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sequence=st.lists(starts, min_size=1, max_size=8))
def test_starts_answer_as_the_reference_model_says(service: Service, sequence: list[Start]):
    run = uuid.uuid4().hex  # this example's keys and users: the shared service keeps others'
    for name in ("a", "b"):
        (service.data_dir / EXPORTS_DIR / name).mkdir(parents=True, exist_ok=True)
    model = Reference()
    with service.client(headers={}) as http:
        for start in sequence:
            request = resolved(service, run, start)
            outcome, known_id = model.expect(start, request)
            response = send(http, service, run, start)
            if outcome == "conflict":
                assert response.status_code == 409, response.text
                error = response.json()["error"]
                assert error["code"] == "IdempotencyKeyReused"
                assert not any(operation_id in response.text for operation_id in model.ids)
                continue
            created = {"action": 202, "operations": 201}[start.route]
            again = {"action": 202, "operations": 200}[start.route]
            assert response.status_code == (created if outcome == "new" else again), response.text
            operation_id = operation_id_of(response)
            if outcome == "new":
                assert operation_id not in model.ids
            else:
                assert operation_id == known_id
            if start.route == "operations":
                body = response.json()
                assert (body["userId"], body["storageLocation"]) == request
            model.record(start, request, operation_id)


def test_another_users_start_with_a_used_key_is_refused_not_answered(service: Service):
    """The issue's case: the same key for user B after user A does not answer A's export."""
    key = {"client-request-id": str(uuid.uuid4())}
    with service.client() as http:
        first = http.post(
            "/users/user-a/exportPersonalData",
            json={"storageLocation": str(service.data_dir.absolute() / EXPORTS_DIR)},
            headers=key,
        )
        second = http.post(
            "/users/user-b/exportPersonalData",
            json={"storageLocation": str(service.data_dir.absolute() / EXPORTS_DIR)},
            headers=key,
        )
    assert first.status_code == 202
    assert second.status_code == 409
    assert "location" not in second.headers
    assert second.json()["error"]["code"] == "IdempotencyKeyReused"


@pytest.mark.parametrize("route", ROUTES)
def test_another_callers_key_starts_an_export_of_its_own(service: Service, route: str):
    key = f"shared-{uuid.uuid4()}"
    first = Start("mallory", "u1", None, key, route, "client-request-id")
    second = Start("victim", "u1", None, key, route, "client-request-id")
    with service.client(headers={}) as http:
        a = send(http, service, "same", first)
        b = send(http, service, "same", second)
    assert a.status_code in (201, 202)
    assert b.status_code in (201, 202)
    assert operation_id_of(a) != operation_id_of(b)
