"""The person's report: the package's `index.html`, a page they can read without any tool.

It says who the package is for and when it was made; what the configuration's `[report]`
section states (GDPR Art. 15(1): controller, purposes and their legal basis, recipients,
retention, source), or, to the person, that the package does not say it; what the person may
ask the controller (their rights; only as questions to ask, never a statement the `[report]`
section does not make); the data grouped by the categories
the configuration gives tables and columns; each table's first `REPORT_ROWS` rows with
readable values (readable.py); and the package's files with their sizes, linked by relative
paths. docs/package-format.md describes the page.

Rows are sampled while the package is written (`TableSample.take`, called on each encoded
batch): only the first `REPORT_ROWS` of a table are parsed and kept, so the report costs the
same memory for a person with a hundred rows as for one with millions.

The data is hostile by assumption: the page is made by a Jinja2 template with autoescape on,
carries a Content-Security-Policy that allows no script and no request, and links only to
entries of the package (their names are safe: entrynames.py), percent-encoded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined

from datapolicy.config import Config, ReportConfig, TableConfig
from datapolicy.engine.readable import Cell, human_size, readable, visible

REPORT_ROWS = 100  # rows of each table shown; its JSON Lines file in the package has them all
LISTED_FILES = 1000  # files listed by name; manifest.json lists every one
UNSHOWN = "(record)"  # the column of a record shown as its JSON text, when it is not an object

_FRACTION = re.compile(r"\.\d+(?=Z|[+-]|$)")
TEMPLATES = Environment(
    loader=PackageLoader("datapolicy.engine", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
TEMPLATES.filters["visible"] = visible


@dataclass(frozen=True)
class ReportLabels:
    """What the configuration says about the data, for the report: the `[report]` section
    (None when the operator has not written one) and each SQL table's entry by (source, name
    in the package), for its categories and purpose."""

    statement: ReportConfig | None = None
    tables: Mapping[tuple[str, str], TableConfig] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config) -> ReportLabels:
        tables = {
            (source.name, table.output_name): table
            for source in config.sources.sql
            for table in source.tables
        }
        return cls(config.report, tables)


@dataclass
class TableSample:
    """One table's (or query's) first `REPORT_ROWS` rows as shown, and how many it has."""

    source: str
    name: str
    path: str = ""  # its JSON Lines entry, once written
    records: int = 0
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Cell]] = field(default_factory=list)

    @property
    def href(self) -> str:
        return quote(self.path, safe="/")

    def take(self, data: bytes) -> None:
        """Keep the rows of an encoded batch (JSON Lines) while fewer than `REPORT_ROWS` are
        kept; only the lines kept are parsed."""
        wanted = REPORT_ROWS - len(self.rows)
        if wanted <= 0:
            return
        for line in data.split(b"\n", wanted)[:wanted]:
            if line:
                self._add(line)

    def _add(self, line: bytes) -> None:
        try:
            record = json.loads(line, parse_float=Decimal)
            if not isinstance(record, dict):
                record = {UNSHOWN: record}
            row = {column: readable(value) for column, value in record.items()}
        except RecursionError:  # a JSON document nested deeper than Python parses
            row = {UNSHOWN: readable(line.decode("utf-8", "replace"))}
        for column in row:
            if column not in self.columns:
                self.columns.append(column)
        self.rows.append(row)


def render_report(
    manifest: Mapping[str, Any],
    entries: Iterable[Mapping[str, Any]],
    samples: Iterable[TableSample],
    labels: ReportLabels,
) -> str:
    """The page, from the package's manifest (before its `files`), its entries as the manifest
    lists them, the tables' samples and what the configuration says about them."""
    samples = list(samples)
    files = [_file(entry) for entry in entries]
    return TEMPLATES.get_template("report.html").render(
        user=manifest.get("user", {}),
        operation_id=str(manifest.get("operationId", "")),
        created=moment(manifest.get("createdDateTime")),
        submitted=moment(manifest.get("submittedDateTime")),
        sources=[_source(summary, samples) for summary in manifest.get("sources", ())],
        statement=labels.statement,
        categories=_categories(samples, labels),
        uncategorised=[s for s in samples if not _labelled(labels.tables.get((s.source, s.name)))],
        labels=labels,
        files=files[:LISTED_FILES],
        unlisted=max(0, len(files) - LISTED_FILES),
        total_size=human_size(sum(file["bytes"] for file in files)),
        rows_shown=REPORT_ROWS,
        missing=Cell("no value", "null"),
    )


def moment(timestamp: Any) -> Cell:
    """When something happened, to the second (a person needs no microseconds)."""
    return readable(_FRACTION.sub("", str(timestamp or "")))


def _file(entry: Mapping[str, Any]) -> dict[str, Any]:
    path = str(entry["path"])
    return {
        "path": path,
        "href": quote(path, safe="/"),
        "size": human_size(int(entry["size"])),
        "bytes": int(entry["size"]),
        "records": entry.get("records"),
        "source_path": entry.get("sourcePath"),
    }


def _source(summary: Mapping[str, Any], samples: list[TableSample]) -> dict[str, Any]:
    name = str(summary["name"])
    return {
        "name": name,
        "kind": str(summary["kind"]),
        "records": int(summary["records"]),
        "files": int(summary["files"]),
        "size": human_size(int(summary["bytes"])),
        "tables": [sample for sample in samples if sample.source == name],
    }


def _categories(samples: list[TableSample], labels: ReportLabels) -> list[dict[str, Any]]:
    """Each category the configuration gives an exported table or column: where it is. A
    table's category that some of its columns also carry is where those columns are: shown as
    the whole table as well, it would say both "city" and "every column" (discover gives a
    table every category of its columns)."""
    places: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        table = labels.tables.get((sample.source, sample.name))
        if table is None:
            continue
        by_column: dict[str, list[str]] = {}
        for column, described in table.columns.items():
            for category in described.categories:
                by_column.setdefault(category, []).append(column)
        for category in table.categories:
            if category not in by_column:
                places.setdefault(category, []).append({"sample": sample, "columns": None})
        for category, columns in by_column.items():
            places.setdefault(category, []).append({"sample": sample, "columns": columns})
    return [
        {
            "name": name,
            "label": _category_label(name),
            "places": places[name],
            "records": sum({id(p["sample"]): p["sample"].records for p in places[name]}.values()),
        }
        for name in sorted(places)
    ]


def _labelled(table: TableConfig | None) -> bool:
    """Whether the configuration gives the table, or one of its columns, a category."""
    if table is None:
        return False
    return bool(table.categories) or any(column.categories for column in table.columns.values())


def _category_label(name: str) -> str:
    """`user.contact.email` as `contact: email`: the taxonomy's key without its root."""
    parts = [part.replace("_", " ") for part in name.split(".")]
    if len(parts) > 1 and parts[0] == "user":
        parts = parts[1:]
    return ": ".join(parts)
