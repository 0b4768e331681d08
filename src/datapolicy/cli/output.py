"""How commands print: tables for people (rich), JSON for scripts (`--json`). rich is imported
when a table is printed, not when a command module is (cli/__init__.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

NOT_A_TERMINAL_WIDTH = 1000  # piped output: rows are never wrapped, so lines stay greppable


def console() -> Console:
    """Standard output; plain text (no colours, no live widgets) when it is not a terminal."""
    from rich.console import Console

    output = Console(highlight=False)
    if not output.is_terminal:
        output.width = NOT_A_TERMINAL_WIDTH
    return output


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text(cell_text(cell)) for cell in row))  # Text: values are not markup
    console().print(table)


def print_fields(fields: dict[str, Any]) -> None:
    """One entity as a two-column table: property, value."""
    print_table(("property", "value"), fields.items())


def print_records(records: list[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """Records as a JSON array (`--json`: every field), or as a table of `columns`."""
    if as_json:
        print_json(records)
    else:
        print_table(columns, ([record.get(column) for column in columns] for record in records))


def print_entity(fields: dict[str, Any], as_json: bool) -> None:
    """One entity as a JSON object (`--json`), or as a property/value table."""
    if as_json:
        print_json(fields)
    else:
        print_fields(fields)


def cell_text(value: Any) -> str:
    """A JSON value as a table cell: nothing for null, compact JSON for objects; `printable`."""
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    return printable(text)


def printable(text: str) -> str:
    """`text` with its control and bidirectional formatting characters as escapes (`\\x1b`,
    `\\u202e`), so that a value from the data (a display name or a file name a person chose)
    cannot drive the terminal or reorder what it shows (rich passes ESC and the 8-bit CSI
    through)."""
    return _UNSAFE.sub(_escaped, text)


# C0 but line feed and tab, DEL, C1; the bidirectional embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
