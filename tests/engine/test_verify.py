"""`verify_package` refuses what an extractor cannot be trusted with, even when the manifest
lists it faithfully: names that escape or mislead, the same name twice, links; and it answers
every malformed package with problems, never an exception, in bounded memory."""

from __future__ import annotations

import hashlib
import io
import shutil
import stat
import tracemalloc
import warnings
import zipfile
import zlib

import orjson
import pytest

from datapolicy.engine.verify import verify_package


def zipped(entries: list[tuple[str | zipfile.ZipInfo, bytes]], manifest: object = None) -> bytes:
    """A ZIP of `entries` and a manifest that lists each of them truthfully (or `manifest`)."""
    if manifest is None:
        manifest = {"formatVersion": 1, "files": [listed(entry, data) for entry, data in entries]}
    stream = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name, and writes it
        for entry, data in entries:
            archive.writestr(entry, data)
        archive.writestr("manifest.json", orjson.dumps(manifest))
    return stream.getvalue()


def listed(entry: str | zipfile.ZipInfo, data: bytes) -> dict[str, object]:
    name = entry.filename if isinstance(entry, zipfile.ZipInfo) else entry
    return {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def entry_a_of_size(size: object) -> bytes:
    """A package with one entry `a` of one byte that the manifest says is `size` long."""
    entry = {"path": "a", "size": size, "sha256": hashlib.sha256(b"a").hexdigest()}
    return zipped([("a", b"a")], manifest={"formatVersion": 1, "files": [entry]})


def link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: extractors that honour modes make a symlink of it
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def problems(package: bytes) -> list[str]:
    return verify_package(io.BytesIO(package))


def test_a_faithful_package_verifies():
    assert problems(zipped([("files/s/a.txt", b"a"), ("records/s/t.jsonl", b"{}\n")])) == []


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([("../escape.txt", b"x")], "'..'"),
        ([("files/../../escape.txt", b"x")], "'..'"),
        ([("/etc/cron.d/x", b"x")], "absolute"),
        ([("files/s/..\\..\\x", b"x")], "backslash"),
        ([("C:/x", b"x")], "colon"),
        ([("files/s/\u202egnp.exe", b"x")], "bidi"),
        ([("files/s/a\nb", b"x")], "control"),
        ([("files/s/a", b"x"), ("files/s/a", b"y")], "in the ZIP twice"),
        ([("files/s/A.txt", b"x"), ("files/s/a.txt", b"y")], "as well as files/s/A.txt"),
        ([(link("files/s/to-etc"), b"/etc")], "a symbolic link"),
    ],
    ids=["dotdot", "dotdot-inside", "absolute", "backslash", "drive", "bidi", "newline",
         "duplicate", "case-duplicate", "symlink"],
)  # fmt: skip
def test_unsafe_entries_are_refused_though_the_manifest_lists_them(entries, expected):
    found = problems(zipped(entries))
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        (b"not a zip at all", "not a readable ZIP file"),
        (zipped([("files/s/a", b"a" * 1000)])[:-30], "not a readable ZIP file"),
        (zipped([("a", b"a")], manifest=[1, 2]), "unknown formatVersion"),
        (zipped([], manifest={"formatVersion": True, "files": []}), "unknown formatVersion True"),
        (zipped([], manifest={"formatVersion": 1}), "files: Field required"),
        (zipped([], manifest={"formatVersion": 1, "files": {}}), "files: Input should be"),
        (zipped([], manifest={"formatVersion": 1, "files": [7]}), "files.0: Input should be"),
        (
            entry_a_of_size("1"),
            "files.0.size: Input should be a valid integer",
        ),
        (
            entry_a_of_size(1e30),
            "files.0.size: Input should be a valid integer",
        ),
        (
            entry_a_of_size(-1),
            "greater than or equal to 0",
        ),
        (
            zipped([("a", b"")], manifest={"formatVersion": 1, "files": [
                {"path": "a", "size": 0, "sha256": "", "sourcePath": 1},
            ]}),
            "files.0.sourcePath: Input should be a valid string",
        ),
        (
            entry_a_of_size(2**63),
            "a: size 1, manifest says 9223372036854775808",
        ),
    ],
    ids=["not-a-zip", "truncated", "manifest-a-list", "version-true", "no-files", "files-object",
         "entry-a-number", "size-a-string", "size-huge-float", "size-negative",
         "source-path-a-number", "size-huge"],
)  # fmt: skip
def test_malformed_packages_are_problems_not_exceptions(package: bytes, expected: str):
    found = problems(package)
    assert any(expected in problem for problem in found), found


def test_a_manifest_that_is_not_json_is_a_problem():
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("manifest.json", b'{"formatVersion": 1, "files": [')
    assert problems(stream.getvalue())[0].startswith("manifest.json is not valid JSON")


def bomb(head: bytes, chunk: bytes, repeat: int) -> bytes:
    """A ZIP whose manifest.json is `head` then `chunk` `repeat` times. Each piece is deflated
    after a full flush, which resets the compressor: the chunk deflates to the same bytes every
    time, so the bomb is made by repeating them rather than by deflating it all."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    piece = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    compressed = start + piece * repeat + deflate.flush()
    crc = zlib.crc32(head)
    for _ in range(repeat):
        crc = zlib.crc32(chunk, crc)
    info = zipfile.ZipInfo("manifest.json")
    info.compress_type = zipfile.ZIP_DEFLATED
    info.CRC, info.compress_size = crc, len(compressed)
    info.file_size = len(head) + len(chunk) * repeat
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.fp.write(info.FileHeader(zip64=True))  # type: ignore[union-attr]
        archive.fp.write(compressed)  # type: ignore[union-attr]
        info.header_offset = 0
        archive.filelist.append(info)
        archive.NameToInfo[info.filename] = info
        archive.start_dir = archive.fp.tell()  # type: ignore[union-attr]
    return stream.getvalue()


@pytest.mark.parametrize(
    ("content", "repeat"),
    [(b" " * 1024 * 1024, 360), (b"{}," * 1024 * 1024, 2), (b"{}," * 20_000, 1)],
    ids=["360MiB-of-blanks", "2M-empty-objects", "20k-empty-objects-in-60KiB"],
)
def test_a_manifest_bomb_is_refused_in_bounded_memory(content: bytes, repeat: int):
    """A manifest that inflates to hundreds of megabytes (or to millions of empty objects,
    which JSON parsers make thirty times larger again) is refused before it is held: the
    whole check allocates less than 8 MiB."""
    package = bomb(b'{"formatVersion": 1, "files": [', content, repeat)
    assert len(package) < 400 * 1024
    tracemalloc.start()
    try:
        found = problems(package)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak
    assert len(found) == 1, found
    assert "than its entries need" in found[0]


def test_entries_that_overlap_are_refused():
    """Entry b's local header and data lie inside entry a's data: each reads back with its
    CRC, and the manifest lists both truthfully, but a ZIP built this way can inflate one
    deflate stream through many entries (the non-recursive ZIP bomb)."""
    inner_stream = io.BytesIO()
    with zipfile.ZipFile(inner_stream, "w") as inner:
        inner.writestr("files/s/b", b"b" * 100)
        b = inner.getinfo("files/s/b")
    nested = inner_stream.getvalue()[: inner.start_dir]
    a = zipfile.ZipInfo("files/s/a")
    manifest = {"formatVersion": 1, "files": [listed(a, nested), listed(b, b"b" * 100)]}
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr(a, nested)
        archive.writestr("manifest.json", orjson.dumps(manifest))
        b.header_offset = a.header_offset + len(a.FileHeader())
        archive.filelist.append(b)
    with zipfile.ZipFile(io.BytesIO(stream.getvalue())) as check:
        assert check.read("files/s/b") == b"b" * 100  # a valid entry, as zipfile reads it
    found = problems(stream.getvalue())
    assert found == ["files/s/a: overlaps the next entry in the ZIP (a ZIP bomb's trick)"]


def test_a_package_extracted_and_zipped_again_verifies(tmp_path):
    """`zip -r` (here shutil.make_archive) adds an entry per directory: each holds listed
    entries, so each is accepted; a directory that holds nothing listed, or that carries data
    or a link's mode, is still a problem."""
    package = zipped([("files/s/a.txt", b"a"), ("records/s/t.jsonl", b"{}\n")])
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        archive.extractall(extracted)
    rezipped = shutil.make_archive(str(tmp_path / "again"), "zip", extracted)
    with zipfile.ZipFile(rezipped) as archive:
        assert {"files/", "files/s/", "records/", "records/s/"} <= set(archive.namelist())
    assert verify_package(rezipped) == []

    def with_directory(info: zipfile.ZipInfo, data: bytes = b"") -> list[str]:
        entries: list[tuple[str | zipfile.ZipInfo, bytes]] = [("files/s/a.txt", b"a")]
        manifest = {"formatVersion": 1, "files": [listed(*entries[0])]}
        return problems(zipped([*entries, (info, data)], manifest=manifest))

    assert with_directory(zipfile.ZipInfo("files/")) == []
    assert with_directory(zipfile.ZipInfo("empty/")) == [
        "empty/: a directory in the ZIP that holds nothing the manifest lists"
    ]
    assert with_directory(zipfile.ZipInfo("files/"), b"data") == [
        "files/: a directory entry with 4 bytes of data"
    ]
    assert "a directory's name on what is not one" in with_directory(link("files/"))[0]
    assert "'..'" in with_directory(zipfile.ZipInfo("files/../"))[0]
