"""`--wait`'s polling through a rate limit or an outage longer than one request's repeats: a
request waits out `MAX_RETRIES` 429s or 503s in a row (`retry_wait`), then polling goes on
until the operation ends or the timeout passes, as a job runner's `wait` does; the CLI's own
client against a transport that answers as a throttled service would, on an injected clock."""

from __future__ import annotations

import httpx
import pytest

from datapolicy.cli.client import MAX_RETRIES, Api
from datapolicy.cli.export import EXIT_TIMED_OUT, follow

URL = "http://127.0.0.1:9/v1.0"
OPERATION = f"{URL}/dataPolicyOperations/op-1"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def throttled_for(answers: int, fake: FakeTime) -> Api:
    """An `Api` whose first `answers` GETs are 503 with `Retry-After: 1`, then the operation,
    complete."""
    seen = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal seen
        seen += 1
        if seen <= answers:
            return httpx.Response(503, headers={"Retry-After": "1"}, json={"error": {}})
        return httpx.Response(200, json={"id": "op-1", "status": "complete", "progress": 100})

    api = Api(URL, "token", sleep=fake.sleep)
    api.http = httpx.Client(transport=httpx.MockTransport(handle))
    return api


def test_polling_outlasts_more_refusals_in_a_row_than_one_request_repeats():
    fake = FakeTime()
    api = throttled_for(3 * (MAX_RETRIES + 1), fake)
    operation = follow(api, OPERATION, 600, show=False, clock=fake.clock, sleep=fake.sleep)
    assert operation["status"] == "complete"


def test_an_outage_longer_than_the_timeout_ends_with_the_timeout():
    fake = FakeTime()
    api = throttled_for(10_000, fake)
    with pytest.raises(SystemExit) as exited:
        follow(api, OPERATION, 30, show=False, clock=fake.clock, sleep=fake.sleep)
    assert exited.value.code == EXIT_TIMED_OUT
    assert 1030 < fake.now <= 1030 + MAX_RETRIES * 1 + 1  # the timeout, and one poll's repeats
