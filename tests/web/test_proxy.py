"""Behind reverse proxies (web/middleware/proxy.py): X-Forwarded-For and X-Forwarded-Proto are
believed only from trusted proxies, and then decide the client's address and the scheme that
`Location` and `@odata.context` use."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest

from conftest import Service, configured_app
from datapolicy.web.middleware.proxy import ProxyHeaders

pytestmark = pytest.mark.operation_store  # starts services on the test store

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
CASES = {
    # name: (peer, [(header, value)], the client and scheme the app sees)
    "a direct client": ("203.0.113.5", [], ("203.0.113.5", "http")),
    "an untrusted peer's headers are ignored": (
        "203.0.113.5",
        [("x-forwarded-for", "198.51.100.1"), ("x-forwarded-proto", "https")],
        ("203.0.113.5", "http"),
    ),
    "a trusted proxy's client and scheme": (
        "10.1.2.3",
        [("x-forwarded-for", "198.51.100.1"), ("x-forwarded-proto", "https")],
        ("198.51.100.1", "https"),
    ),
    "a client's own made-up entries are skipped": (
        "10.1.2.3",
        [("x-forwarded-for", "1.2.3.4, 198.51.100.1"), ("x-forwarded-proto", "http, https")],
        ("198.51.100.1", "https"),
    ),
    "a chain of trusted proxies": (
        "::1",
        [
            ("x-forwarded-for", "198.51.100.1, 10.9.9.9"),
            ("x-forwarded-for", "10.0.0.7"),
            ("x-forwarded-proto", "https, http, http"),
        ],
        ("198.51.100.1", "https"),
    ),
    "only the edge proxy sets the scheme": (
        "::1",
        [("x-forwarded-for", "198.51.100.1, 10.9.9.9"), ("x-forwarded-proto", "HTTPS")],
        ("198.51.100.1", "https"),
    ),
    "garbage behind a trusted proxy": (
        "10.1.2.3",
        [("x-forwarded-for", "not-an-address"), ("x-forwarded-proto", "gopher")],
        ("10.1.2.3", "http"),
    ),
    "only proxies": ("10.1.2.3", [("x-forwarded-for", "10.0.0.1")], ("10.1.2.3", "http")),
}


@pytest.mark.parametrize("case", CASES)
async def test_forwarded_headers_count_only_from_trusted_proxies(case: str):
    peer, headers, expected = CASES[case]
    scope = {
        "type": "http",
        "scheme": "http",
        "client": (peer, 50000),
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }
    ProxyHeaders(PROXIES).rewrite(scope)
    assert (scope["client"][0], scope["scheme"]) == expected


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service that trusts this machine as its load balancer."""
    config = '[server]\ntrusted_proxies = ["127.0.0.1/32", "::1"]\n'
    running = configured_app(tmp_path_factory.mktemp("proxy"), config, "--workers", "0")
    yield running
    running.stop()


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}


def test_behind_a_tls_load_balancer_urls_say_https(behind_proxy: Service, user_id: str):
    with behind_proxy.client() as http:
        created = http.post("/dataPolicyOperations", json={"userId": user_id}, headers=FORWARDED)
        assert created.status_code == 201, created.text
        host = httpx.URL(behind_proxy.url).netloc.decode()
        assert created.headers["location"].startswith(f"https://{host}/v1.0/")
        assert created.json()["@odata.context"].startswith(f"https://{host}/v1.0/$metadata")
        read = http.get(
            created.headers["location"].replace("https://", "http://"), headers=FORWARDED
        )
        assert read.json()["@odata.context"].startswith("https://")


def test_an_untrusted_peer_cannot_choose_the_scheme(service: Service, user_id: str):
    with service.client() as http:
        created = http.post("/dataPolicyOperations", json={"userId": user_id}, headers=FORWARDED)
        assert created.status_code == 201, created.text
        assert created.headers["location"].startswith("http://")
