"""The configuration `discover` writes: `[directory]` and one `[[sources.sql]]` with an entry per
path, proposed categories and exclusions, comments saying why, the gaps, and a `[report]`
template, as TOML text that `config check` accepts and `serve --config` runs as it is.

Written as text rather than through a TOML library because the comments are the point: every
value is a JSON string (a valid TOML basic string) or an identifier, and every comment is one
line (`_comment` folds any line break away).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from datapolicy.discovery.coverage import Gap
from datapolicy.discovery.paths import DataMap, Entry
from datapolicy.discovery.schema import ColumnInfo, Schema, TableInfo

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # not allowed in a TOML comment


def write_configuration(
    url: str, source_name: str, schema: Schema, data: DataMap, gaps: list[Gap], written_by: str
) -> str:
    """The TOML text of the configuration."""
    person = data.person.chosen
    people = schema.tables[person.table]
    lines = [
        f"# Written by `{written_by}`.",
        "# Review it before use: the categories and exclusions are proposals from column",
        "# names, types and a sample of values; then run `datapolicy config check --config FILE`.",
        "#",
        *(_comment(line) for line in data.person.explain()),
        "",
        "[directory]",
        f"url = {_string(url)}",
        f"table = {_string(person.table)}",
        f"id_column = {_string(person.id_column)}",
    ]
    if person.email_column is not None and _IDENTIFIER.match(person.email_column):
        lines.append(f"mail_column = {_string(person.email_column)}")
    lines += _display_name(people)
    lines += [
        "",
        "[[sources.sql]]",
        f"name = {_string(source_name)}",
        f"url = {_string(url)}",
        "# Tables with personal-looking columns that hold no data subject's data (staff,",
        "# partners): `config check` then stops reporting them as gaps.",
        "ignore_tables = []",
    ]
    by_name = {entry.name: entry for entry in data.entries}
    for entry in data.entries:
        lines += ["", *_entry(entry, by_name, schema)]
    lines += ["", *_notes(data, gaps), *_REPORT_TEMPLATE]
    return "\n".join(lines) + "\n"


def _entry(entry: Entry, by_name: dict[str, Entry], schema: Schema) -> list[str]:
    table = schema.tables[entry.table]
    if entry.user_key is not None and entry.key is None:
        why = "the person's own row"
    elif entry.user_key is not None:
        assert entry.key is not None
        why = f"{entry.key.describe()}: the person's rows"
    else:
        assert entry.key is not None
        assert entry.parent is not None
        why = f"{entry.key.describe()}: rows of the person's {by_name[entry.parent].table}"
    lines = [f"  # {entry.table}: {_comment_text(why)}", "  [[sources.sql.tables]]"]
    lines.append(f"  table = {_string(entry.table)}")
    if entry.name != entry.table:
        lines.append(f"  name = {_string(entry.name)}")
    if entry.user_key is not None:
        lines.append(f"  user_key = {_string(entry.user_key)}")
    else:
        assert entry.key is not None
        assert entry.parent is not None
        lines += [
            f"  parent = {_string(entry.parent)}",
            f"  foreign_key = {_list(entry.key.columns)}",
            f"  parent_key = {_list(entry.key.referred_columns)}",
        ]
    secrets = [c for c in table.columns if c.classified.exclude]
    if secrets:
        lines.append(f"  exclude = {_list(c.name for c in secrets)}")
        lines += [
            _comment(f"    {c.name}: {'; '.join(c.classified.reasons) or 'a secret'}", indent="  ")
            for c in secrets
        ]
    personal = [
        c
        for c in table.columns
        if c.classified.categories and not c.classified.exclude and _IDENTIFIER.match(c.name)
    ]
    if personal:
        categories = sorted({k for c in personal for k in c.classified.categories})
        lines.append(f"  categories = {_list(categories)}")
        lines.append("    [sources.sql.tables.columns]")
        for column in personal:
            reasons = "; ".join(column.classified.reasons)
            value = f"{column.name} = {{ categories = {_list(column.classified.categories)} }}"
            lines.append(f"    {value}" + (f"  # {_comment_text(reasons)}" if reasons else ""))
    if table.sample_error is not None:
        lines.append(_comment(f"no sample could be read: {table.sample_error}", indent="  "))
    return lines


def _notes(data: DataMap, gaps: list[Gap]) -> list[str]:
    lines: list[str] = []
    if gaps:
        lines.append(
            "# Coverage gaps: personal-looking tables that no path from the person reaches"
        )
        for gap in gaps:
            lines += [_comment(f"- {gap.describe()}"), _comment(f"  {gap.hint()}")]
    else:
        lines.append("# Coverage: every personal-looking table is reached.")
    sections = [
        (
            "Links to other people, not followed (to export the rows where the person is the "
            "other one, add an entry with user_key = the column and a name of its own)",
            [k.describe() for k in data.other_people],
        ),
        ("Self-references, not followed", [k.describe() for k in data.self_references]),
        (
            "Pointed to by the person's rows, not exported (no personal-looking columns)",
            [t for t in sorted(data.lookups) if t not in {g.table for g in gaps}],
        ),
        (f"Reached by more paths than configured ({'shortest kept'})", data.capped),
        ("Not configurable (names that are not identifiers)", data.unnamable),
    ]
    for title, items in sections:
        if items:
            lines += ["#", f"# {title}:", *(_comment(f"- {item}") for item in items)]
    return lines


_REPORT_TEMPLATE = [
    "",
    "# What the person's report states besides their data (GDPR Art. 15(1)); fill it in and",
    '# uncomment it. Tables and columns may then name a purpose (purpose = "orders").',
    "# [report]",
    '# controller = "Example Ltd, 1 Main Street, Springfield; privacy@example.com"',
    '# recipients = ["Our payment provider", "Our parcel carrier"]',
    '# retention = "Orders: ten years (tax law); the account: until you close it"',
    '# source = "You gave us this data when you registered and ordered"',
    "#",
    "#   [[report.purposes]]",
    '#   name = "orders"',
    '#   description = "Delivering and invoicing your orders"',
    '#   legal_basis = "Art. 6(1)(b) GDPR: our contract with you"',
]


def _display_name(people: TableInfo) -> list[str]:
    """`display_name_column`, with a comment saying which column and why: a whole name, else
    a first name (a directory shows one column: a first and a last name together need a
    `query`), else a last name."""
    names = [
        column
        for column in people.columns
        if any(_is_name(k) for k in column.classified.categories) and _IDENTIFIER.match(column.name)
    ]
    if not names:
        return []
    chosen = min(names, key=_name_rank)
    why = {0: "a whole name", 1: "a first name", 2: "a last name"}.get(_name_rank(chosen), "a name")
    comment = [f"display_name_column: '{chosen.name}', {why}"]
    if _name_rank(chosen) > 0:
        parts = ", ".join(f"'{c.name}'" for c in names)
        comment = [
            f"display_name_column: '{chosen.name}', {why}: no column holds a whole name, and",
            f"the directory shows one column. To show {parts} together, give the",
            "directory a `query` that joins them (docs/configuration.md, [directory]).",
        ]
    return [*(_comment(line) for line in comment), f"display_name_column = {_string(chosen.name)}"]


def _name_rank(column: ColumnInfo) -> int:
    """0 a whole name (`full_name`, `name`; not a middle name), 1 a first, 2 a last, 3 else."""
    categories = column.classified.categories
    if "user.name" in categories and "middle" not in column.name.lower():
        return 0
    if "user.name.first" in categories:
        return 1
    return 2 if "user.name.last" in categories else 3


def _is_name(category: str) -> bool:
    return category == "user.name" or category.startswith("user.name.")


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_string(v) for v in values) + "]"


def _comment_text(text: str) -> str:
    return " ".join(_CONTROL.sub("?", " ".join(text.split())).split())


def _comment(text: str, indent: str = "") -> str:
    """One comment line, whatever `text` holds (a line break would end the comment)."""
    leading = len(text) - len(text.lstrip(" "))
    return f"{indent}# {' ' * leading}{_comment_text(text)}".rstrip()


def source_name(url: str, database: str | None) -> str:
    """The source's name: the database's (a SQLite file's stem), as a configuration name."""
    stem = (database or "").rsplit("/", 1)[-1].split(".", 1)[0]
    name = _NAME_NOT_ALLOWED.sub("_", stem).lstrip(".-")
    return name or "database"
