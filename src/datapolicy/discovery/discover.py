"""Discovery, end to end: a database URL -> its schema classified -> the person table -> the
paths to the person's rows -> the gaps -> a configuration, checked by the configuration's own
parser before anyone sees it. Also the coverage of an existing configuration (`config check`).
Knows nothing of HTTP or the command line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from datapolicy.config import ConfigError, SqlSourceConfig, parse_config
from datapolicy.discovery import DEFAULT_SAMPLE_ROWS
from datapolicy.discovery.coverage import Gap, find_gaps, tables_named_in
from datapolicy.discovery.paths import DataMap, map_person_data
from datapolicy.discovery.person import choose_person_table
from datapolicy.discovery.schema import (
    ForeignKey,
    Schema,
    open_engine,
    read_schema,
)
from datapolicy.discovery.writer import source_name, write_configuration


@dataclass(frozen=True, slots=True)
class Discovery:
    schema: Schema
    data: DataMap
    gaps: list[Gap]
    configuration: str  # TOML text


def discover(
    url: str,
    person_table: str | None = None,
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    output: Path | None = None,
    written_by: str = "datapolicy discover",
) -> Discovery:
    """Map the person's data in the database at `url` and write it as a configuration (for a
    file at `output`, against whose directory a relative SQLite URL is resolved)."""
    url = absolute_sqlite_url(url)
    engine = open_engine(url)
    try:
        schema = read_schema(engine, sample_rows)
    finally:
        engine.dispose()
    person = choose_person_table(schema, person_table)
    data = map_person_data(schema, person)
    gaps = find_gaps(schema, data.tables, data.lookups)
    name = source_name(url, make_url(url).database)
    text = write_configuration(url, name, schema, data, gaps, written_by)
    try:
        parse_config(text, output or Path("discovered.toml"))
    except ConfigError as exc:  # a bug here, not the operator's: say so
        raise RuntimeError(f"discover wrote a configuration it cannot read: {exc}") from None
    return Discovery(schema, data, gaps, text)


def absolute_sqlite_url(url: str) -> str:
    """A relative SQLite URL made absolute (the file it names from here), since the
    configuration reads relative ones from its own directory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return url
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return url
    return parsed.set(database=str(Path(parsed.database).resolve())).render_as_string(
        hide_password=False
    )


def coverage_gaps(
    sources: Iterable[SqlSourceConfig], sample_rows: int = DEFAULT_SAMPLE_ROWS
) -> dict[str, list[Gap]]:
    """For each database the SQL sources name (several sources may share one), the
    personal-looking tables that none of their tables or queries reach, nor ignore."""
    covered: dict[str, set[str]] = {}
    queries: dict[str, list[str]] = {}
    for source in sources:
        covered.setdefault(source.url, set()).update(
            [t.table for t in source.tables] + list(source.ignore_tables)
        )
        queries.setdefault(source.url, []).extend(q.sql for q in source.queries)
    gaps: dict[str, list[Gap]] = {}
    for url, tables in covered.items():
        engine = open_engine(url)
        try:
            schema = read_schema(engine, sample_rows)
        finally:
            engine.dispose()
        for sql in queries[url]:
            tables |= tables_named_in(sql, schema.tables)
        pointers: dict[str, list[ForeignKey]] = {}
        for name in tables:
            for key in schema.tables[name].foreign_keys if name in schema.tables else ():
                if key not in pointers.setdefault(key.referred, []):
                    pointers[key.referred].append(key)
        gaps[url] = find_gaps(schema, tables, pointers)
    return gaps
