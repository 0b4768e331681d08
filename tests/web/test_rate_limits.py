"""Per-client rate limits (web/middleware/ratelimit.py): 429 `TooManyRequests` with an integer
`Retry-After` and Graph's error body; separate budgets per client and for reads and writes;
limits from `[limits]`; health checks never counted.

The service runs with tiny budgets; each test calls as a client (token subject) of its own, so
the tests do not spend each other's budgets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from conftest import Service, configured_app, token_for
from datapolicy.auth.permissions import PERMISSIONS
from datapolicy.config import LimitsConfig
from datapolicy.errors import THROTTLED
from datapolicy.web.middleware.ratelimit import ClientLimits, RateBudget

pytestmark = pytest.mark.operation_store  # starts services on the test store

WRITE_BURST = 3
READ_BURST = 5
FAILURE_BURST = 3
LIMITS = f"""
[limits]
write_rate = 0.2
write_burst = {WRITE_BURST}
read_rate = 0.25
read_burst = {READ_BURST}
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = configured_app(tmp_path_factory.mktemp("rate-limits"), LIMITS, "--workers", "0")
    yield running
    running.stop()


def client_of(service: Service, subject: str | None = None) -> httpx.Client:
    """An HTTP client calling as a client of its own (a fresh token subject)."""
    token = token_for(service.data_dir, *PERMISSIONS, subject=subject or str(uuid.uuid4()))
    return service.client(headers={"Authorization": f"Bearer {token}"})


def create(client: httpx.Client) -> httpx.Response:
    return client.post("/dataPolicyOperations", json={"userId": f"user-{uuid.uuid4()}"})


def read(client: httpx.Client) -> httpx.Response:
    return client.get(f"/dataPolicyOperations/{uuid.uuid4()}")  # a 404 is a read all the same


def assert_throttled(response: httpx.Response) -> int:
    """Graph's 429: an integer Retry-After of at least 1 s, and its error body; the seconds."""
    assert response.status_code == 429, response.text
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert int(retry_after) >= 1
    error = response.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["message"] == THROTTLED
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"] == response.headers["client-request-id"]
    assert inner["date"]
    return int(retry_after)


def spend(send: Callable[[], httpx.Response], burst: int) -> httpx.Response:
    """Send until refused: at least `burst` requests pass first (more only if the budget refilled
    meanwhile, on a slow machine); the 429."""
    for sent in range(burst * 3):
        response = send()
        if response.status_code == 429:
            assert sent >= burst, f"throttled after {sent} requests"
            return response
        assert response.status_code < 400 or response.status_code == 404, response.text
    pytest.fail(f"not throttled after {burst * 3} requests")


def test_a_burst_of_writes_over_the_budget_gets_429_with_retry_after(service: Service):
    """The first `write_burst` POSTs pass (a start, then its repeats with the same
    client-request-id); the next is refused with Graph's 429."""
    user_id = f"user-{uuid.uuid4()}"
    with client_of(service) as client:
        response = spend(
            lambda: client.post(
                "/dataPolicyOperations",
                json={"userId": user_id},
                headers={"client-request-id": "my-request"},
            ),
            WRITE_BURST,
        )
        assert assert_throttled(response) <= 5  # write_rate 0.2: one write every 5 s
        assert response.json()["error"]["innerError"]["client-request-id"] == "my-request"


def test_waiting_retry_after_lets_the_client_in_again(service: Service):
    """Polling past the read budget is refused, the fast-path GET by id included, until the
    client has waited the seconds Retry-After named."""
    with client_of(service) as client:
        url = f"/dataPolicyOperations/{create(client).json()['id']}"
        wait = assert_throttled(spend(lambda: client.get(url), READ_BURST))
        assert wait <= 4  # read_rate 0.25
        time.sleep(wait)
        assert client.get(url).status_code == 200


def test_two_clients_have_separate_budgets(service: Service):
    """One client over its budget does not hold up another; a new token for the same client
    (same subject) does not buy a new budget."""
    subject = str(uuid.uuid4())
    with client_of(service, subject) as greedy, client_of(service) as other:
        assert_throttled(spend(lambda: read(greedy), READ_BURST))
        assert read(other).status_code == 404
    with client_of(service, subject) as same_client_new_token:
        assert_throttled(read(same_client_new_token))


def test_reads_and_writes_have_separate_budgets(service: Service):
    """A client that has spent its writes can still poll its exports."""
    with client_of(service) as client:
        operation_id = create(client).json()["id"]
        assert_throttled(spend(lambda: create(client), WRITE_BURST - 1))
        assert client.get(f"/dataPolicyOperations/{operation_id}").status_code == 200


def test_health_checks_are_never_throttled(service: Service):
    with service.client(headers={}) as http:
        for _ in range(READ_BURST * 3):
            assert http.get(f"{service.root}/healthz").status_code == 200
        assert http.get(f"{service.root}/readyz").status_code == 200


def test_public_routes_are_budgeted_by_address(service: Service):
    """`$metadata` needs no token, so its callers are told apart by address (the service's
    start-up probe of the OpenAPI description spent one of this address's reads)."""
    with service.client(headers={}) as http:
        assert_throttled(spend(lambda: http.get("/$metadata"), READ_BURST - 1))


# --- the budget itself ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def failure_limited(tmp_path) -> Iterator[Service]:
    """A service of the test's own: refused tokens exhaust this address's budget for it."""
    config = f"[limits]\nauth_failure_rate = 0.2\nauth_failure_burst = {FAILURE_BURST}\n"
    running = configured_app(tmp_path, config, "--workers", "0")
    yield running
    running.stop()


def test_an_address_that_sent_too_many_bad_tokens_gets_429_before_any_check(
    failure_limited: Service,
):
    """Refused tokens are budgeted per address: past the burst, a new token is not even
    verified (429); a token verified before still works."""
    service = failure_limited
    good = client_of(service)
    assert read(good).status_code == 404  # verified now, cached from here on
    bad = {"Authorization": f"Bearer {token_for(service.data_dir, *PERMISSIONS)}x"}
    with service.client(headers={}) as anonymous:
        for _ in range(FAILURE_BURST):
            assert anonymous.get("/dataPolicyOperations", headers=bad).status_code == 401
        assert_throttled(anonymous.get("/dataPolicyOperations", headers=bad))
        new_token = {"Authorization": f"Bearer {token_for(service.data_dir, *PERMISSIONS)}"}
        assert_throttled(anonymous.get("/dataPolicyOperations", headers=new_token))
    assert read(good).status_code == 404
    good.close()


def test_a_budget_allows_its_burst_then_one_request_per_interval():
    clock = Clock()
    budget = RateBudget(rate=2, burst=3, clock=clock)
    assert [budget.take("k") for _ in range(4)] == [0, 0, 0, 0.5]
    clock.now += 0.5
    assert budget.take("k") == 0
    assert budget.take("k") == 0.5


def test_a_refused_request_costs_nothing():
    """A client that keeps knocking while throttled is let in as soon as it would have been."""
    clock = Clock()
    budget = RateBudget(rate=1, burst=1, clock=clock)
    assert budget.take("k") == 0
    for _ in range(100):
        assert budget.take("k") == 1
    clock.now += 1
    assert budget.take("k") == 0


def test_wait_says_what_take_would_without_spending():
    clock = Clock()
    budget = RateBudget(rate=1, burst=2, clock=clock)
    for _ in range(5):
        assert budget.wait("k") == 0
    assert (budget.take("k"), budget.take("k")) == (0, 0)
    assert budget.wait("k") == budget.take("k") == 1
    clock.now += 1
    assert budget.wait("k") == 0


def test_a_budget_remembers_a_bounded_number_of_clients():
    """Many clients do not grow memory without bound: idle ones (full buckets) go first, then
    the longest-known."""
    clock = Clock()
    budget = RateBudget(rate=1, burst=1, max_clients=100, clock=clock)
    for key in range(1000):
        budget.take(key)
    assert len(budget.full_at) <= 100
    clock.now += 10  # every bucket full again: all forgotten at the next sweep
    for key in range(1000, 1100):
        budget.take(key)
    assert set(budget.full_at) >= {1099}
    assert len(budget.full_at) <= 100


def test_refused_permissions_spend_the_clients_budget(service: Service):
    """403s (a valid token without User.Export.All) count against the client's read budget
    like any other request: past it they are 429s, not more 403s."""
    token = token_for(service.data_dir, "User.Read.All", subject=str(uuid.uuid4()))
    headers = {"Authorization": f"Bearer {token}"}
    with service.client(headers=headers) as client:
        statuses = [client.get("/dataPolicyOperations").status_code for _ in range(READ_BURST + 2)]
    assert statuses[:READ_BURST] == [403] * READ_BURST
    assert 429 in statuses[READ_BURST:]


def test_writes_are_limited_by_default_and_a_zero_rate_turns_a_budget_off():
    default = ClientLimits(LimitsConfig())
    assert default.writes is not None
    assert default.reads is not None
    off = ClientLimits(LimitsConfig(read_rate=0))
    assert off.reads is None
    assert off.take("GET", "anyone") == 0
