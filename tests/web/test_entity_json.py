"""The JSON of an entity, kept by the row it was written from (web/routes/serialize.py
`entity_json`): what it answers is always what writing that row answers, whatever was kept."""

from __future__ import annotations

import orjson

from datapolicy.model import PROPERTIES
from datapolicy.store.operations import to_operation
from datapolicy.web.routes import serialize
from datapolicy.web.routes.serialize import (
    JSON_OPTIONS,
    entity,
    entity_json,
    entity_row,
    entity_rows,
)

ROW = (
    "op-1",
    "user-1",
    "failed",
    0.0,
    "file:///exports",
    1_793_472_987_853_166,
    1_793_472_988_000_000,
    3,
    "storageUnavailable",
    "No space left on device.",
    "exportPersonalData",
    "shop/orders",
    1_250,
    4_096,
    0,
    '["app-1", "user-2"]',
    1_793_472_987_000_001,
    1,  # dry_run: 0 or 1 on SQLite, a boolean on PostgreSQL
    '["app-1", "user-3"]',
)


def written(row: tuple[object, ...]) -> bytes:
    return orjson.dumps(entity_row(row), option=JSON_OPTIONS)


def test_a_row_changed_in_any_column_is_written_anew():
    rows = [ROW]
    for index, value in enumerate(ROW):
        changed = list(ROW)
        changed[index] = 57.5 if isinstance(value, float) else (value or 0) * 2  # type: ignore[operator]
        rows.append(tuple(changed))
    for row in rows + rows:  # the second time from what was kept
        assert entity_json(row) == written(row)


def test_a_negative_zero_progress_is_not_served_as_a_zero():
    negative = (*ROW[:3], -0.0, *ROW[4:])
    assert entity_json(ROW) == written(ROW)
    assert entity_json(negative) == written(negative) != written(ROW)


def test_what_is_kept_is_bounded(monkeypatch):
    monkeypatch.setattr(serialize, "ENTITIES_KEPT", 3)
    for number in range(10):
        row = (f"op-{number}", *ROW[1:])
        assert entity_json(row) == written(row)
        assert len(serialize._written) <= 3


def test_dry_run_is_a_json_boolean_however_the_database_gives_it():
    """`dryRun` is `true`, `false` or `null` on the fast path (`entity_json`), in a selected
    list page (`entity_rows`) and from an `Operation` (`entity`) alike, whether the column came
    back as a boolean (PostgreSQL) or as 0 or 1 (SQLite)."""
    selected = (PROPERTIES["dryRun"],)
    for stored, served in ((True, True), (1, True), (False, False), (0, False), (None, None)):
        row = (*ROW[:-2], stored, ROW[-1])
        serialize._written.clear()  # 1 == True: a row kept for one would answer the other
        assert orjson.loads(entity_json(row))["dryRun"] is served
        assert entity_rows([row], selected)[0]["dryRun"] is served  # type: ignore[index]
        assert entity(to_operation(row), selected)["dryRun"] is served
