"""`datapolicy config check`: every source and target of a configuration tried for real."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from commands import datapolicy, json_output, one_line_error

from conftest import store_args
from databases import MARIADB, server_url

pytestmark = pytest.mark.operation_store  # starts services on the test store


def _people(tmp_path: Path) -> Path:
    """A directory (ada, bob) and a shop where ada has two orders, in one SQLite file."""
    path = tmp_path / "people.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT)")
        connection.executemany("INSERT INTO users VALUES (?, ?)", [("ada", "Ada"), ("bob", "Bob")])
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT)")
        connection.executemany("INSERT INTO orders (customer) VALUES (?)", [("ada",), ("ada",)])
    return path


def _config(tmp_path: Path, extra: str = "") -> Path:
    people = _people(tmp_path)
    (tmp_path / "files" / "ada").mkdir(parents=True)
    (tmp_path / "files" / "ada" / "note.txt").write_bytes(b"12345")
    config = tmp_path / "datapolicy.toml"
    config.write_text(
        f'[directory]\nurl = "sqlite:///{people}"\ntable = "users"\n\n'
        f'[[sources.sql]]\nname = "shop"\nurl = "sqlite:///{people}"\n'
        '[[sources.sql.tables]]\ntable = "orders"\nuser_key = "customer"\n\n'
        f'[[sources.files]]\nname = "uploads"\npath = "{tmp_path}/files/{{userId}}"\n\n'
        f'[storage.local]\nroots = ["{tmp_path}/exports"]\n' + extra
    )
    return config


def _check(tmp_path: Path, config: Path, *options: str):  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    return datapolicy(
        "config",
        "check",
        "--config",
        str(config),
        "--data-dir",
        str(data),
        *store_args(data),
        *options,
    )


def test_a_working_configuration_counts_the_sample_users_rows(tmp_path: Path):
    """The default sample user is the directory's first (ada); --user picks another. The
    users table, with its names, is in no source: a coverage gap, a warning (exit 0)."""
    config = _config(tmp_path)
    result = _check(tmp_path, config, "--json")
    findings = {(f["kind"], f["name"]): f for f in json_output(result)}
    assert findings["directory", "users"]["detail"] == "readable; sample user ada"
    assert findings["source:sql", "shop"]["detail"] == "2 rows for ada"
    assert findings["source:files", "uploads"]["detail"] == "5 bytes of files for ada"
    assert findings["target:local", f"{tmp_path}/exports"]["result"] == "ok"
    assert findings["store", "operation store"]["result"] == "ok"
    gap = findings.pop(("coverage", "users"))
    assert gap["result"] == "gap"
    assert gap["detail"].startswith("users: name (user.name")
    report = findings.pop(("report", "[report]"))  # the person's page only says it is missing
    assert report["result"] == "skipped"
    assert report["detail"].startswith("no [report] configured: each person's report says")
    assert {f["result"] for f in findings.values()} == {"ok"}
    table = _check(tmp_path, config, "--user", "bob")
    assert table.returncode == 0, table.stderr
    assert "0 rows for bob" in table.stdout
    unknown = _check(tmp_path, config, "--user", "carol", "--json")
    assert unknown.returncode == 1
    assert "the sample user 'carol' is not in the directory" in unknown.stdout


def test_the_report_section_is_summed_up(tmp_path: Path):
    """With [report], what the persons' reports will state and what they will say is not."""
    statement = '\n[report]\ncontroller = "Example Ltd"\nrecipients = ["Carriers"]\n'
    result = _check(tmp_path, _config(tmp_path, statement), "--json")
    findings = {(f["kind"], f["name"]): f for f in json_output(result)}
    assert findings["report", "[report]"] == {
        "kind": "report",
        "name": "[report]",
        "result": "ok",
        "detail": "states the controller, recipients; not stated: purposes, retention, source",
    }


def test_a_wrong_database_and_an_unusable_target_fail_and_say_why(tmp_path: Path):
    """A MariaDB source naming a database that does not exist, and a local root that is a
    file: each is a FAILED row naming the problem, exit status 1."""
    mariadb = server_url(MARIADB).set(database="dp_no_such_database")
    (tmp_path / "not-a-directory").write_text("")
    config = _config(
        tmp_path,
        f'\n[[sources.sql]]\nname = "crm"\nurl = "{mariadb.render_as_string(False)}"\n'
        '[[sources.sql.tables]]\ntable = "contacts"\nuser_key = "owner"\n',
    )
    config.write_text(
        config.read_text().replace(
            f'roots = ["{tmp_path}/exports"]',
            f'roots = ["{tmp_path}/exports", "{tmp_path}/not-a-directory"]',
        )
    )
    result = _check(tmp_path, config, "--json")
    assert result.returncode == 1
    findings = {(f["kind"], f["name"]): f for f in json.loads(result.stdout)}
    crm = findings["source:sql", "crm"]
    assert crm["result"] == "FAILED"
    assert "Unknown database 'dp_no_such_database'" in crm["detail"]
    broken = findings["target:local", f"{tmp_path}/not-a-directory"]
    assert broken["result"] == "FAILED"
    assert "is not a directory" in broken["detail"]
    assert findings["source:sql", "shop"]["result"] == "ok"  # the others are still checked
    table = _check(tmp_path, config)
    assert table.returncode == 1
    assert any("crm" in line and "FAILED" in line for line in table.stdout.splitlines())
    assert "Traceback" not in table.stderr
    failed = sum(finding["result"] == "FAILED" for finding in findings.values())
    assert (
        table.stderr.strip().splitlines()[-1] == f"config check: exit 1: {failed} check(s) failed"
    )


def test_an_invalid_configuration_is_one_line_naming_the_key(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text('[[sources.sql]]\nname = "shop"\nurl = "sqlite:///x.db"\n')
    error = one_line_error(_check(tmp_path, config))
    assert error.startswith(f"Error: {config}")
    assert "a SQL source needs at least one table or query" in error


def test_a_receipt_retention_that_is_not_a_duration_is_one_line_naming_the_key(tmp_path: Path):
    """`[erasure] receipt_retention` is checked as `[engine] package_retention` is: a duration
    or "off", anything else an error naming the file, the line and the key."""
    config = tmp_path / "bad.toml"
    config.write_text('[erasure]\napproval = "none"\nreceipt_retention = "10y"\n')
    error = one_line_error(_check(tmp_path, config))
    assert error.startswith(f"Error: {config}, line 3: erasure.receipt_retention: '10y' is not")


def test_a_composite_foreign_key_is_one_link_and_is_shown(tmp_path: Path):
    """issue 14: accounts keyed by (tenant_id, account_no) and events referring to them by both
    columns. The child is read through the one composite key (not refused as "several foreign
    keys"), the check shows the link as one, and counts only ada's rows: bob's event on
    account (t1, 2) shares its number with ada's account (t2, 2)."""
    config = _config(
        tmp_path,
        '\n[[sources.sql]]\nname = "bank"\nurl = "sqlite:///{bank}"\n'
        '[[sources.sql.tables]]\ntable = "accounts"\nuser_key = "owner"\n'
        '[[sources.sql.tables]]\ntable = "account_events"\nparent = "accounts"\n',
    )
    bank = tmp_path / "bank.sqlite3"
    config.write_text(config.read_text().replace("{bank}", str(bank)))
    with sqlite3.connect(bank) as connection:
        connection.executescript(
            "CREATE TABLE accounts (tenant_id TEXT, account_no INTEGER, owner TEXT,"
            " PRIMARY KEY (tenant_id, account_no));"
            "CREATE TABLE account_events (id INTEGER PRIMARY KEY, tenant_id TEXT,"
            " account_no INTEGER, FOREIGN KEY (tenant_id, account_no)"
            " REFERENCES accounts (tenant_id, account_no));"
            "INSERT INTO accounts VALUES ('t1', 1, 'ada'), ('t2', 2, 'ada'), ('t1', 2, 'bob');"
            "INSERT INTO account_events (tenant_id, account_no) VALUES"
            " ('t1', 1), ('t2', 2), ('t1', 2);"
        )
    result = _check(tmp_path, config, "--json")
    findings = {(f["kind"], f["name"]): f for f in json_output(result)}
    assert findings["source:sql", "bank"] == {
        "kind": "source:sql",
        "name": "bank",
        "result": "ok",
        "detail": "4 rows for ada; "
        "account_events(tenant_id, account_no) -> accounts(tenant_id, account_no)",
    }


ERASURE = '\n[erasure]\napproval = "none"\n'


def _with_rules(config: Path, orders: str, files: str = 'erase = "delete"') -> Path:
    text = config.read_text()
    text = text.replace('user_key = "customer"\n', f'user_key = "customer"\n{orders}\n', 1)
    text = text.replace('/files/{userId}"\n', f'/files/{{userId}}"\n{files}\n', 1)
    config.write_text(text + ERASURE)
    return config


def test_with_erasure_every_table_needs_a_rule_and_the_error_says_which(tmp_path: Path):
    config = _config(tmp_path, ERASURE)
    error = one_line_error(_check(tmp_path, config))
    assert "source 'shop', table 'orders' has no erase rule" in error
    assert '"retain" with a reason' in error


def test_a_retained_table_needs_its_reason(tmp_path: Path):
    config = _with_rules(_config(tmp_path), 'erase = "retain"')
    error = one_line_error(_check(tmp_path, config))
    assert "sources.sql.tables" in error
    assert "needs 'reason'" in error


def test_erasure_rules_are_checked_against_the_database(tmp_path: Path):
    """A mask on the key column is a FAILED `erasure` row that says why; good rules are an ok
    row listing them."""
    config = _with_rules(_config(tmp_path), 'erase = "mask"\nmask = { customer = "null" }')
    result = _check(tmp_path, config, "--json")
    assert result.returncode == 1
    findings = {(f["kind"], f["name"]): f for f in json.loads(result.stdout)}
    failed = findings[("erasure", "shop")]
    assert failed["result"] == "FAILED"
    assert "column 'customer' is a key" in failed["detail"]
    assert "would change which rows are whose" in failed["detail"]
    (tmp_path / "good").mkdir()
    config = _with_rules(_config(tmp_path / "good"), 'erase = "delete"')
    findings = {
        (f["kind"], f["name"]): f for f in json_output(_check(tmp_path / "good", config, "--json"))
    }
    assert findings[("erasure", "shop")]["result"] == "ok"
    assert findings[("erasure", "shop")]["detail"] == "orders: delete"
    assert findings[("erasure", "uploads")]["detail"] == "files: delete"


def test_a_file_source_without_its_directory_is_a_warning(tmp_path: Path):
    """A file source whose directory above {userId} is missing would let every export hold no
    files, silently: a `warning` row naming it (exit 0), a failure with --strict."""
    config = _config(tmp_path)
    config.write_text(config.read_text().replace("/files/{userId}", "/nowhere/{userId}"))
    result = _check(tmp_path, config, "--json")
    findings = {(f["kind"], f["name"]): f for f in json_output(result)}
    uploads = findings["source:files", "uploads"]
    assert uploads["result"] == "warning"
    assert uploads["detail"].startswith(f"{tmp_path}/nowhere is not a directory: every export")
    strict = _check(tmp_path, config, "--strict")
    assert strict.returncode == 1
    assert "1 warning(s), failures with --strict" in strict.stderr.splitlines()[-1]
