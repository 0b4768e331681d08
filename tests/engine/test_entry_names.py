"""Package entry names are safe and unique whatever the file names in a source, and the
manifest maps each one back to the original (engine/entrynames.py, docs/package-format.md).

The names are generated (every Unicode category, control characters, separators, bytes that
are not UTF-8, and the names real packages held: `..\\..\\x`, newlines, U+202E) and checked
against a reference written apart from the code: NFKC of the whole name, then plain rules."""

from __future__ import annotations

import base64
import io
import os
import zipfile
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datapolicy.engine.package import PackageWriter
from datapolicy.engine.sources.jsonlines import encode_rows
from datapolicy.engine.verify import verify_package
from packages import export_in_memory, file_source, reference_clashes, reference_unsafe

HOSTILE = ["..", ".", "..\\..\\x", "a\nb", "\u202egnp.exe", "\uff0e\uff0e", "x:y", "A.txt", "a.txt"]
HOSTILE += ["\u2028", "C:", "\\", "a\u0301", "\u00e1", "\uff0f", "...", " ", "\x7f", "a.txt~2"]

names = st.one_of(
    st.text(st.characters(exclude_characters="/\x00", exclude_categories=["Cs"]), min_size=1),
    st.sampled_from(HOSTILE),
    st.binary(min_size=1, max_size=6)
    .filter(lambda b: b"/" not in b and b"\0" not in b)
    .map(
        os.fsdecode  # as a POSIX file system hands them over: undecodable bytes escaped
    ),
).filter(lambda name: name not in (".", ".."))  # no file system has these as names
paths = st.lists(st.lists(names, min_size=1, max_size=3).map("/".join), max_size=12, unique=True)


def original(entry: dict) -> str:
    if "sourcePathBytes" in entry:
        return os.fsdecode(base64.b64decode(entry["sourcePathBytes"]))
    return entry["sourcePath"]


def check(package: bytes, contents: dict[str, bytes], source: str) -> None:
    """Every entry safe and distinct (also on a case-insensitive file system, and a file never
    where a folder is); every file's manifest entry maps back to its original name and bytes."""
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        entries = archive.namelist()
        manifest = orjson.loads(archive.read("manifest.json"))
        assert not [name for name in entries if reference_unsafe(name)]
        assert not reference_clashes(entries)
        files = [entry for entry in manifest["files"] if entry["path"].startswith("files/")]
        assert sorted(original(entry) for entry in files) == sorted(contents)
        for entry in files:
            assert entry["path"].startswith(f"files/{source}/")
            assert archive.read(entry["path"]) == contents[original(entry)]
    assert verify_package(io.BytesIO(package)) == []


@settings(max_examples=300, deadline=None)
@given(paths)
@example(["..\\..\\x", "a\nb", "\u202egnp.exe", "\uff0e\uff0e/x", "C:/x"])
@example(["A.txt", "a.txt", "a.txt~2", "A.TXT"])  # the same on Windows and macOS
@example(["x\x01/y", "x\x02/y", "x_"])  # two folders, then a file, all named x_
@example(["\udcff", "\udcfe"])  # bytes that are not UTF-8
def test_entry_names_are_safe_unique_and_map_back_to_the_original(relative_paths):
    files = [
        path for path in relative_paths if not any(p.startswith(f"{path}/") for p in relative_paths)
    ]
    contents = {path: f"content of {path!r}".encode("utf-8", "surrogateescape") for path in files}
    stream = io.BytesIO()
    writer = PackageWriter(stream, {"operationId": "op", "user": {"id": "u"}})
    summary = writer.source("documents", "files")
    for path in files:
        list(writer.add_file(summary, path, io.BytesIO(contents[path])))
    writer.close()
    check(stream.getvalue(), contents, "documents")


def test_hostile_names_on_disk_are_exported_safely(tmp_path: Path):
    """The names real packages kept raw, as files on disk, exported by the file source."""
    alice = tmp_path / "people" / "alice"
    (alice / "a\nb").mkdir(parents=True)
    names = [b"..\\..\\x", b"a\nb/c", "\u202egnp.exe".encode(), b"caf\xe9", b"CAF\xc9"]
    contents = {}
    for name in names:
        (alice / os.fsdecode(name)).write_bytes(b"bytes of " + name)
        contents[os.fsdecode(name)] = b"bytes of " + name
    package = export_in_memory(file_source(f"{tmp_path}/people/{{userId}}"), "alice")
    check(package, contents, "documents")
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert archive.read("files/documents/.._.._x") == b"bytes of ..\\..\\x"
        assert archive.read("files/documents/_gnp.exe") == "bytes of \u202egnp.exe".encode()


def test_record_streams_whose_names_clean_to_one_entry_get_two():
    """Tables `a b` and `a_b` both clean to `a_b.jsonl`: the second is `a_b~2.jsonl`, where the
    writer used to fail the export."""
    stream = io.BytesIO()
    writer = PackageWriter(stream, {"operationId": "op", "user": {"id": "u"}})
    shop = writer.source("shop", "sql")
    for name in ("a b", "a_b", "A_B"):
        list(writer.add_records(shop, name, [encode_rows([{"table": name}])]))
    manifest = writer.close()
    assert [entry["path"] for entry in manifest["files"][:3]] == [
        "records/shop/a_b.jsonl",
        "records/shop/a_b~2.jsonl",
        "records/shop/A_B~3.jsonl",
    ]
    assert verify_package(io.BytesIO(stream.getvalue())) == []


LONGEST = {
    "control": [chr(n) + "\x01" * 254 for n in range(2, 32)],
    "not-utf-8": [os.fsdecode(bytes([n]) + b"\xff" * 254) for n in range(0x80, 0xC0)],
    "punctuation": [f"{n:03}{c * 250}" for n in range(100) for c in ",:["],
}


@pytest.mark.parametrize("originals", LONGEST.values(), ids=LONGEST.keys())
def test_a_manifest_of_the_longest_names_is_within_what_verify_reads(originals: list[str]):
    """verify reads a manifest only up to a size, and a count of `[`, `,` and `:`, that its
    entries can need (verify.py). Names that take the most of either, many of them, still
    verify: control characters (6 bytes each in JSON), bytes that are not UTF-8 (in
    sourcePath and sourcePathBytes), commas, colons and brackets (counted as values)."""
    stream = io.BytesIO()
    writer = PackageWriter(stream, {"operationId": "op", "user": {"id": "u"}})
    summary = writer.source("documents", "files")
    for name in originals:
        list(writer.add_file(summary, name, io.BytesIO(b"")))
    writer.close()
    check(stream.getvalue(), dict.fromkeys(originals, b""), "documents")
