"""Schemathesis against the served OpenAPI description and a running `datapolicy serve`.

The description is loaded from `/v1.0/openapi.json` of the session's server (the `service`
fixture), so what is tested is what clients are given. Every operation in it (the
dataPolicyOperations list, create, get, update, delete and `$count`, and the users directory and
its exportPersonalData action) is generated in all three of Schemathesis' stateless phases
(examples, coverage, fuzzing), in positive and negative mode, and each answer goes through all of
Schemathesis' default checks: no 5xx, status code, content type, headers and body against the
description, schema-valid requests accepted, schema-violating requests rejected, 405 with
`Allow` for undeclared methods. A stateful run then follows the description's links (create ->
get / update / delete), adding `use_after_free` and `ensure_resource_availability`.

Generation is deterministic (a fixed seed, derandomized Hypothesis, no example database) and
bounded, so a run takes about half a minute.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case, Config, Response
from schemathesis.checks import positive_data_acceptance

from conftest import ProcessService

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service(service_process: ProcessService) -> ProcessService:
    """The session's service in a process: Schemathesis calls it over its port."""
    return service_process


SEED = 20250101
MAX_EXAMPLES = 50  # per operation, in the fuzzing phase; examples and coverage add their own
STATEFUL_SCENARIOS = 25
STATEFUL_STEPS = 6

# Options whose accepted values a JSON Schema cannot describe, so that a schema-valid value may
# rightly be refused (see `excluded_checks`).
#  - $filter is OData's expression language: parenthesised nesting makes it context-free, and a
#    JSON Schema `pattern` is a regular expression; besides, a syntactically fine expression is
#    still refused when it compares a property with a literal of another type.
#  - $search is Graph's search syntax: quoted terms with backslash escapes, AND / OR / NOT,
#    "property:text" prefixes checked against the searchable properties (through escapes), at
#    most 32 terms. Only its length is stated in the schema.
#  - $skiptoken is an opaque cursor the server issued for one particular $orderby; no pattern
#    tells a current token from a made-up one.
UNDESCRIBABLE_OPTIONS = frozenset({"$filter", "$search", "$skiptoken"})


def _orderby_repeats_a_property(case: Case) -> bool:
    """Whether `$orderby` names one property twice ("userId,userId desc"), which the server
    refuses as OData services do. The description says "each at most once" in words: the JSON
    Schema for it (`not: {contains: ..., minContains: 2}` per property) is one Schemathesis
    cannot generate from (it reports the operation as unsupported)."""
    value = (case.query or {}).get("$orderby")
    items = value.split(",") if isinstance(value, str) else [str(item) for item in value or []]
    names = [item.split()[0] for item in items if item.split()]
    return len(names) != len(set(names))


def _error_code(response: Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def excluded_checks(case: Case, response: Response) -> list[Any]:
    """The checks not to run on this one answer: only `positive_data_acceptance`, and only where
    the request's acceptability depends on something no schema can state. Every other check
    (5xx, status code, content type, headers, body schema, negative data rejection, ...) runs on
    every answer."""
    if UNDESCRIBABLE_OPTIONS & (case.query or {}).keys() or _orderby_repeats_a_property(case):
        return [positive_data_acceptance]
    if case.path == "/$batch" and response.status_code == 400:
        # A batch's rules across its requests and their fields (ids unique without regard to
        # case, dependsOn naming requests of the batch and forming no cycle, a body only with
        # a Content-Type and a write only with both, a body in base64 for a media type other
        # than JSON) are beyond a JSON Schema: web/routes/batch.py refuses them whole.
        return [positive_data_acceptance]
    if response.status_code == 400 and _error_code(response).startswith("StorageLocation"):
        # Which storage locations are permitted is the server's configuration (its local roots
        # and their state on disk), not something the description can enumerate: a well-formed
        # location outside the roots is refused with StorageLocationInvalid.
        return [positive_data_acceptance]
    return []


def schemathesis_config(token: str) -> Config:
    return Config.from_dict(
        {
            "seed": SEED,
            # The description declares bearer authentication; `ignored_auth` checks that the
            # server refuses the same requests without the token and with a made-up one.
            "auth": {"openapi": {"bearer": {"bearer": token}}},
            "generation": {
                "deterministic": True,
                "max-examples": MAX_EXAMPLES,
                "database": "none",
            },
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "operations": [
                {
                    # A well-formed If-Match that names another version of the operation is
                    # answered 412 Precondition Failed: the request is valid, the ETag is stale,
                    # and which ETag is current no schema can say.
                    "include-method": ["PATCH", "DELETE"],
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": [
                                *("2xx", "3xx", "401", "403", "404", "409"),
                                *("412", "429", "5xx"),
                            ]
                        }
                    },
                }
            ],
        }
    )


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's `from_fixture` reads and rewrites `request.node._nodeid`, an
    attribute pytest 9.2 no longer has (it keeps the id in `_id`). Give it one to read; what it
    writes there only relabels its own subtests."""
    request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def api_schema(service):
    """The description as the running server serves it, aimed at that server."""
    return schemathesis.openapi.from_url(
        f"{service.url}/openapi.json", config=schemathesis_config(service.token), timeout=30
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_conforms_to_the_served_description(case: Case) -> None:
    response = case.call(timeout=30)
    case.validate_response(response, excluded_checks=excluded_checks(case, response))


def test_links_create_get_update_delete(api_schema) -> None:
    """Stateful: operations created by POST are read, updated and deleted through the
    description's links, with every default check (and the stateful ones) on every step."""
    workflow = api_schema.as_state_machine()
    assert workflow.bundles, "the description should link POST to get / update / delete"
    answered: Counter[tuple[str, int]] = Counter()

    class Workflow(workflow):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"timeout": 30}

        def after_call(self, response: Response, case: Case) -> None:
            super().after_call(response, case)
            answered[case.method, response.status_code // 100] += 1

        def validate_response(
            self,
            response: Response,
            case: Case,
            additional_checks: list[Any] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=excluded_checks(case, response),
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[hypothesis.HealthCheck.too_slow],
        )
    )
    # The links were followed to operations that exist, not only tried with made-up ids.
    for method in ("POST", "GET", "PATCH", "DELETE"):
        assert answered[method, 2] > 0, answered


def test_answers_to_requests_generation_rarely_builds(api_schema, service) -> None:
    """Requests whose acceptability the description cannot state (a permitted storage location,
    a current ETag, well-formed $filter and $search, a real $skiptoken), so that generated ones
    are mostly refused: the answers to valid ones must conform as well, under every check."""
    exports = str(service.data_dir / "exports")
    user = f"conformance-{uuid.uuid4()}"
    entity = "/dataPolicyOperations/{dataPolicyOperation-id}"

    def call(
        path: str, method: str, status: int, headers: dict[str, str] | None = None, **parts: Any
    ) -> Response:
        # Cases made by hand carry only the headers they are given.
        headers = {**service.headers, **(headers or {})}
        case = api_schema[path][method].Case(headers=headers, **parts)
        response = case.call(timeout=30)
        case.validate_response(response)
        assert response.status_code == status, response.text
        return response

    created = call(
        "/dataPolicyOperations", "POST", 201, body={"userId": user, "storageLocation": exports}
    )
    key = {"dataPolicyOperation-id": created.json()["id"]}
    call(
        "/users/{user-id}/exportPersonalData",
        "POST",
        202,
        path_parameters={"user-id": user},
        body={"storageLocation": exports},
    )
    etag = call(entity, "GET", 200, path_parameters=key).headers["etag"][0]
    call(entity, "GET", 304, path_parameters=key, headers={"If-None-Match": etag})
    patched = call(
        entity,
        "PATCH",
        200,
        path_parameters=key,
        headers={"If-Match": etag},
        body={"storageLocation": f"{exports}/conformance"},
    )
    query = {
        "$filter": f"userId eq '{user}' and status in ('notStarted', 'running')",
        "$search": f'"userId:{user}"',
        # As sent (style form, not exploded): an explicit case is not serialized for us.
        "$orderby": "submittedDateTime desc,userId",
        "$select": "id,status,error",
        "$top": "1",
        "$count": "true",
    }
    page = call("/dataPolicyOperations", "GET", 200, query=query).json()
    assert page["@odata.count"] == 2
    next_link = httpx.URL(page["@odata.nextLink"])
    call(
        "/dataPolicyOperations",
        "GET",
        200,
        query={**query, "$skiptoken": next_link.params["$skiptoken"]},
    )
    call(
        "/dataPolicyOperations/$count",
        "GET",
        200,
        query={"$filter": query["$filter"], "$search": query["$search"]},
    )
    call(entity, "DELETE", 412, path_parameters=key, headers={"If-Match": etag})
    call(
        entity, "DELETE", 204, path_parameters=key, headers={"If-Match": patched.headers["etag"][0]}
    )
    call(entity, "GET", 404, path_parameters=key)
