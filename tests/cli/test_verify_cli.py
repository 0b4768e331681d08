"""`datapolicy verify` on hostile packages: generated ones (mutated manifests, mutated ZIP bytes,
entries renamed to weird names and given link or device modes) through the real command
in-process, and the malformed inputs of issue 14 (each one line on stderr, exit status 1; one
of them through a real process).

The property: the command exits 0 or 1 and never raises; and when it says OK, a second check
written apart from it (the standard library's json, hashlib, and the reference name rules of
tests/packages.py) finds only safe, distinct, regular entries, exactly those the manifest lists,
with their sizes, checksums and record counts."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from commands import datapolicy as run
from commands import one_line_error
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from datapolicy.cli import main
from datapolicy.engine.package import PackageWriter
from datapolicy.engine.sources.jsonlines import encode_rows
from packages import reference_clashes, reference_unsafe

WEIRD_NAMES = ["../x", "/abs", "a\\b", "C:x", "\u202egnp.exe", "a\nb", "", "a/", "a//b", "."]
WEIRD_NAMES += [
    "files/s/A.TXT",
    "manifest.json",
    "index.html",
    "records/s/t.jsonl",
    "\uff0e\uff0e/x",
]


def good_package() -> bytes:
    stream = io.BytesIO()
    writer = PackageWriter(stream, {"operationId": "op", "user": {"id": "u"}})
    shop = writer.source("s", "sql")
    list(writer.add_records(shop, "t", [encode_rows([{"id": 1}, {"id": 2}])]))
    files = writer.source("s", "files")
    list(writer.add_file(files, "a.txt", io.BytesIO(b"alice's a\n")))
    list(writer.add_file(files, "sub/b.bin", io.BytesIO(bytes(range(256)))))
    writer.close()
    return stream.getvalue()


GOOD = good_package()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def rezipped(entries: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    stream = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(stream, "w") as archive:
        warnings.simplefilter("ignore")  # a duplicate name is what some cases are about
        for info, data in entries:
            archive.writestr(info, data)
    return stream.getvalue()


def entries_of(package: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def with_manifest(change: Any, rename: str | None = None) -> bytes:
    """The good package with `change` applied to its manifest's `files`, and its first entry
    renamed to `rename` (and listed so)."""
    entries = entries_of(GOOD)
    manifest = orjson.loads(entries[-1][1])
    if rename is not None:
        first, data = entries[0]
        entries[0] = (zipfile.ZipInfo(rename, first.date_time), data)
        manifest["files"][0]["path"] = rename
    manifest["files"] = change(manifest["files"])
    return rezipped([*entries[:-1], (entries[-1][0], orjson.dumps(manifest))])


@st.composite
def mutated_manifests(draw: st.DrawFn) -> bytes:
    """The good package with its manifest changed at a random place to a random value."""
    entries = entries_of(GOOD)
    manifest = orjson.loads(entries[-1][1])
    where: Any = manifest
    for _ in range(draw(st.integers(0, 3))):
        if isinstance(where, dict) and where:
            key = draw(st.sampled_from(sorted(where)))
        elif isinstance(where, list) and where:
            key = draw(st.integers(0, len(where) - 1))
        else:
            break
        if not isinstance(where[key], (dict, list)):
            break
        where = where[key]
    action = draw(st.sampled_from(["set", "delete", "duplicate"]))
    if isinstance(where, dict):
        key = draw(
            st.sampled_from([*sorted(where), "path", "size", "records", "sourcePath", "new"])
        )
        if action == "delete":
            where.pop(key, None)
        else:
            where[key] = draw(json_values | st.sampled_from(WEIRD_NAMES))
    elif isinstance(where, list) and where:
        index = draw(st.integers(0, len(where) - 1))
        if action == "duplicate":
            where.append(where[index])
        elif action == "delete":
            del where[index]
        else:
            where[index] = draw(json_values)
    text = json.dumps(manifest).encode()  # json, not orjson: integers past 64 bits, Infinity
    data = draw(st.sampled_from([text, text[:-1], b"\xff" + text]))
    return rezipped([*entries[:-1], (entries[-1][0], data)])


@st.composite
def weird_entries(draw: st.DrawFn) -> bytes:
    """The good package with one entry renamed and given a mode, flags and a method, and the
    manifest changed to list it truthfully: only verify's own rules can refuse it."""
    entries = entries_of(GOOD)
    manifest = orjson.loads(entries[-1][1])
    index = draw(st.integers(0, len(entries) - 2))
    info, data = entries[index]
    name = draw(st.sampled_from(WEIRD_NAMES) | st.text(min_size=1, max_size=10))
    renamed = zipfile.ZipInfo(name, info.date_time)
    renamed.create_system = draw(st.sampled_from([0, 3]))
    kind = draw(st.sampled_from([0, stat.S_IFREG, stat.S_IFLNK, stat.S_IFDIR, stat.S_IFCHR]))
    renamed.external_attr = ((kind | 0o644) << 16) | draw(st.integers(0, 0xFFFF))
    renamed.compress_type = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    entries[index] = (renamed, data)
    for entry in manifest["files"]:
        if entry["path"] == info.filename:
            entry["path"] = renamed.filename  # zipfile cuts a name at NUL
    entries[-1] = (entries[-1][0], orjson.dumps(manifest))
    return rezipped(entries)


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    """The good package with bytes flipped, cut or inserted anywhere."""
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        change = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if change == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif change == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif change == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:]
        if not data:
            break
    return bytes(data)


hostile_packages = st.one_of(mutated_manifests(), weird_entries(), mutated_bytes())


def safe_and_faithful(package: bytes) -> None:
    """The second check of a package the command passed."""
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert not [name for name in names if reference_unsafe(name)], names
        assert not reference_clashes(names), names
        assert all(info.orig_filename == info.filename for info in infos)
        assert all(stat.S_IFMT(info.external_attr >> 16) in (0, stat.S_IFREG) for info in infos)
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["formatVersion"] == 1
        assert type(manifest["formatVersion"]) is int
        listed = {entry["path"]: entry for entry in manifest["files"]}
        assert len(listed) == len(manifest["files"])
        assert sorted(listed) == sorted(set(names) - {"manifest.json"})
        for path, entry in listed.items():
            data = archive.read(path)
            assert entry["size"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            if "records" in entry:
                assert entry["records"] == data.count(b"\n")


DIRECTORY = Path(tempfile.mkdtemp(prefix="verify-fuzz-"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_packages)
@example(GOOD)
# What the fuzz found in the verify before issue 14: OK for an escaping entry and for an entry
# listed twice, a KeyError and a TypeError for manifests of the wrong shape.
@example(with_manifest(lambda files: files, rename="../x"))
@example(with_manifest(lambda files: [*files, files[0]]))
@example(with_manifest(lambda files: [{"size": 1}, *files[1:]]))
@example(with_manifest(lambda files: ["path", *files[1:]]))
def test_verify_never_raises_and_passes_only_safe_faithful_packages(package: bytes):
    path = DIRECTORY / "package.zip"
    path.write_bytes(package)
    result = CliRunner().invoke(main, ["verify", str(path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1), result.output
    event("verified" if result.exit_code == 0 else "refused")
    if result.exit_code == 0:
        assert result.output == f"{path}: OK\n"
        safe_and_faithful(package)
    else:
        assert result.stderr.strip(), result.output


MALFORMED = {
    "not-a-zip": b"PK\x03\x04 but nothing more",
    "truncated": GOOD[: len(GOOD) // 2],
    "not-json": rezipped([*entries_of(GOOD)[:-1], (entries_of(GOOD)[-1][0], b"{")]),
    "wrong-shape": rezipped([(zipfile.ZipInfo("manifest.json"), b'{"formatVersion": 1}')]),
}


@pytest.mark.parametrize("package", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_is_one_line_and_exit_status_1(package: bytes, tmp_path: Path):
    path = tmp_path / "package.zip"
    path.write_bytes(package)
    result = CliRunner().invoke(main, ["verify", str(path)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"{path}: ")


def test_a_wrong_shape_is_one_line_from_a_real_process(tmp_path: Path):
    """What printed a traceback before: the real command, in a process of its own."""
    path = tmp_path / "package.zip"
    path.write_bytes(MALFORMED["wrong-shape"])
    assert one_line_error(run("verify", str(path))).startswith(f"{path}: manifest.json has the")
