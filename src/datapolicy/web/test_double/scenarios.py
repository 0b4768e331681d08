"""The scenario admin API, `/v1.0/admin/datapolicy/scenarios/...`: fault rules, time control,
forced export failures, the request log, reset, snapshots. Served only under `serve
--scenarios` (the route table's `test_double` routes, web/routes/table.py); every route needs
`DataPolicy.Scenarios.ReadWrite.All` (auth/permissions.py).
Reference: docs/testing-with-datapolicy.md.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from datapolicy.errors import InvalidRequest, NotFound
from datapolicy.scenarios import Scenarios
from datapolicy.scenarios.datadir import DataDirectory
from datapolicy.scenarios.faults import parse_rule
from datapolicy.scenarios.pacing import ForcedFailure, TimeMode
from datapolicy.web.responses import json_response
from datapolicy.web.routes.payloads import read_json_object

ADMIN_ROOT = "/admin/datapolicy/scenarios"  # relative to the API root


def _scenarios(request: Request) -> Scenarios:
    scenarios: Scenarios = request.app.state.scenarios
    return scenarios


def _data(request: Request) -> DataDirectory:
    return _scenarios(request).data


def _no_content() -> Response:
    return Response(status_code=204)


async def overview(request: Request) -> Response:
    scenarios = _scenarios(request)
    return json_response(
        {
            "faults": [rule.as_json() for rule in scenarios.faults.rules()],
            "time": scenarios.control.time.as_json(),
            "exportFailures": [f.as_json() for f in scenarios.control.failures],
            "snapshots": await run_in_threadpool(_data(request).names),
        }
    )


async def list_faults(request: Request) -> Response:
    return json_response({"value": [rule.as_json() for rule in _scenarios(request).faults.rules()]})


async def add_fault(request: Request) -> Response:
    rule = _scenarios(request).faults.add(parse_rule(await read_json_object(request)))
    return json_response(rule.as_json(), status=201)


async def clear_faults(request: Request) -> Response:
    _scenarios(request).faults.clear()
    return _no_content()


async def remove_fault(request: Request) -> Response:
    rule_id = request.path_params["rule_id"]
    if not (rule_id.isascii() and rule_id.isdigit() and len(rule_id) < 10) or not _scenarios(
        request
    ).faults.remove(int(rule_id)):
        raise NotFound(f"There is no fault rule '{rule_id[:20]}'.")
    return _no_content()


async def get_time(request: Request) -> Response:
    return json_response(_scenarios(request).control.time.as_json())


async def set_time(request: Request) -> Response:
    mode = TimeMode.from_json(await read_json_object(request))
    _scenarios(request).control.set_time(mode)
    return json_response(mode.as_json())


async def list_failures(request: Request) -> Response:
    failures = _scenarios(request).control.failures
    return json_response({"value": [f.as_json() for f in failures]})


async def add_failure(request: Request) -> Response:
    failure = ForcedFailure.from_json(await read_json_object(request))
    _scenarios(request).control.fail_next(failure)
    return json_response(failure.as_json(), status=201)


async def advance(request: Request) -> Response:
    operation_id = request.path_params["operation_id"]
    await run_in_threadpool(request.app.state.store.get, operation_id)  # 404 if unknown
    status = await run_in_threadpool(_scenarios(request).control.advance, operation_id)
    return json_response({"operationId": operation_id, "status": status})


async def list_requests(request: Request) -> Response:
    query = request.query_params
    since = query.get("since", "0")
    if not (since.isascii() and since.isdigit() and len(since) < 16):
        raise InvalidRequest("'since' is a request sequence number.")
    entries = _scenarios(request).requests.find(
        method=query.get("method"), path_prefix=query.get("pathPrefix"), since=int(since)
    )
    return json_response({"value": [entry.as_json() for entry in entries]})


async def clear_requests(request: Request) -> Response:
    _scenarios(request).requests.clear()
    return _no_content()


async def reset(request: Request) -> Response:
    """Back to an empty service: no operations, packages, rules, failures or logged requests,
    and normal time."""
    scenarios = _scenarios(request)
    scenarios.faults.clear()
    scenarios.control.reset()
    deleted = await run_in_threadpool(_data(request).reset)
    scenarios.requests.clear()
    return json_response({"deletedOperations": deleted})


async def list_snapshots(request: Request) -> Response:
    return json_response({"value": await run_in_threadpool(_data(request).names)})


async def take_snapshot(request: Request) -> Response:
    name = request.path_params["name"]
    await run_in_threadpool(_data(request).snapshot, name)
    return json_response({"name": name}, status=201)


async def restore_snapshot(request: Request) -> Response:
    name = request.path_params["name"]
    _scenarios(request).control.reset()
    await run_in_threadpool(_data(request).restore, name)
    return json_response({"name": name})
