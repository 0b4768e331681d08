"""`datapolicy erase --wait` on an erasure that waits for approval (`[erasure] approval =
"required"`), on an injected clock against the service in process: it says once that the
erasure waits, who may approve it and how (`datapolicy ops approve`, or the POST), and whether
it is a dry run and who requested it; says who approved it once someone did, and times out with
status 5 saying what it still waits for. `datapolicy ops approve` gives the approval, and refuses
the requester's own; `ops list` says which erasures are dry runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from commands import against, datapolicy, json_output

from approvals import serve
from conftest import AppService, start_configured, token_for
from datapolicy.auth.permissions import ERASE, EXPORT
from datapolicy.cli.client import Api
from datapolicy.cli.export import EXIT_TIMED_OUT, POLL_INTERVAL_S, follow
from erasureshop import erasure_config

pytestmark = pytest.mark.operation_store  # starts services on the test store


class FakeTime:
    """A clock only `sleep` moves; `on_sleep(n)` runs at the n-th sleep."""

    def __init__(self, on_sleep: Callable[[int], None] = lambda n: None) -> None:
        self.now = 1000.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.on_sleep(self.sleeps)
        self.now += seconds


@pytest.fixture
def required(tmp_path: Path) -> Iterator[AppService]:
    service = serve(tmp_path, "required")
    yield service
    service.stop()


def api_for(service: AppService, token: str) -> Api:
    api = Api(service.url, token)
    api.http = httpx.Client(
        base_url=service.url,
        transport=service.transport,
        headers={"Authorization": f"Bearer {token}"},
    )
    return api


def started(service: AppService) -> tuple[Api, str]:
    api = api_for(service, token_for(service.data_dir, ERASE, EXPORT))
    response = api.request("POST", "/users/ada/erasePersonalData", json={})
    return api, response.headers["location"]


def test_waiting_for_approval_is_said_once_with_how_to_approve_then_the_wait_times_out(
    required: AppService,
):
    api, url = started(required)
    operation_id = url.rsplit("/", 1)[-1]
    fake = FakeTime()
    lines: list[str] = []
    with pytest.raises(SystemExit) as exited:
        follow(api, url, 10, show=True, clock=fake.clock, sleep=fake.sleep, echo=lines.append)
    assert exited.value.code == EXIT_TIMED_OUT
    assert fake.sleeps == int(10 / POLL_INTERVAL_S) + 1  # polled until the timeout, no longer
    waiting = [line for line in lines if line.startswith("waiting for approval")]
    assert waiting == [
        f"waiting for approval: erasure {operation_id} stays notStarted until a principal "
        "other than its requester, holding PersonalData.Erase.All, approves it:"
    ]
    assert f"  datapolicy ops approve {operation_id} --token <their token>" in lines
    assert f"  (or POST {required.url}/dataPolicyOperations/{operation_id}/approve)" in lines
    assert lines[-1] == "timed out: the operation is still notStarted, waiting for approval"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({}, "the erasure itself (dryRun false): once run, it cannot be undone"),
        ({"dryRun": True}, "a dry run (dryRun true): it changes nothing"),
    ],
)
def test_waiting_for_approval_says_whether_it_is_a_dry_run_and_who_requested_it(
    required: AppService, body: dict[str, bool], said: str
):
    """Beside how to approve it, a line says what is to be approved: the erasure itself or a
    dry run (`dryRun`), and who requested it (`approval.requestedBy`); the lines before it are
    as they were."""
    api = api_for(required, token_for(required.data_dir, ERASE, EXPORT, subject="alice"))
    url = api.request("POST", "/users/bob/erasePersonalData", json=body).headers["location"]
    lines: list[str] = []
    fake = FakeTime()
    with pytest.raises(SystemExit):
        follow(api, url, 1, show=True, clock=fake.clock, sleep=fake.sleep, echo=lines.append)
    first = next(i for i, line in enumerate(lines) if line.startswith("waiting for approval"))
    assert lines[first + 1].startswith("  datapolicy ops approve ")
    assert lines[first + 3] == f"  it is {said}; requested by alice (application datapolicy-cli)"


def test_an_approval_given_meanwhile_is_said_and_no_longer_waited_for(required: AppService):
    api, url = started(required)
    approver = api_for(required, token_for(required.data_dir, ERASE, subject="dpo"))

    def approve_at_the_third_poll(sleeps: int) -> None:
        if sleeps == 3:
            approver.request("POST", f"{url}/approve")

    fake = FakeTime(approve_at_the_third_poll)
    lines: list[str] = []
    with pytest.raises(SystemExit) as exited:  # no worker runs here: it stays notStarted
        follow(api, url, 5, show=True, clock=fake.clock, sleep=fake.sleep, echo=lines.append)
    assert exited.value.code == EXIT_TIMED_OUT
    approved = [line for line in lines if line.startswith("approved by ")]
    assert len(approved) == 1, lines
    assert approved[0].startswith("approved by dpo (application datapolicy-cli) at ")
    assert lines.index(approved[0]) > lines.index(next(x for x in lines if "waiting" in x))
    assert lines[-1] == "timed out: the operation is still notStarted"


def test_an_export_says_nothing_of_approval(required: AppService):
    api = api_for(required, token_for(required.data_dir, EXPORT))
    url = api.request("POST", "/dataPolicyOperations", json={"userId": "ada"}).headers["location"]
    fake = FakeTime()
    lines: list[str] = []
    with pytest.raises(SystemExit):
        follow(api, url, 2, show=True, clock=fake.clock, sleep=fake.sleep, echo=lines.append)
    assert not [line for line in lines if "approv" in line]


@pytest.mark.e2e
def test_erase_wait_then_ops_approve_in_processes(tmp_path: Path):
    """The commands as a person runs them against `serve`: `erase --wait --timeout` says how
    to approve and exits 5; `ops approve` with the requester's (minted) token is refused, with
    another subject's token approves."""
    root = tmp_path / "root"
    root.mkdir()
    service = start_configured(root, erasure_config(root, "required"))
    try:
        waited = datapolicy("erase", "ada", "--wait", "--timeout", "2", *against(service))
        assert waited.returncode == EXIT_TIMED_OUT, waited.stderr
        assert "waiting for approval: erasure " in waited.stderr
        operation_id = waited.stderr.split("waiting for approval: erasure ")[1].split()[0]
        assert f"datapolicy ops approve {operation_id} --token" in waited.stderr
        assert waited.stderr.splitlines()[-1] == (
            "timed out: the operation is still notStarted, waiting for approval"
        )
        own = datapolicy("ops", "approve", operation_id, *against(service))
        assert own.returncode == 1
        assert "403 Authorization_RequestDenied" in own.stderr
        other = token_for(service.data_dir, ERASE, subject="dpo")
        given = datapolicy("ops", "approve", operation_id, "--url", service.url, "--token", other)
        assert (given.returncode, given.stdout) == (0, f"approved {operation_id}\n"), given.stderr
        shown = json_output(datapolicy("ops", "show", operation_id, "--json", *against(service)))
        assert shown["approval"]["approvedBy"]["subject"] == "dpo"
    finally:
        service.stop()


@pytest.mark.e2e
def test_ops_list_says_which_erasures_are_dry_runs(tmp_path: Path):
    """`ops list` has a dryRun column beside operationType: True for a dry run, False for the
    erasure itself; and `--filter "dryRun eq false"` lists only the latter."""
    root = tmp_path / "root"
    root.mkdir()
    service = start_configured(root, erasure_config(root, "none"), "--workers", "0")
    try:
        with service.client() as client:
            for user, body in (("ada", {"dryRun": True}), ("bob", {"dryRun": False})):
                started = client.post(f"/users/{user}/erasePersonalData", json=body)
                assert started.status_code == 202, started.text
        table = datapolicy("ops", "list", "--orderby", "userId", *against(service))
        assert table.returncode == 0, table.stderr
        rows = [
            [cell.strip() for cell in line.strip("┃│").split("┃" if "┃" in line else "│")]
            for line in table.stdout.splitlines()
            if line.startswith(("┃", "│"))
        ]
        columns = rows[0]
        assert columns[columns.index("operationType") + 1] == "dryRun"
        shown = {row[columns.index("userId")]: row[columns.index("dryRun")] for row in rows[1:]}
        assert shown == {"ada": "True", "bob": "False"}
        real = datapolicy("ops", "list", "--filter", "dryRun eq false", "--json", *against(service))
        assert [operation["userId"] for operation in json_output(real)] == ["bob"]
    finally:
        service.stop()
