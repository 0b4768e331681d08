"""The authentication middleware on its own, in process: it hands the principal on in the ASGI
scope, verifies a token once and then answers it from its cache until the token expires, and
turns keys that cannot be fetched into a 503."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from starlette.types import Receive, Scope, Send

from datapolicy.auth.cache import TokenCache
from datapolicy.auth.keys import LocalKeys
from datapolicy.auth.permissions import EXPORT
from datapolicy.auth.tokens import Principal, TokenValidator
from datapolicy.config import LimitsConfig
from datapolicy.errors import Unavailable
from datapolicy.store import SQLiteDatabase
from datapolicy.store.audit import AuditAction, AuditFilter, open_audit_log
from datapolicy.web.middleware.audit import AuditBuffer, RequestAudit
from datapolicy.web.middleware.auth import DENIED_AUDIT_BURST, Authentication
from datapolicy.web.middleware.pipeline import RequestPipeline
from datapolicy.web.middleware.ratelimit import ClientLimits
from datapolicy.web.routes.table import API_ROUTES, RouteTable
from jwtkinds import AUDIENCE, ISSUER, claims, sign

pytestmark = pytest.mark.asyncio(loop_scope="session")


class CountingValidator(TokenValidator):
    def __init__(self, key: ECKey, now: Callable[[], float] = time.time) -> None:
        super().__init__(LocalKeys(key), issuer=ISSUER, audience=AUDIENCE, clock_skew=0, now=now)
        self.calls = 0

    def validate(self, token: str) -> Principal:
        self.calls += 1
        return super().validate(token)


class Down(TokenValidator):
    def __init__(self) -> None:
        pass

    def validate(self, token: str) -> Principal:
        raise Unavailable("The keys to check access tokens against cannot be fetched.")


async def echo_principal(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the middleware: answers with the principal it was handed."""
    principal: Principal = scope["state"]["principal"]
    body = f"{principal.subject} {sorted(principal.permissions)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def key() -> ECKey:
    return ECKey.generate_key("P-256", auto_kid=True)


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RequestAudit]:
    """A real audit trail (SQLite) for the middleware's 403 entries."""
    database = SQLiteDatabase(tmp_path_factory.mktemp("audit") / "store.sqlite3")
    log = open_audit_log(database)
    buffer = AuditBuffer(log)
    yield RequestAudit(log, buffer)
    buffer.close()
    log.close()


def app_for(validator: TokenValidator, audit: RequestAudit) -> RequestPipeline:
    return RequestPipeline(
        echo_principal,
        RouteTable(API_ROUTES),
        authentication=Authentication(validator, audit),
    )


async def get(app: RequestPipeline, token: str, times: int = 1) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/v1.0") as client:
        return [await client.get("/dataPolicyOperations/x", headers=headers) for _ in range(times)]


async def test_the_principal_is_handed_on_and_a_token_verified_once(
    key: ECKey, audit: RequestAudit
):
    validator = CountingValidator(key)
    token = sign(key, claims(sub="poller", roles=[EXPORT]))
    answers = await get(app_for(validator, audit), token, times=5)
    assert [a.text for a in answers] == ["poller ['User.Export.All']"] * 5
    assert validator.calls == 1


async def test_a_cached_token_is_verified_again_once_it_expires(key: ECKey, audit: RequestAudit):
    """The cache keeps a verified token only until it expires, by the clock the validator
    reads too (injected: the token's minute passes at once)."""
    now = [time.time()]
    validator = CountingValidator(key, now=lambda: now[0])
    token = sign(key, claims(exp=int(now[0]) + 60, roles=[EXPORT]))
    authentication = Authentication(validator, audit)
    authentication.cache = TokenCache(clock=lambda: now[0])
    app = RequestPipeline(echo_principal, RouteTable(API_ROUTES), authentication=authentication)
    assert (await get(app, token))[0].status_code == 200
    now[0] += 61
    answer = (await get(app, token))[0]
    assert (answer.status_code, validator.calls) == (401, 2)
    assert answer.json()["error"]["message"] == "Access token has expired."


async def test_keys_that_cannot_be_fetched_are_a_503_without_a_challenge(audit: RequestAudit):
    answer = (await get(app_for(Down(), audit), "any.token.value"))[0]
    assert answer.status_code == 503
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == "serviceNotAvailable"
    assert error["innerError"]["request-id"] == answer.headers["request-id"]
    assert "www-authenticate" not in answer.headers


async def test_403s_spend_the_clients_budget_and_a_bounded_number_are_audited(
    key: ECKey, audit: RequestAudit
):
    """A valid token without the permission, repeated: the client's read budget runs out (429)
    as for any other request, and at most the audit budget's burst of `access.denied` entries
    is written, however many 403s there were."""
    limits = ClientLimits(LimitsConfig(read_rate=0.001, read_burst=DENIED_AUDIT_BURST + 50))
    app = RequestPipeline(
        echo_principal,
        RouteTable(API_ROUTES),
        authentication=Authentication(CountingValidator(key), audit, limits=limits),
    )
    subject = f"denied-{time.time_ns()}"
    token = sign(key, claims(sub=subject, roles=["User.Read.All"]))
    answers = await get(app, token, times=DENIED_AUDIT_BURST + 60)
    statuses = [answer.status_code for answer in answers]
    assert statuses == [403] * (DENIED_AUDIT_BURST + 50) + [429] * 10
    audit.buffer.flush()
    denied = audit.log.entries(AuditFilter(subject=subject, action=AuditAction.ACCESS_DENIED))
    assert 0 < len(denied) <= DENIED_AUDIT_BURST + 1
