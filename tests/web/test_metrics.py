"""`GET /metrics` (Prometheus) scraped from real processes while exports run: request counts by
route template and status, operations by status and the queue from the store, and the export
counters, from `datapolicy serve`'s export threads and from a `datapolicy worker --metrics-port`.
Every page must parse with prometheus_client's own parser."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Service, free_port, start_service, start_worker, stop_process, wait_for
from datapolicy.demo import demo_user_id
from datapolicy.metrics import StoreCollector
from datapolicy.model import OperationStatus

# Scraped from processes: a process's metrics are its own (prometheus_client's registry is one
# per process, shared by every service started in it).
pytestmark = [pytest.mark.e2e, pytest.mark.operation_store]


@pytest.fixture(scope="module")
def demo_service(demo_process: Service) -> Service:
    """The session's demo service in a process of its own."""
    return demo_process


EXPORT_TIMEOUT_S = 30
SCRAPE_TOKEN = "scrape-token-0123456789"
BY_ID = "/v1.0/dataPolicyOperations/{operation_id}"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    """Every sample of a metrics page, parsed as Prometheus parses it."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def metrics_url(service: Service) -> str:
    return f"{service.url.removesuffix('/v1.0')}/metrics"


def wait_complete(http: httpx.Client, operation_id: str, logs: Path) -> dict[str, object]:
    def complete() -> dict[str, object] | None:
        operation = http.get(f"/dataPolicyOperations/{operation_id}").json()
        assert operation["status"] in ("notStarted", "running", "complete"), operation
        return operation if operation["status"] == "complete" else None

    return wait_for("the export", complete, EXPORT_TIMEOUT_S, logs.read_text)


def test_an_export_in_the_serving_process_moves_its_counters(demo_service: Service):
    """With the export threads in `datapolicy serve`, one scrape before and one after an export
    show one more completed export, its records and bytes, and the requests that followed it,
    counted under the route template rather than the operation's id."""
    before = scrape(metrics_url(demo_service))
    with demo_service.client() as http:
        operation = http.post("/dataPolicyOperations", json={"userId": demo_user_id(3)}).json()
        wait_complete(http, operation["id"], demo_service.log)
    after = scrape(metrics_url(demo_service))

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("datapolicy_exports_total", outcome="completed") >= 1
    assert moved("datapolicy_export_rows_total") > 0
    assert moved("datapolicy_export_bytes_total") > 0
    assert moved("datapolicy_export_duration_seconds_count") >= 1
    requests = "datapolicy_http_request_duration_seconds_count"
    created = {"method": "POST", "route": "/v1.0/dataPolicyOperations", "status": "201"}
    assert moved(requests, **created) >= 1
    assert moved(requests, method="GET", route=BY_ID, status="200") >= 1
    assert not any(operation["id"] in str(labels) for _, labels in after)
    # The store's gauges are kept for [metrics] store_max_age_seconds (5): within that, they
    # show the export complete.
    wait_for(
        "the store's gauges to count the export",
        lambda: value(
            scrape(metrics_url(demo_service)), "datapolicy_operations", status="complete"
        ),
        10,
        demo_service.log.read_text,
    )


@pytest.fixture
def api_and_worker(tmp_path: Path) -> Iterator[tuple[Service, str, Path]]:
    """An API process without export threads whose metrics need a scrape token, and the URL a
    `datapolicy worker` will serve its own metrics on (started by the test)."""
    config = tmp_path / "datapolicy.toml"
    config.write_text(f'[metrics]\ntoken = "{SCRAPE_TOKEN}"\nstore_max_age_seconds = 0\n')
    service = start_service(tmp_path / "data", "--demo", "--workers", "0", "--config", str(config))
    yield service, f"http://127.0.0.1:{free_port()}/metrics", config
    service.stop()


def test_the_queue_and_a_separate_workers_export_counters(
    api_and_worker: tuple[Service, str, Path], tmp_path: Path
):
    """An operation nobody works on shows as queue depth 1 with a growing age; once a
    `datapolicy worker --metrics-port` has run it, the store's gauges say complete and the
    worker's own page counts the export. With `[metrics] token`, a scrape without it is a 401
    in Graph's error shape."""
    service, worker_metrics, config = api_and_worker
    refused = httpx.get(metrics_url(service), timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"

    with service.client() as http:
        operation = http.post("/dataPolicyOperations", json={"userId": demo_user_id(4)}).json()
        time.sleep(0.1)
        waiting = scrape(metrics_url(service), SCRAPE_TOKEN)
        assert value(waiting, "datapolicy_queue_depth") == 1
        assert value(waiting, "datapolicy_operations", status="notStarted") == 1
        assert 0 < value(waiting, "datapolicy_queue_oldest_age_seconds") < 60

        port = worker_metrics.removeprefix("http://127.0.0.1:").removesuffix("/metrics")
        worker = start_worker(tmp_path, service.data_dir, config, "--demo", "--metrics-port", port)
        try:
            wait_complete(http, operation["id"], tmp_path / "worker.log")
            done = scrape(metrics_url(service), SCRAPE_TOKEN)
            exported = scrape(worker_metrics)
            health = httpx.get(worker_metrics.replace("/metrics", "/healthz"), timeout=10)
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
        finally:
            stop_process(worker)

    assert value(done, "datapolicy_queue_depth") == 0
    assert value(done, "datapolicy_queue_oldest_age_seconds") == 0
    assert value(done, "datapolicy_operations", status="complete") == 1
    assert value(done, "datapolicy_operations", status="notStarted") == 0
    assert value(done, "datapolicy_exports_total", outcome="completed") == 0  # not this process
    assert value(exported, "datapolicy_exports_total", outcome="completed") == 1
    assert value(exported, "datapolicy_export_rows_total") > 0
    assert value(exported, "datapolicy_export_bytes_total") > 0
    assert value(exported, "datapolicy_lease_expiries_total") == 0


def test_operations_by_status_has_one_series_per_real_status():
    """`datapolicy_operations` has a series for each status an operation can be in, at 0 when
    none is: Graph's `unknownFutureValue` enum sentinel is no state and no series."""

    class Store:
        def status_summary(self) -> dict[OperationStatus, tuple[int, None]]:
            return {OperationStatus.RUNNING: (3, None)}

    families = {family.name: family for family in StoreCollector(Store()).collect()}  # type: ignore[arg-type]
    series = {s.labels["status"]: s.value for s in families["datapolicy_operations"].samples}
    assert series == {
        status.value: (3 if status is OperationStatus.RUNNING else 0)
        for status in OperationStatus
        if status is not OperationStatus.UNKNOWN_FUTURE_VALUE
    }
    assert "unknownFutureValue" not in series
