"""A file source erased over several attempts (engine/erasure/filelog.py), against a reference:
the files on disk. Hypothesis generates how each attempt but the last stops: its record before
a deletion refused (a lost lease: that file not deleted), a deletion that fails, or the record
of the finished source lost (the lease lost after the last deletion). Whatever the history,
once an attempt completes, no file is left, the receipt says `erased` of every one, and its
lines count each file once."""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from datapolicy.config import FileSourceConfig
from datapolicy.engine.directory import User
from datapolicy.engine.erasure import Masker
from datapolicy.engine.erasure.checks import Verdict, check_key
from datapolicy.engine.erasure.package import erase_into_package
from datapolicy.engine.exporter import Cancelled, Progress
from datapolicy.engine.sources.base import SourceError
from datapolicy.engine.sources.files import FileSource
from engine.test_erasure_receipt import NOW, SECRET, operation

PERSON = "1000000"


class CommitRecordLost(Exception):
    """The lease was lost after the source's last deletion: its record is refused."""


class FailingAt(FileSource):
    """The uploads, whose `fail_at`-th deletion (counted from 1) fails."""

    def __init__(self, config: FileSourceConfig, fail_at: int | None):
        super().__init__(config)
        self.fail_at = fail_at
        self.deletions = 0

    def delete(self, user_id: str, relative: str) -> None:
        self.deletions += 1
        if self.deletions == self.fail_at:
            raise SourceError(f"cannot delete {relative}")
        super().delete(user_id, relative)


@dataclass
class Store:
    """What the worker stores with the operation, as JSON round-trips it."""

    committed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    partial: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class Attempt:
    """One attempt's records, stopped as `stop` says at its `at`-th record."""

    store: Store
    stop: str
    at: int
    records: int = 0

    def partly(self, name: str, lines: list[dict[str, Any]]) -> None:
        self.records += 1
        if self.stop == "refused" and self.records == self.at:
            raise Cancelled
        self.store.partial[name] = orjson.loads(orjson.dumps(lines))

    def commit(self, name: str, lines: list[dict[str, Any]]) -> None:
        if self.stop == "lost":
            raise CommitRecordLost
        self.store.committed[name] = orjson.loads(orjson.dumps(lines))
        self.store.partial.pop(name, None)


STOPS = st.one_of(
    st.tuples(st.just("refused"), st.integers(1, 6)),
    st.tuples(st.just("fails"), st.integers(1, 6)),
    st.tuples(st.just("lost"), st.just(0)),
)


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 6), stops=st.lists(STOPS, max_size=4))
def test_every_file_is_in_the_receipt_once_whatever_stopped_the_attempts(
    count: int, stops: list[tuple[str, int]]
):
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        uploads = root / "uploads" / PERSON
        uploads.mkdir(parents=True)
        names = [f"file-{index}.txt" for index in range(count)]
        for name in names:
            (uploads / name).write_text(name)
        config = FileSourceConfig(name="uploads", path=f"{root}/uploads/{{userId}}", erase="delete")
        store = Store()
        for stop, at in [*stops, ("none", 0)]:
            attempt = Attempt(store, stop, at)
            stream = io.BytesIO()
            try:
                erase_into_package(
                    operation(),
                    User(PERSON),
                    [FailingAt(config, at if stop == "fails" else None)],
                    stream,
                    Progress(),
                    lambda: NOW,
                    Masker(SECRET),
                    dry_run=False,
                    state=dict(store.committed),
                    committed=attempt.commit,
                    partly=attempt.partly,
                    earlier=dict(store.partial),
                )
            except (Cancelled, CommitRecordLost, SourceError):
                assert stop != "none"
                continue
            break
        assert not list(uploads.iterdir())
        with zipfile.ZipFile(stream) as archive:
            receipt = orjson.loads(archive.read("receipt.json"))
    lines = receipt["fileSources"]
    assert {name: check_key(receipt, SECRET, ("uploads", name)).verdict for name in names} == {
        name: Verdict.ERASED for name in names
    }
    assert sum(line["files"] for line in lines) == count
    assert sum(line["keyCount"] for line in lines) == count
    listed = [key for line in lines for key in line.get("keys", ())]
    assert len(listed) == len(set(listed)) == count
