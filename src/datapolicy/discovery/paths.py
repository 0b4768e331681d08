"""The person's tables: foreign keys followed outward from the person table, as the entries of a
`[[sources.sql]]` source.

The rules (docs/map-your-data.md, "What discover follows"):

- the person table's own row is an entry (`user_key` = its primary key);
- a table with a foreign key to the person table holds the person's rows by it. Where a table
  has several (an order's customer and its gift's recipient, a user's referrer), the one named
  like an owner (`user_id`, `customer_id`, ...) is followed, else the first in the table's
  column order; the others are links to *other* people and are not followed (they are listed,
  for the operator to add as paths of their own if they want);
- from each table reached, every table with a foreign key to it is reached too, one entry per
  path (`parent` with `foreign_key` and `parent_key`), through any number of hops; a composite
  key is one link of several columns;
- a table with a foreign key to the person table is reached by that key only, never from
  above: its rows belong to the people it names, so the orders shipped to the person's address
  or the comments under the person's review are the rows of the people who wrote them;
- never followed: a table's foreign key to itself (a reply's parent comment, an employee's
  manager: other rows, often other people's), a foreign key back to the person table from below
  (that is another person), a table already on the path (no cycles), and the tables the
  person's rows point *to* (a product catalogue, a country list: lookups, shared by everyone).

Each path is an entry, so a table reached by several paths is exported once per path, under a
name of its own (docs/configuration.md, "Which rows are the person's"). A table reached by more
than `MAX_PATHS_PER_TABLE` paths keeps its shortest ones and is listed as capped.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from datapolicy.discovery.person import PersonChoice
from datapolicy.discovery.schema import ForeignKey, Schema, TableInfo

MAX_PATHS_PER_TABLE = 8
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # what the configuration can name
_OWNER = re.compile(
    r"^(user|owner|customer|account|person|member|client|patient|student|employee|"
    r"subscriber|profile)_?(id|key|no)?$",
    re.IGNORECASE,
)
_OTHER_PERSON = re.compile(
    r"(refer|recipient|receiver|sender|created_by|updated_by|modified_by|deleted_by|approved|"
    r"reviewed|assign|manager|invite|parent|friend|follow|target|reporter|sponsor|agent)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One configured table: the person's rows of `table` along one path."""

    name: str
    table: str
    path: tuple[str, ...]  # the tables from the person table down to this one
    user_key: str | None = None
    parent: str | None = None  # the entry it hangs from
    key: ForeignKey | None = None  # the link to the parent entry's table (or the person's)


@dataclass(slots=True)
class DataMap:
    """Where the person's data is, as found: entries in an order where parents come first."""

    person: PersonChoice
    entries: list[Entry] = field(default_factory=list)
    other_people: list[ForeignKey] = field(default_factory=list)  # second keys to the person
    self_references: list[ForeignKey] = field(default_factory=list)
    lookups: dict[str, list[ForeignKey]] = field(default_factory=dict)  # pointed to, not followed
    capped: list[str] = field(default_factory=list)
    unnamable: list[str] = field(default_factory=list)  # tables and links no entry can name

    @property
    def tables(self) -> set[str]:
        return {entry.table for entry in self.entries}


def map_person_data(schema: Schema, person: PersonChoice) -> DataMap:
    """The entries that reach every table holding the person's rows (rules: module docstring)."""
    data = DataMap(person)
    root_table = person.chosen.table
    id_column = person.chosen.id_column
    names: set[str] = set()
    paths: dict[str, int] = {}

    def add(entry: Entry) -> Entry | None:
        if paths.get(entry.table, 0) >= MAX_PATHS_PER_TABLE:
            if entry.table not in data.capped:
                data.capped.append(entry.table)
            return None
        name = entry.table if entry.table not in names else _path_name(entry, names)
        entry = Entry(name, entry.table, entry.path, entry.user_key, entry.parent, entry.key)
        names.add(name)
        paths[entry.table] = paths.get(entry.table, 0) + 1
        data.entries.append(entry)
        return entry

    root = add(Entry(root_table, root_table, (root_table,), user_key=id_column))
    assert root is not None
    for table in schema.tables.values():
        data.self_references += [k for k in table.foreign_keys if k.referred == k.table]
    queue: deque[Entry] = deque()
    owned = {  # tables with rows of their own people: reached by that key, never from above
        table.name
        for table in schema.tables.values()
        if any(key.referred == root_table for key in table.foreign_keys)
    }
    for table in sorted(schema.tables.values(), key=lambda t: t.name):
        keys = [k for k in table.foreign_keys if k.referred == root_table and k.table != root_table]
        if not keys or not _nameable(table.name, keys, data):
            continue
        owner, *others = sorted(keys, key=lambda k: _owner_rank(table, k))
        data.other_people += others
        if owner.referred_columns == (id_column,):
            direct = (root_table, table.name)
            entry = Entry(table.name, table.name, direct, owner.columns[0], None, owner)
        else:
            entry = Entry(table.name, table.name, (root_table, table.name), None, root.name, owner)
        if (added := add(entry)) is not None:
            queue.append(added)
    while queue:
        parent = queue.popleft()
        for key in sorted(schema.referring.get(parent.table, []), key=_order):
            child = key.table
            if child in (parent.table, root_table) or child in parent.path or child in owned:
                continue
            if not _nameable(child, [key], data):
                continue
            path = (*parent.path, child)
            if (added := add(Entry(child, child, path, None, parent.name, key))) is not None:
                queue.append(added)
    reached = data.tables
    for entry in data.entries:
        for key in schema.tables[entry.table].foreign_keys:
            pointers = data.lookups.setdefault(key.referred, [])
            if key.referred not in reached and key not in pointers:
                pointers.append(key)
    data.lookups = {table: keys for table, keys in data.lookups.items() if keys}
    return data


def _order(key: ForeignKey) -> tuple[str, tuple[str, ...]]:
    return (key.table, key.columns)


def _owner_rank(table: TableInfo, key: ForeignKey) -> tuple[int, int]:
    """Owner-like names first, other people's roles last, then the table's column order."""
    first = key.columns[0]
    if _OWNER.match(first):
        kind = 0
    elif _OTHER_PERSON.search(first):
        kind = 2
    else:
        kind = 1
    order = [column.name for column in table.columns]
    return (kind, order.index(first) if first in order else len(order))


def _nameable(table: str, keys: list[ForeignKey], data: DataMap) -> bool:
    """Whether the configuration can name the table and the links' columns (identifiers only)."""
    columns = [c for key in keys for c in (*key.columns, *key.referred_columns)]
    bad = [name for name in (table, *columns) if not _IDENTIFIER.match(name)]
    if bad:
        note = f"{table}: '{bad[0]}' cannot be named in the configuration"
        if note not in data.unnamable:
            data.unnamable.append(note)
        return False
    return True


def _path_name(entry: Entry, taken: set[str]) -> str:
    """A second path's name: the table, then the columns it is reached by."""
    assert entry.key is not None
    base = f"{entry.table}.by_{'_'.join(entry.key.columns)}"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}.{number}", number + 1
    return name
