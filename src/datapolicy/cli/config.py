"""`datapolicy config check`: the configuration against reality, before a real request meets it.

Local, not through the API: it reads the configuration file, then opens everything it names as
the service would (the operation store, the user directory, each source, each storage target)
and reports, per item, whether it works. For a sample user it counts what each source holds,
so a source that connects but yields nothing (a wrong table, a wrong key column) stands out,
and it shows how each SQL table reached from a parent is linked to it. Coverage: each database
the SQL sources name is read whole (schema, and a bounded sample per table, never shown) for
tables that look personal and that no configured table or query reaches, nor `ignore_tables`
lists (discovery/coverage.py); each is a `gap` row, a warning that `--strict` makes a failure.
A file source whose directory above `{userId}` does not exist is a `warning` row (every export
would hold no files from it; also a failure with `--strict`).
With `[erasure]`, each source's erase rules are checked against its database (an `erasure`
row: a mask on a key column, a delete that an unlisted table's foreign key would block or
cascade into, a table without a primary key; each explained).
Storage targets are checked as a request's storageLocation is (a local root is created if need
be and must be writable; an S3 bucket must accept, and then abort, a multipart upload): no
package is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from datapolicy.cli.options import (
    config_option,
    data_dir_option,
    database_option,
    json_option,
    load_settings,
)
from datapolicy.cli.output import print_records

if TYPE_CHECKING:  # the engine is imported when a check runs: `--help` stays fast
    from datapolicy.config import ReportConfig, StorageConfig
    from datapolicy.engine import UserDirectory
    from datapolicy.engine.sources.base import Source
    from datapolicy.settings import Settings

OK, FAILED, SKIPPED, GAP, WARNING = "ok", "FAILED", "skipped", "gap", "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One checked item: what it is, whether it works, and what was found (or what is wrong)."""

    kind: str  # store, directory, source:sql, source:files, target:local, target:s3, ...
    name: str
    result: str  # OK, FAILED, SKIPPED, GAP or WARNING
    detail: str


@click.group(name="config")
def config_group() -> None:
    """The configuration file: check it against the databases, files and storage it names."""


@config_group.command()
@data_dir_option
@config_option
@database_option
@json_option
@click.option(
    "--user",
    "user_id",
    metavar="USER_ID",
    help="The sample user whose rows are counted.  [default: the directory's first user]",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 on warnings too: coverage gaps (personal-looking tables no configured path "
    "reaches), a file source's missing directory.",
)
def check(
    data_dir: Path | None,
    config_file: Path | None,
    database: str | None,
    as_json: bool,
    user_id: str | None,
    strict: bool,
) -> None:
    """Validate the configuration and connect to every source and storage target.

    Prints a table of what it found, one row per item, and exits 1 if anything failed (with
    --strict, also on a `gap`, a personal-looking table reached by no configured path, and on
    a `warning`, such as a file source whose directory does not exist).

    \b
    Examples:
      datapolicy config check --config datapolicy.toml
      datapolicy config check --config datapolicy.toml --user 6f1c2d4e-8a3b-5c7d-9e0f-1a2b3c4d5e6f
      datapolicy config check --config datapolicy.toml --json | jq '.[] | select(.result != "ok")'
      datapolicy config check --config datapolicy.toml --strict
    """
    settings = load_settings(config_file, data_dir=data_dir, database=database)
    findings = run_checks(settings, user_id)
    print_records([asdict(f) for f in findings], ("kind", "name", "result", "detail"), as_json)
    failed = sum(finding.result == FAILED for finding in findings)
    gaps = sum(finding.result == GAP for finding in findings) if strict else 0
    warnings = sum(finding.result == WARNING for finding in findings) if strict else 0
    if failed or gaps or warnings:
        why = [f"{failed} check(s) failed"] if failed else []
        if gaps:
            why.append(
                f"{gaps} coverage gap(s), failures with --strict: reach each table or list it "
                "in ignore_tables (docs/map-your-data.md)"
            )
        if warnings:
            why.append(f"{warnings} warning(s), failures with --strict")
        click.echo(f"config check: exit 1: {'; '.join(why)}", err=True)
        raise SystemExit(1)


class CheckFailed(Exception):
    """A check found something wrong that is not an error of the component it checked."""


class CheckWarning(Exception):
    """A check found something that works but is likely not what the operator meant."""


def run_checks(settings: Settings, user_id: str | None) -> list[Finding]:
    from datapolicy.engine import build_context

    # As `serve` does on start: else its implicit root, <data-dir>/exports, could not be made.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    context = build_context(settings.config, settings.data_dir)
    findings = [_attempt("store", "operation store", lambda: _store(settings))]
    directory = context.directory
    if directory is None:
        findings.append(Finding("directory", "-", SKIPPED, "no [directory] configured"))
    else:
        findings.append(_attempt("directory", "users", lambda: _directory(directory, user_id)))
        if user_id is None and findings[-1].result == OK:
            user_id = _first_user(directory)
    for source in context.sources:
        findings.append(
            _attempt(f"source:{source.kind}", source.name, partial(_source, source, user_id))
        )
        if settings.config.erasure is not None and findings[-1].result in (OK, WARNING):
            findings.append(_attempt("erasure", source.name, partial(_erasure, source)))
        source.close()
    if directory is not None:
        directory.close()
    findings += _coverage(settings)
    findings.append(_report(settings.config.report))
    storage = context.storage
    for root in storage.local.roots:
        findings.append(
            _attempt(
                "target:local",
                str(root),
                partial(_target, str(root), storage, "writable"),
            )
        )
    for s3 in storage.s3:
        for bucket in s3.buckets:
            location = f"s3://{bucket}/"
            findings.append(
                _attempt(
                    "target:s3",
                    f"{s3.name}: {location}",
                    partial(_target, location, storage, "accepts uploads"),
                )
            )
    for host in storage.azure.allowed_hosts:
        findings.append(
            Finding(
                "target:azure", host, SKIPPED, "checked per request: each SAS URL names a container"
            )
        )
    return findings


def _attempt(kind: str, name: str, check: Callable[[], str]) -> Finding:
    """Run one check; any error it meets becomes a FAILED row with the error's first line."""
    from sqlalchemy.exc import SQLAlchemyError

    from datapolicy.engine.sources.base import SourceError
    from datapolicy.engine.targets import StorageError
    from datapolicy.errors import DatapolicyError

    try:
        return Finding(kind, name, OK, check())
    except DatapolicyError as exc:
        return Finding(kind, name, FAILED, exc.message)
    except CheckFailed as exc:
        return Finding(kind, name, FAILED, str(exc))
    except CheckWarning as exc:
        return Finding(kind, name, WARNING, str(exc))
    except (SourceError, StorageError, SQLAlchemyError, OSError) as exc:
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return Finding(kind, name, FAILED, lines[0] if lines else type(exc).__name__)


def _store(settings: Settings) -> str:
    from datapolicy.store.database import head_revision, open_database

    store = open_database(settings.database_url)
    try:
        revision = store.revision()
    finally:
        store.close()
    if revision == head_revision():
        return f"{store.url}: schema at revision {revision}"
    state = f"at revision {revision}" if revision else "not created yet"
    return f"{store.url}: schema {state}; migrated on start (or by `datapolicy db upgrade`)"


def _directory(directory: UserDirectory, user_id: str | None) -> str:
    directory.check()
    if user_id is None:
        first = _first_user(directory)
        return f"readable; sample user {first}" if first else "readable, but empty"
    if directory.get(user_id) is None:
        raise CheckFailed(f"the sample user '{user_id}' is not in the directory")
    return f"readable; sample user {user_id}"


def _first_user(directory: UserDirectory) -> str | None:
    from datapolicy.odata.options import QueryOptions

    first = directory.query(QueryOptions(), 1).users
    return first[0].id if first else None


def _source(source: Source, user_id: str | None) -> str:
    """What the source holds for the sample user; for a SQL source, also how each table reached
    from a parent is linked to it (a composite key as one link), for the reader to confirm."""
    from datapolicy.engine.sources.files import FileSource
    from datapolicy.engine.sources.sql import SqlSource

    source.check()
    if isinstance(source, FileSource) and not source.base.is_dir():
        raise CheckWarning(
            f"{source.base} is not a directory: every export would hold no files from this "
            "source (the path's directories above {userId} are the operator's: create them, "
            "or correct the path)"
        )
    links = "".join(f"; {link}" for link in source.links()) if isinstance(source, SqlSource) else ""
    if user_id is None:
        return f"connects; no sample user to count for{links}"
    estimate = source.estimate(user_id)
    if source.kind == "files":
        return f"{estimate.bytes} bytes of files for {user_id}"
    return f"{estimate.records} rows for {user_id}{links}"


def _erasure(source: Source) -> str:
    """The source's erasure rules against its database (engine/erasure/sql.py `problems`):
    every problem, each explained, or a summary of the rules."""
    from datapolicy.engine.erasure import SqlEraser
    from datapolicy.engine.sources.files import FileSource
    from datapolicy.engine.sources.sql import SqlSource

    if isinstance(source, FileSource):
        return f"files: {source.config.erase}"
    assert isinstance(source, SqlSource)
    problems = SqlEraser(source).problems()
    if problems:
        raise CheckFailed("; ".join(problems))
    rules = {config.table: config.erase for config in source.config.tables}
    return ", ".join(f"{table}: {rule}" for table, rule in rules.items())


def _coverage(settings: Settings) -> list[Finding]:
    """A `gap` row per personal-looking table that the SQL sources reach by no path, or one
    FAILED row per database whose schema could not be read."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from datapolicy.discovery.discover import coverage_gaps
    from datapolicy.discovery.schema import DatabaseNotFound

    sources = settings.config.sources.sql
    findings = []
    for url in dict.fromkeys(source.url for source in sources):
        shown = make_url(url).render_as_string(hide_password=True)
        try:
            gaps = coverage_gaps([s for s in sources if s.url == url])[url]
        except DatabaseNotFound as exc:
            findings.append(Finding("coverage", shown, FAILED, str(exc)))
            continue
        except SQLAlchemyError as exc:
            cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            findings.append(Finding("coverage", shown, FAILED, cause[0] if cause else "error"))
            continue
        if not gaps:
            findings.append(Finding("coverage", shown, OK, "every personal-looking table reached"))
        findings += [
            Finding("coverage", gap.table, GAP, f"{gap.describe()}; {gap.hint()}") for gap in gaps
        ]
    return findings


def _report(report: ReportConfig | None) -> Finding:
    """What each person's report will state (GDPR Art. 15(1)), and what it will tell them is
    not stated: the hint to fill it in is the operator's, here, not the person's page."""
    if report is None:
        return Finding(
            "report",
            "[report]",
            SKIPPED,
            "no [report] configured: each person's report says it does not state the "
            "controller, purposes, recipients, retention or source, to which they are entitled "
            "(GDPR Art. 15(1)); fill it in (docs/configuration.md, [report])",
        )
    items = {
        "purposes": report.purposes,
        "recipients": report.recipients,
        "retention": report.retention,
        "source": report.source,
    }
    missing = [name for name, value in items.items() if not value]
    detail = "states the controller" + "".join(f", {n}" for n in items if n not in missing)
    if missing:
        detail += f"; not stated: {', '.join(missing)}"
    return Finding("report", "[report]", OK, detail)


def _target(location: str, storage: StorageConfig, what: str) -> str:
    from datapolicy.engine.targets import resolve_target

    resolve_target(location, storage).check()
    return what
