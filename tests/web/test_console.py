"""The web console at `/console`: its files are public and locked down by headers, and a real
browser (Debian's headless Chromium, driven by Playwright) can sign in, start exports, watch
one complete, download and verify its package, and cancel and delete with confirmation; find
anyone in a 3,600-person directory (searched by the server, paged, a cut list said so), sort
by the names shown, sign in by a `#token=` link in an open tab, fit a phone's width; and erase
a person: a dry run first, approved by another principal, then the erasure and its receipt;
where an erasure is approved, say whether it is a dry run and who requested it.

The browser is the system's `/usr/bin/chromium` (scripts/install-test-services installs it;
Playwright's own browser download is never used) with a fresh profile, its background
networking off, and every request that is not to the service under test aborted. Under CI=true
a missing browser or Playwright fails the test rather than skipping it. Screenshots are kept
in `test-artifacts/`: console.png (the table with the finished export), console-detail.png
(its detail view), console-desktop.png and console-phone.png (the directory test's page at
1280 and 390 px wide; -full.png the whole page), console-phone-sign-in.png, console-erasure.png
(an erasure's dry-run summary), console-approval.png (the detail view of an erasure waiting for
approval).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import struct
import uuid
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from chromium import ARTIFACTS, chromium
from conftest import (
    Service,
    start_configured,
    start_service,
    start_worker,
    stop_process,
    token_for,
)
from datapolicy.auth.permissions import EXPORT, PERMISSIONS, READ_USERS
from datapolicy.demo import demo_user_id
from datapolicy.engine.verify import verify_package
from erasureshop import erasure_config

pytestmark = pytest.mark.operation_store  # starts services on the test store

EXPORT_TIMEOUT_MS = 30_000


def _server_root(service: Service) -> str:
    return service.url.removesuffix("/v1.0")


class _Scripts(HTMLParser):
    """Every <script> of a page: its attributes, and whether it has inline code."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append(dict(attrs))
        if any(name.startswith("on") for name, _ in attrs):
            self.inline = True  # an event handler attribute is inline script too

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline = True


def test_the_console_is_public_static_content_under_a_strict_policy(service: Service):
    root = service.root
    with service.client(headers={}) as http:  # no token
        redirect = http.get(f"{root}/console")
        page = http.get(f"{root}/console/")
        script = http.get(f"{root}/console/console.js")
        missing = http.get(f"{root}/console/no-such-file.js")
        escape = http.get(f"{root}/console/../v1.0/dataPolicyOperations")
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/console/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["content-security-policy"] == policy
    scripts = _Scripts()
    scripts.feed(page.text)
    assert scripts.scripts == [{"type": "module", "src": "/console/console.js"}]
    assert not scripts.inline
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ResourceNotFound"
    # `..` is collapsed by the client; either way the API still wants its token.
    assert escape.status_code == 401


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Chromium with a fresh profile; its contexts reach the loopback service only."""
    with chromium(
        tmp_path / "profile", accept_downloads=True, viewport={"width": 1280, "height": 800}
    ) as context:
        yield context


def _row(page: Any, user_name: str) -> Any:
    return page.locator("#operations tbody tr", has_text=user_name)


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_an_export_started_watched_downloaded_cancelled_and_deleted_in_a_browser(
    tmp_path: Path, browser: Any
):
    from playwright.sync_api import expect

    # No export workers yet, so the first export waits (notStarted) to be cancelled.
    service = start_service(tmp_path / "data", "--demo", "--workers", "0")
    worker = None
    try:
        root = _server_root(service)
        browser.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(root) else route.abort()
            ),
        )
        page = browser.pages[0] if browser.pages else browser.new_page()
        # Script errors and CSP violations ("Refused to ..."); the browser's own note of a 4xx
        # answer ("Failed to load resource") is expected where the test provokes one.
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: _note_error(problems, message))
        page.goto(f"{root}/console")

        # Sign in with a pasted token.
        page.get_by_label("Access token").fill(service.token)
        page.get_by_role("button", name="Sign in").click()
        users = page.get_by_label("User", exact=True)
        expect(users.locator("option")).not_to_have_count(0)

        # A location the server refuses: its 400 message is shown, nothing is started.
        page.get_by_label("Find a user").fill("")
        users.select_option(index=0)
        page.get_by_label("Storage location").fill("/etc/not-a-permitted-root")
        page.get_by_role("button", name="Start export").click()
        expect(page.get_by_role("alert")).to_contain_text("not inside an allowed root")
        expect(page.locator("#empty")).to_be_visible()
        page.get_by_label("Storage location").fill("")

        # Start an export, then cancel it; declining the confirmation first keeps it.
        first = _start_export(page, service, demo_user_id(0))
        _row(page, first).get_by_role("button").click()
        detail = page.locator("#detail")
        expect(detail).to_be_visible()
        detail.get_by_role("button", name="Cancel export").click()
        confirm = page.locator("#confirm")
        expect(confirm).to_be_visible()
        confirm.get_by_role("button", name="Keep it").click()
        expect(confirm).to_be_hidden()
        expect(detail).to_be_visible()
        detail.get_by_role("button", name="Cancel export").click()
        confirm.get_by_role("button", name="Cancel export").click()
        expect(detail).to_be_hidden()
        expect(_row(page, first)).to_have_count(0)
        with service.client() as http:
            assert http.get("/dataPolicyOperations/$count").text == "0"

        # Start a second; a worker starts and the row goes live to complete without a reload.
        second = _start_export(page, service, demo_user_id(1))
        row = _row(page, second)
        expect(row.locator(".status")).to_have_text("notStarted")
        expect(row.locator(".type")).to_have_text("Export")
        config = tmp_path / "worker.toml"
        config.write_text("")
        worker = start_worker(tmp_path, service.data_dir, config, "--demo")
        expect(row.locator(".status")).to_have_text("complete", timeout=EXPORT_TIMEOUT_MS)
        expect(row.locator("progress")).to_have_attribute("value", "100")
        expect(page.locator("#announcer")).to_have_text(re.compile("complete"))

        # Filter and sort run on the server; the table follows.
        page.get_by_label("Status").select_option("failed")
        expect(row).to_have_count(0)
        expect(page.locator("#empty")).to_be_visible()
        page.get_by_label("Status").select_option("")
        expect(row).to_have_count(1)
        page.get_by_role("button", name="User", exact=True).click()
        expect(page.locator("th", has_text="User").first).to_have_attribute(
            "aria-sort", "ascending"
        )
        expect(row).to_have_count(1)
        page.get_by_role("button", name="Type", exact=True).click()  # operationType orders
        expect(page.locator("th", has_text="Type")).to_have_attribute("aria-sort", "ascending")
        expect(row).to_have_count(1)

        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "console.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"console screenshot: {screenshot}")

        # The detail view, the download through the API (a Blob URL), and the package verifies.
        row.get_by_role("button").click()
        expect(detail).to_contain_text("complete")
        page.screenshot(path=str(ARTIFACTS / "console-detail.png"))
        with page.expect_download() as download_info:
            detail.get_by_role("button", name="Download package").click()
        download = download_info.value
        assert re.fullmatch(r"[0-9a-f-]{36}\.zip", download.suggested_filename)
        package = tmp_path / download.suggested_filename
        download.save_as(package)
        assert verify_package(package) == []
        # The totals the worker recorded (progressDetail) are the package's.
        with zipfile.ZipFile(package) as opened:
            manifest = json.loads(opened.read("manifest.json"))
        records = sum(source["records"] for source in manifest["sources"])
        nbytes = sum(s["bytes"] for s in manifest["sources"] if s["kind"] == "files")
        expect(detail).to_contain_text(f"{records:,} rows, {nbytes:,} bytes of files")

        # Delete it, with confirmation: the row and the package go.
        detail.get_by_role("button", name="Delete").click()
        confirm.get_by_role("button", name="Delete").click()
        expect(_row(page, second)).to_have_count(0)
        expect(page.locator("#empty")).to_be_visible()
        assert problems == []
    finally:
        if worker is not None:
            stop_process(worker)
        service.stop()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def _note_error(problems: list[str], message: Any) -> None:
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        problems.append(message.text)


def _start_export(page: Any, service: Service, user_id: str) -> str:
    """Find the user in the directory picker and start; returns the name the table shows."""
    from playwright.sync_api import expect

    with service.client() as http:
        name = http.get(f"/users/{user_id}").json()["displayName"]
    page.get_by_label("Find a user").fill(name)
    page.get_by_label("User", exact=True).select_option(user_id)
    page.get_by_role("button", name="Start export").click()
    expect(_row(page, name)).to_have_count(1)
    return name


# --- a large directory, sorting by name, `#token=` links, a phone's width ---------------------

CUSTOMERS = 3600
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _customer_id(index: int) -> str:
    """Ids in no relation to the names' order (as a directory's object ids are)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"customer-{index}"))


def _customers_config(root: Path) -> str:
    """A shop whose directory holds CUSTOMERS people, `Customer 0001 <customer1@shop.example>`."""
    shop = root / "shop.sqlite3"
    with sqlite3.connect(shop) as connection:
        connection.executescript(
            """
            CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, email TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total INTEGER);
            """
        )
        connection.executemany(
            "INSERT INTO users VALUES (?, ?, ?)",
            [
                (_customer_id(i), f"Customer {i:04d}", f"customer{i}@shop.example")
                for i in range(1, CUSTOMERS + 1)
            ],
        )
    return f"""
[directory]
url = "sqlite:///{shop}"
table = "users"
display_name_column = "name"
mail_column = "email"

[[sources.sql]]
name = "shop"
url = "sqlite:///{shop}"

  [[sources.sql.tables]]
  table = "orders"
  user_key = "customer"
"""


def _png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def _route_to(context: Any, root: str) -> None:
    context.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(root) else route.abort(),
    )


def _fits(page: Any, size: dict[str, int], name: str) -> None:
    """At `size`, nothing is wider than the viewport, and the screenshot is the viewport's."""
    page.set_viewport_size(size)
    assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    viewport = ARTIFACTS / f"console-{name}.png"
    page.screenshot(path=str(viewport))
    assert _png_size(viewport) == (size["width"], size["height"])
    whole = ARTIFACTS / f"console-{name}-full.png"
    page.screenshot(path=str(whole), full_page=True)
    width, height = _png_size(whole)
    assert width == size["width"]
    assert height >= size["height"]


@pytest.mark.e2e  # a `serve` process
def test_a_large_directory_is_searched_on_the_server_and_the_page_fits_a_phone(tmp_path: Path):
    from playwright.sync_api import expect

    service = start_configured(tmp_path, _customers_config(tmp_path), "--workers", "0")
    try:
        root = _server_root(service)
        with chromium(tmp_path / "profile", viewport=DESKTOP) as browser:
            _route_to(browser, root)
            page = browser.pages[0] if browser.pages else browser.new_page()
            directory_requests: list[Any] = []
            page.on(
                "request",
                lambda request: (
                    directory_requests.append(request) if "/v1.0/users?" in request.url else None
                ),
            )
            page.goto(f"{root}/console/")

            # A malformed token signs out with the server's message; a good one clears it.
            page.get_by_label("Access token").fill("not-a-token")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_be_visible()
            expect(page.get_by_label("Access token")).to_be_visible()
            page.get_by_label("Access token").fill(service.token)
            page.get_by_role("button", name="Sign in").click()
            users = page.get_by_label("User", exact=True)
            count = page.locator("#user-count")
            expect(count).to_have_text("Showing 50 of 3,600: refine the search, or show more.")
            expect(page.get_by_role("alert")).to_be_hidden()
            expect(users.locator("option")).to_have_count(50)
            page.get_by_role("button", name="Show more").click()
            expect(count).to_have_text("Showing 100 of 3,600: refine the search, or show more.")
            expect(users.locator("option")).to_have_count(100)

            # Anyone in the directory is found, by the server, not only a first page.
            page.get_by_label("Find a user").fill("customer999@")
            expect(users.locator("option")).to_have_count(1)
            expect(users.locator("option")).to_have_text("Customer 0999 <customer999@shop.example>")
            expect(count).to_have_text("1 user.")
            page.get_by_label("Find a user").fill("0999")  # a word of the name
            expect(users.locator("option")).to_have_text("Customer 0999 <customer999@shop.example>")
            page.get_by_label("Find a user").fill(_customer_id(42))  # an id
            expect(users.locator("option")).to_have_text(
                ["Customer 0042 <customer42@shop.example>"]
            )
            expect(count).to_have_text("1 user.")
            page.get_by_label("Find a user").fill("customer35")  # mails: 35, 350-359, 3500-3599
            expect(count).to_have_text("Showing 50 of 111: refine the search, or show more.")
            assert directory_requests
            for request in directory_requests:  # Graph's advanced queries need the header
                assert request.headers.get("consistencylevel") == "eventual", request.url

            # Sorted by "User": by the names shown, not the ids.
            chosen = [7, 3, 12]
            by_name = [f"Customer {i:04d}" for i in sorted(chosen)]
            by_id = [f"Customer {i:04d}" for i in sorted(chosen, key=_customer_id)]
            assert by_id != by_name
            assert by_id != by_name[::-1]
            with service.client() as http:
                for index in chosen:
                    answer = http.post(
                        "/dataPolicyOperations", json={"userId": _customer_id(index)}
                    )
                    assert answer.status_code == 201, answer.text
            page.get_by_label("Status").select_option("")  # a refresh, without waiting a poll
            cells = page.locator("#operations tbody td.user")
            expect(cells).to_have_count(3)
            sort = page.locator("#operations th button[data-sort=user]")  # named "User ▲" once
            sort.click()
            expect(cells).to_have_text(by_name)
            sort.click()
            expect(cells).to_have_text(by_name[::-1])

            _fits(page, DESKTOP, "desktop")
            _fits(page, PHONE, "phone")
            page.set_viewport_size(DESKTOP)

            # Signed out, a `#token=` link opened in the same tab signs in, and leaves the
            # address bar.
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_label("Access token")).to_be_visible()
            _fits(page, PHONE, "phone-sign-in")
            page.set_viewport_size(DESKTOP)
            page.goto(f"{root}/console/#token={service.token}")
            expect(count).to_contain_text("Showing 50 of 3,600")
            assert "#" not in page.url
            assert "token" not in page.url
    finally:
        service.stop()


# --- erasure: a dry run first, approval by another principal, the receipt ----------------------


def _sign_in(page: Any, root: str, token: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{root}/console/")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#user-count")).not_to_have_text("")


def _approve(page: Any, user_name: str) -> None:
    """In `page` (another principal's tab): approve the user's erasure that waits."""
    from playwright.sync_api import expect

    page.get_by_label("Status").select_option("notStarted")
    row = _row(page, user_name)
    expect(row).to_have_count(1)
    row.get_by_role("button").click()
    page.locator("#detail").get_by_role("button", name="Approve erasure").click()
    expect(page.locator("#announcer")).to_have_text(f"Erasure for {user_name} approved.")
    page.locator("#detail").get_by_role("button", name="Close").click()


@pytest.mark.e2e  # a `serve` process
def test_an_erasure_dry_run_approved_erased_and_its_receipt_in_a_browser(tmp_path: Path):
    from playwright.sync_api import expect

    service = start_configured(tmp_path, erasure_config(tmp_path, approval="required"))
    requester = token_for(service.data_dir, *PERMISSIONS, subject="requester")
    approver = token_for(service.data_dir, *PERMISSIONS, subject="approver")
    exporter = token_for(service.data_dir, EXPORT, READ_USERS, subject="exporter")
    shop = tmp_path / "shop.sqlite3"
    try:
        root = _server_root(service)
        with chromium(tmp_path / "profile", accept_downloads=True, viewport=DESKTOP) as browser:
            _route_to(browser, root)
            page = browser.pages[0] if browser.pages else browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda message: _note_error(problems, message))

            # Without PersonalData.Erase.All the 403 says which permission is missing.
            _sign_in(page, root, exporter)
            page.get_by_label("Find a user").fill("ada")
            page.get_by_label("User", exact=True).select_option("ada")
            page.get_by_role("button", name="Dry-run erasure").click()
            expect(page.get_by_role("alert")).to_contain_text(
                "Erasing needs a token with PersonalData.Erase.All"
            )
            page.get_by_role("button", name="Sign out").click()

            # The dry run waits for another principal's approval; its requester cannot give it.
            _sign_in(page, root, requester)
            page.get_by_label("Find a user").fill("ada")
            page.get_by_label("User", exact=True).select_option("ada")
            page.get_by_role("button", name="Dry-run erasure").click()
            panel = page.locator("#erasure")
            expect(panel).to_contain_text("Erasure of Ada Lovelace")
            expect(panel.locator("#erasure-step")).to_contain_text(
                "Dry run: waiting for approval. Another person holding PersonalData.Erase.All"
            )
            row = _row(page, "Ada Lovelace")
            expect(row.locator(".type")).to_have_text("Erasure")
            expect(row.locator(".status")).to_have_text("Waiting for approval")
            row.get_by_role("button").click()
            detail = page.locator("#detail")
            expect(detail.locator("#detail-fields")).to_contain_text(
                "ApprovalWaiting for approval by another person"
            )
            detail.get_by_role("button", name="Approve erasure").click()
            expect(page.get_by_role("alert")).to_contain_text("other than the one who requested")
            detail.get_by_role("button", name="Close").click()
            expect(page.get_by_role("button", name="Erase Ada Lovelace")).to_be_hidden()

            other = browser.new_page()  # a tab of its own: its own session storage
            _sign_in(other, root, approver)
            _approve(other, "Ada Lovelace")

            # The dry run's summary; nothing changed yet; its package can be downloaded.
            expect(panel.locator("#erasure-step")).to_contain_text(
                "Dry run complete: nothing has changed", timeout=EXPORT_TIMEOUT_MS
            )
            summary = panel.locator("#erasure-summary tbody tr")
            expect(summary).to_have_text(
                [
                    re.compile(r"shop\s*users\s*mask\s*1\s*2"),
                    re.compile(r"shop\s*orders\s*delete\s*2\s*0"),
                    re.compile(r"shop\s*invoices\s*retain\s*1\s*0\s*tax law"),
                ]
            )
            with sqlite3.connect(shop) as connection:
                assert connection.execute("SELECT count(*) FROM orders").fetchone() == (3,)
            with page.expect_download() as dry_download:
                panel.get_by_role("button", name="Download dry-run package").click()
            dry_package = tmp_path / dry_download.value.suggested_filename
            dry_download.value.save_as(dry_package)
            assert verify_package(dry_package) == []
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "console-erasure.png"), full_page=True)

            # The erasure itself, confirmed, approved, run; then its receipt.
            page.get_by_role("button", name="Erase Ada Lovelace").click()
            confirm = page.locator("#confirm")
            expect(confirm).to_contain_text("cannot be undone")
            confirm.get_by_role("button", name="Erase Ada Lovelace").click()
            expect(panel.locator("#erasure-step")).to_contain_text("Erasure: waiting for approval.")
            _approve(other, "Ada Lovelace")
            expect(panel.locator("#erasure-step")).to_contain_text(
                "Erasure of Ada Lovelace complete", timeout=EXPORT_TIMEOUT_MS
            )
            with page.expect_download() as receipt_download:
                panel.get_by_role("button", name="Download receipt").click()
            receipt = receipt_download.value
            assert re.fullmatch(r"receipt-[0-9a-f-]{36}\.html", receipt.suggested_filename)
            receipt_file = tmp_path / receipt.suggested_filename
            receipt.save_as(receipt_file)
            text = receipt_file.read_text()
            assert "tax law" in text
            assert "ada@example.com" not in text
            with sqlite3.connect(shop) as connection:
                assert connection.execute("SELECT customer FROM orders").fetchall() == [("bob",)]

            # The detail view of a dry run says it holds no receipt; of the erasure, gives it.
            page.get_by_label("Status").select_option("complete")
            rows = _row(page, "Ada Lovelace")
            expect(rows).to_have_count(2)  # newest first: the erasure, then the dry run
            rows.nth(1).get_by_role("button").click()
            detail.get_by_role("button", name="Download receipt").click()
            expect(page.get_by_role("alert")).to_contain_text("was a dry run")
            detail.get_by_role("button", name="Close").click()
            rows.nth(0).get_by_role("button").click()
            # Approved by the other tab's principal: said, and no longer offered.
            expect(detail.locator("#detail-fields")).to_contain_text(
                "ApprovalApproved by approver (application datapolicy-cli), "
            )
            expect(detail.get_by_role("button", name="Approve erasure")).to_be_hidden()
            with page.expect_download() as again:
                detail.get_by_role("button", name="Download receipt").click()
            assert again.value.suggested_filename == receipt.suggested_filename
            assert problems == []
    finally:
        service.stop()


@pytest.mark.e2e  # a `serve` process
def test_where_an_erasure_is_approved_it_says_whether_it_is_a_dry_run_and_who_asked(
    tmp_path: Path, browser: Any
):
    """An approver must not take the erasure itself for a harmless dry run. The detail view
    that offers "Approve erasure" says which the erasure is (`dryRun`: a "Dry run" field, a
    note beside the button, and the button of a dry run saying so) and who requested it
    (`approval.requestedBy`); once approved, the requester is still named. No workers: the
    approved erasure does not run."""
    from playwright.sync_api import expect

    service = start_configured(
        tmp_path, erasure_config(tmp_path, approval="required"), "--workers", "0"
    )
    requester = token_for(service.data_dir, *PERMISSIONS, subject="requester")
    approver = token_for(service.data_dir, *PERMISSIONS, subject="approver")
    try:
        headers = {"Authorization": f"Bearer {requester}"}
        with service.client(headers=headers) as http:
            for user, dry_run in (("ada", True), ("bob", False)):
                started = http.post(f"/users/{user}/erasePersonalData", json={"dryRun": dry_run})
                assert started.status_code == 202, started.text
            bobs = started.headers["location"]
        root = _server_root(service)
        _route_to(browser, root)
        page = browser.pages[0] if browser.pages else browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: _note_error(problems, message))
        _sign_in(page, root, approver)
        detail = page.locator("#detail")
        note = detail.locator("#approve-note")
        requested = "Requested byrequester (application datapolicy-cli)"

        _row(page, "Ada Lovelace").get_by_role("button").click()
        fields = detail.locator("#detail-fields")
        expect(fields).to_contain_text("Dry runYes: it changes nothing")
        expect(fields).to_contain_text(requested)
        expect(note).to_have_text(
            "Approving lets a dry run of the erasure of Ada Lovelace run: it changes nothing. "
            "Requested by requester (application datapolicy-cli)."
        )
        expect(detail.get_by_role("button", name="Approve erasure (dry run)")).to_be_visible()
        detail.get_by_role("button", name="Close").click()

        _row(page, "Bob Kahn").get_by_role("button").click()
        expect(fields).to_contain_text("Dry runNo: the erasure itself, which cannot be undone")
        expect(fields).to_contain_text(requested)
        expect(note).to_have_text(
            "Approving lets the erasure of Bob Kahn's personal data run: once it runs, it "
            "cannot be undone. Requested by requester (application datapolicy-cli)."
        )
        button = detail.get_by_role("button", name="Approve erasure", exact=True)
        expect(button).to_have_attribute("aria-describedby", "approve-note")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "console-approval.png"))

        # Moved after the approver read it: what they were shown is not approved (412), and
        # the view shows it as it is now; approved once read again.
        moved = str(service.data_dir / "exports" / "moved")
        with service.client(headers=headers) as http:
            assert http.patch(bobs, json={"storageLocation": moved}).status_code == 200
        button.click()
        expect(page.get_by_role("alert")).to_contain_text("PreconditionFailed")
        expect(fields).to_contain_text(f"Storage location{moved}")
        expect(fields).to_contain_text("ApprovalWaiting for approval")
        button.click()
        expect(page.locator("#announcer")).to_have_text("Erasure for Bob Kahn approved.")
        expect(fields).to_contain_text("ApprovalApproved by approver (application datapolicy-cli)")
        expect(fields).to_contain_text(requested)
        expect(note).to_be_hidden()
        assert problems == []
    finally:
        service.stop()
