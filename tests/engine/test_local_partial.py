"""Attempts at one export in a local directory are fenced from each other: each writes a partial
file of its own, so an attempt whose worker stalled past its lease and then woke up (issue 20:
its late `begin()` used to replace the successor's partial file, which the successor then
published) can neither remove nor replace what its successor publishes. What is published is
read back first (`verify.check_written`), and what dead attempts left is swept."""

from __future__ import annotations

import errno
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import packages
from datapolicy.engine.targets.base import StorageError, Upload, write_error
from datapolicy.engine.targets.local import LocalTarget, sweep_partials
from datapolicy.engine.verify import verify_package

OPERATION = "0b5e3a4c-1d2f-4e6a-8b9c-0d1e2f3a4b5c"
OTHER = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


def write_package(upload: Upload, who: str, payload: bytes = b"") -> dict:
    """A real package written to the upload's stream, marked as `who`'s; its manifest."""
    return packages.write_package(upload.stream, payload or who.encode() * 1000, who)


def died(upload: Upload) -> None:
    """What a killed worker's attempt leaves: its partial file, nothing open."""
    upload.stream.close()
    os.close(upload.directory)  # type: ignore[attr-defined]


def written_by(package: Path) -> str:
    with zipfile.ZipFile(package) as archive:
        return orjson.loads(archive.read("manifest.json"))["writtenBy"]


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.mark.parametrize("stale_discards_first", [True, False])
def test_a_stale_attempt_begun_late_cannot_touch_the_successor_s_package(
    tmp_path: Path, stale_discards_first: bool
):
    """The successor begins and writes; the stale attempt (claimed earlier, frozen before its
    begin) begins late and writes a package of its own; whichever order they end in, the
    successor publishes its own package, whole, and nothing else is left."""
    target = LocalTarget(tmp_path / "exports", (tmp_path,))
    successor = target.begin(OPERATION)
    successor_manifest = write_package(successor, "successor")
    stale = target.begin(OPERATION)  # the stale worker wakes up and begins
    write_package(stale, "stale")
    if stale_discards_first:
        stale.discard()  # its heartbeat was refused: it gives up
    successor.finish(successor_manifest)
    location = Path(successor.publish())
    if not stale_discards_first:
        stale.discard()
    assert verify_package(location) == []
    assert written_by(location) == "successor"
    assert names(tmp_path / "exports") == [f"{OPERATION}.zip"]


def test_each_attempt_creates_its_own_partial_file_exclusively(tmp_path: Path):
    target = LocalTarget(tmp_path / "exports", (tmp_path,))
    first, second = target.begin(OPERATION), target.begin(OPERATION)
    partials = names(tmp_path / "exports")
    assert len(partials) == 2
    assert all(name.startswith(f".{OPERATION}.") for name in partials)
    assert all(name.endswith(".zip.partial") for name in partials)
    assert all(os.stat(tmp_path / "exports" / n).st_mode & 0o777 == 0o600 for n in partials)
    first.discard()
    second.discard()
    assert names(tmp_path / "exports") == []


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(min_size=0, max_size=4000), cut=st.floats(0, 1, exclude_max=True))
@example(payload=b"", cut=0.0)
@example(payload=b"x" * 4000, cut=0.999)
def test_a_package_cut_short_is_never_published(tmp_path_factory, payload: bytes, cut: float):
    """Whatever length the partial file is cut to before publishing, the cheap check refuses
    it (as the full verifier, the reference, does) and removes it; nothing is published."""
    root = tmp_path_factory.mktemp("cut")
    target = LocalTarget(root / "exports", (root,))
    upload = target.begin(OPERATION)
    manifest = write_package(upload, "me", payload)
    upload.stream.flush()
    partial = root / "exports" / names(root / "exports")[0]
    size = partial.stat().st_size
    os.truncate(partial, int(size * cut))
    assert verify_package(partial) != []  # the reference: a cut package does not verify
    with pytest.raises(StorageError, match="does not verify, so it was not published"):
        upload.finish(manifest)
    assert names(root / "exports") == []


def test_a_package_that_is_not_the_one_written_is_never_published(tmp_path: Path):
    target = LocalTarget(tmp_path / "exports", (tmp_path,))
    upload = target.begin(OPERATION)
    write_package(upload, "what was written")
    other = target.begin(OPERATION)
    expected = write_package(other, "what the writer returned")
    other.discard()
    with pytest.raises(StorageError, match="not the manifest this attempt wrote"):
        upload.finish(expected)
    assert names(tmp_path / "exports") == []


def test_discard_partial_removes_every_attempt_s_file_of_that_operation_only(tmp_path: Path):
    target = LocalTarget(tmp_path / "exports", (tmp_path,))
    for _ in range(3):
        died(target.begin(OPERATION))
    died(target.begin(OTHER))
    (tmp_path / "exports" / f".{OPERATION}.zip.partial").write_bytes(b"an older version's")
    (tmp_path / "exports" / "unrelated.txt").write_text("not ours\n")
    target.discard_partial(OPERATION)
    remaining = names(tmp_path / "exports")
    assert remaining[-1] == "unrelated.txt"
    assert len(remaining) == 2
    assert remaining[0].startswith(f".{OTHER}.")


def test_the_sweep_removes_old_partials_of_operations_not_running(tmp_path: Path):
    """Older than the lease and not running: removed. Fresh, or of a running operation (a slow
    attempt waiting on a source writes nothing for a while), or not a partial file: kept."""
    exports = tmp_path / "exports"
    deep = LocalTarget(exports / "deep" / "er", (tmp_path,))
    died(deep.begin(OPERATION))
    died(deep.begin(OTHER))
    (exports / "a-package.zip").write_bytes(b"published")
    old = time.time() - 60
    for path in exports.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    fresh = LocalTarget(exports, (tmp_path,)).begin(OPERATION)
    removed = sweep_partials([exports], 30, running=lambda operation_id: operation_id == OTHER)
    assert [(path.parent.name, path.name.split(".")[1]) for path in removed] == [("er", OPERATION)]
    left = sorted(str(p.relative_to(exports)).split(".")[0:2] for p in exports.rglob("*.*"))
    assert left == [["", OPERATION], ["a-package", "zip"], ["deep/er/", OTHER]]
    fresh.discard()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_no_room_fails_at_once_naming_the_target(code: int):
    error = write_error(OSError(code, os.strerror(code)), "the storage location '/srv/out'")
    assert error.permanent
    assert str(error) == f"the storage location '/srv/out' is full ({os.strerror(code)})"


def test_other_write_errors_are_worth_another_attempt():
    error = write_error(OSError(errno.EIO, os.strerror(errno.EIO)), "the storage location '/x'")
    assert not error.permanent
    assert (
        str(error)
        == f"cannot write the package to the storage location '/x': {os.strerror(errno.EIO)}"
    )


@settings(max_examples=30, deadline=None)
@given(where=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
@example(where=0.0, flip=1)  # deflate's BFINAL bit: the same bytes, but the stream never ends
@example(where=0.5, flip=255)
@example(where=0.998046875, flip=1)  # decodes past its size: zipfile alone read it back the same
def test_a_package_whose_manifest_was_spoiled_is_never_published(
    tmp_path_factory, where: float, flip: int
):
    """A byte of manifest.json's stored data changed (its central directory intact): the
    package is refused unless the manifest still reads back the same, as a complete deflate
    stream. The reference is a second reader: raw inflate (zlib) of the entry's bytes, against
    the bytes written."""
    root = tmp_path_factory.mktemp("spoiled")
    target = LocalTarget(root / "exports", (root,))
    upload = target.begin(OPERATION)
    manifest = write_package(upload, "me")
    upload.stream.flush()
    partial = root / "exports" / names(root / "exports")[0]
    with zipfile.ZipFile(partial) as archive:
        info = archive.getinfo("manifest.json")
        written = archive.read("manifest.json")
    with partial.open("r+b") as file:
        file.seek(info.header_offset)  # the local header's lengths, not the central one's
        name_length, extra_length = struct.unpack("<HH", file.read(30)[26:30])
        start = info.header_offset + 30 + name_length + extra_length
        file.seek(start + int(info.compress_size * where))
        byte = file.read(1)[0]
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte ^ flip]))
        file.seek(start)
        stored = file.read(info.compress_size)
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        same = inflate.decompress(stored) == written and inflate.eof and not inflate.unused_data
    except zlib.error:
        same = False
    if same:
        upload.finish(manifest)
        upload.discard()
    else:
        with pytest.raises(StorageError, match="does not verify, so it was not published"):
            upload.finish(manifest)
    assert names(root / "exports") == []
