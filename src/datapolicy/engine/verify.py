"""Check a package against its manifest: every entry present, sized and hashed as listed, every
record count right, and nothing in the ZIP that the manifest does not list.

`datapolicy verify` is what someone runs on a package they were handed, so the package is
treated as hostile, and an OK must mean it is safe to extract:

- every entry name is safe (entrynames.py: nothing absolute or escaping, no `\\`, control or
  bidi characters), no name is there twice (also after NFKC and case folding), and no entry is
  a symlink or a device (the Unix mode bits of its external attributes), is encrypted, uses a
  method other than stored or deflated, or overlaps another entry;
- a directory entry (`records/`, as `zip -r` adds when a package is extracted and zipped again)
  is accepted if it is empty and holds an entry the manifest lists: extracting it makes a
  directory that is made anyway; any other is a problem;
- manifest.json is read only up to what its entries can need (`_manifest_limit`), and parsed
  only if the values it can hold are bounded too: a small ZIP whose manifest inflates to
  gigabytes, or to millions of empty objects, is refused before it is held in memory;
- every entry is hashed as a stream, and one whose size differs from the manifest's is not read;
- any malformed input (not a ZIP, truncated, a manifest that is not JSON or has the wrong
  shapes or types) is a problem in the list, never an exception. Names and messages taken from
  the package are shown with unprintable characters escaped, so a name cannot rewrite the
  terminal it is printed on.

`check_written` is the cheap form a worker runs before it publishes: it reads only the ZIP's
central directory and its manifest.json, and compares them with the manifest the writer
returned (which holds the hashes already), so a package that was cut short, lost its manifest,
or is not the one this attempt wrote is never published.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
import zlib
from collections import Counter
from os import PathLike
from typing import IO, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datapolicy.engine.entrynames import key, unsafe
from datapolicy.engine.package import FORMAT_VERSION, MANIFEST

_CHUNK = 1024 * 1024
MANIFEST_BASE = 64 * 1024  # bytes for the header: operation, user, times, sources
MANIFEST_PER_ENTRY = 256  # bytes per entry: its keys, size, SHA-256 and record count ...
MANIFEST_PER_NAME_BYTE = 8  # ... its path, and sourcePath (a control character is 6: \u0001)
VALUES_BASE = 4096  # JSON values in the header
VALUES_PER_ENTRY = 16  # JSON values per entry ...
VALUES_PER_NAME_BYTE = 2  # ... and a `,` `:` or `[` in path and sourcePath per byte of name
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# What zipfile raises on a damaged archive: a CRC or header mismatch is BadZipFile, a truncated
# stream EOFError, a damaged deflate stream zlib.error, an encrypted entry RuntimeError.
_DAMAGED = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


class _Entry(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)
    path: str
    size: int = Field(ge=0)
    sha256: str  # not checked for shape: one that is not hex simply does not match
    records: int | None = Field(default=None, ge=0)
    source_path: str | None = Field(default=None, alias="sourcePath")
    source_path_bytes: str | None = Field(default=None, alias="sourcePathBytes")


class _Manifest(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)
    format_version: int = Field(alias="formatVersion")
    files: list[_Entry]


def verify_package(package: str | PathLike[str] | IO[bytes]) -> list[str]:
    """The problems found (an empty list means the package verifies)."""
    try:
        archive = zipfile.ZipFile(package)
    except _DAMAGED as exc:
        return [f"not a readable ZIP file: {_printable(exc)}"]
    with archive:
        try:
            return _verify(archive)
        except _DAMAGED as exc:
            return [f"the ZIP file is damaged: {_printable(exc)}"]


def _verify(archive: zipfile.ZipFile) -> list[str]:
    infos = archive.infolist()
    problems = [problem for info in infos for problem in _entry_problems(info)]
    problems += _duplicates(infos)
    problems += _overlaps(infos, archive.start_dir)
    if problems:
        return problems  # not read further: the entries cannot be matched to a manifest safely
    manifest, problems = _manifest(archive, infos)
    if manifest is None:
        return problems
    listed = Counter(entry.path for entry in manifest.files)
    problems += [
        f"{_printable(p)}: listed {n} times in the manifest" for p, n in listed.items() if n > 1
    ]
    directories = {info.filename for info in infos if _is_directory(info)}
    present = {
        info.filename: info
        for info in infos
        if info.filename != MANIFEST and info.filename not in directories
    }
    parents = {path[: i + 1] for path in listed for i, c in enumerate(path) if c == "/"}
    problems += [
        f"{_printable(d)}: a directory in the ZIP that holds nothing the manifest lists"
        for d in sorted(directories - parents)
    ]
    problems += [
        f"{_printable(p)}: in the ZIP but not in the manifest"
        for p in sorted(present.keys() - listed.keys())
    ]
    problems += [
        f"{_printable(p)}: listed but missing" for p in sorted(listed.keys() - present.keys())
    ]
    for entry in sorted(manifest.files, key=lambda entry: entry.path):
        if entry.path in present and listed[entry.path] == 1:
            problems += _check_entry(archive, present[entry.path], entry)
    return problems


def _entry_problems(info: zipfile.ZipInfo) -> list[str]:
    name, problems = _printable(info.filename), []
    if info.orig_filename != info.filename:  # zipfile cut the name at a NUL
        problems.append(
            f"{_printable(info.orig_filename)}: not a safe entry name (a NUL character)"
        )
    elif reason := unsafe(info.filename.removesuffix("/")):  # a directory's name ends in "/"
        problems.append(f"{name}: not a safe entry name ({reason})")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if _is_directory(info):
        if kind not in (0, stat.S_IFDIR):
            problems.append(f"{name}: a directory's name on what is not one (mode {oct(kind)})")
        if info.file_size:
            problems.append(f"{name}: a directory entry with {info.file_size} bytes of data")
    elif kind and kind != stat.S_IFREG:
        what = "a symbolic link" if kind == stat.S_IFLNK else "not a regular file"
        problems.append(f"{name}: {what} (mode {oct(info.external_attr >> 16)})")
    if info.flag_bits & 0x1:
        problems.append(f"{name}: encrypted")
    if info.compress_type not in _METHODS:
        problems.append(f"{name}: compression method {info.compress_type}, not stored or deflated")
    return problems


def _is_directory(info: zipfile.ZipInfo) -> bool:
    """ZipInfo.is_dir, which raises on an empty name (a hostile package may hold one)."""
    return info.filename.endswith("/")


def _duplicates(infos: list[zipfile.ZipInfo]) -> list[str]:
    first: dict[str, str] = {}
    problems = []
    for info in infos:
        name_key = key(info.filename)
        if name_key not in first:
            first[name_key] = info.filename
            continue
        earlier = first[name_key]
        same = "twice" if earlier == info.filename else f"as well as {_printable(earlier)}"
        problems.append(
            f"{_printable(info.filename)}: in the ZIP {same} (one would overwrite the other "
            "when extracted)"
        )
    return problems


def _overlaps(infos: list[zipfile.ZipInfo], end: int) -> list[str]:
    """Entries whose data runs into the next entry: the trick of the ZIP bombs that inflate many
    entries from one deflate stream (no writer makes them, Python 3.12's zipfile refuses them)."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    ends = [info.header_offset for info in ordered[1:]] + [end]
    return [
        f"{_printable(info.filename)}: overlaps the next entry in the ZIP (a ZIP bomb's trick)"
        for info, following in zip(ordered, ends, strict=True)
        if info.header_offset + info.compress_size > following
    ]


def _manifest_limit(infos: list[zipfile.ZipInfo]) -> tuple[int, int]:
    """The most bytes, and JSON values, a manifest for these entries can need."""
    names = [len(info.filename.encode()) for info in infos if info.filename != MANIFEST]
    size = MANIFEST_BASE + len(names) * MANIFEST_PER_ENTRY + sum(names) * MANIFEST_PER_NAME_BYTE
    return size, VALUES_BASE + len(names) * VALUES_PER_ENTRY + sum(names) * VALUES_PER_NAME_BYTE


def _manifest(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]
) -> tuple[_Manifest | None, list[str]]:
    info = next((info for info in infos if info.filename == MANIFEST), None)
    if info is None:
        return None, ["manifest.json is missing"]
    most, most_values = _manifest_limit(infos)
    if info.file_size > most:
        return None, [f"manifest.json: {info.file_size} bytes, more than its entries need"]
    with archive.open(info) as stream:
        data = stream.read(most + 1)
    if len(data) > most:
        return None, [f"manifest.json: more than {most} bytes, more than its entries need"]
    # orjson builds the whole document, up to 30 times its size for `[{},{},...]`. Each value
    # but the first follows a `[`, `,` or `:` (counted in strings too, so this bounds them).
    if data.count(b"[") + data.count(b",") + data.count(b":") >= most_values:
        return None, ["manifest.json: more values than its entries need"]
    try:
        document: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return None, [f"manifest.json is not valid JSON: {_printable(exc)}"]
    version = document.get("formatVersion") if isinstance(document, dict) else None
    if type(version) is not int or version != FORMAT_VERSION:  # True == 1, but is no version
        return None, [f"unknown formatVersion {_printable(repr(version)[:100])}"]
    try:
        return _Manifest.model_validate(document), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        shown = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in errors[:3]
        )
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return None, [f"manifest.json has the wrong shape: {_printable(shown)}{more}"]


def _check_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, entry: _Entry) -> list[str]:
    name = _printable(entry.path)
    if info.file_size != entry.size:
        return [f"{name}: size {info.file_size}, manifest says {entry.size}"]
    digest, size, lines = hashlib.sha256(), 0, 0
    try:
        with archive.open(info) as content:
            while chunk := content.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
    except _DAMAGED as exc:  # a CRC error surfaces as BadZipFile
        return [f"{name}: cannot be read: {_printable(exc)}"]
    problems = []
    if size != entry.size:
        problems.append(f"{name}: size {size}, manifest says {entry.size}")
    if digest.hexdigest() != entry.sha256:
        problems.append(f"{name}: SHA-256 does not match the manifest")
    if entry.records is not None and lines != entry.records:
        problems.append(f"{name}: {lines} records, manifest says {entry.records}")
    return problems


def _printable(value: object) -> str:
    """`value` as text with control, bidi and other unprintable characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))


def check_written(file: IO[bytes], manifest: dict[str, Any]) -> list[str]:
    """The problems of a just-written package (`file`, seekable) against the `manifest` its
    writer returned: its manifest.json must be that manifest, and its central directory must
    list exactly the manifest's entries, each at the manifest's size. Entries' contents are
    not re-read (the writer hashed them as it wrote them)."""
    try:
        archive = zipfile.ZipFile(file)
    except (OSError, zipfile.BadZipFile) as exc:
        return [f"not a readable ZIP file: {exc}"]
    with archive:
        try:
            stored = orjson.loads(archive.read(MANIFEST))
        except KeyError:
            return ["manifest.json is missing"]
        except Exception as exc:  # cut, corrupt or not JSON (zlib, EOF, CRC, decode errors)
            return [f"manifest.json cannot be read: {type(exc).__name__}: {exc}"]
        if stored != manifest:
            return ["manifest.json is not the manifest this attempt wrote"]
        if not _deflate_ends_at_its_size(file, archive.getinfo(MANIFEST)):
            return ["manifest.json's compressed data does not end where its size says"]
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    sizes.pop(MANIFEST, None)
    listed = {entry["path"]: entry["size"] for entry in manifest["files"]}
    if sizes == listed:
        return []
    wrong = sorted(set(sizes.items()) ^ set(listed.items()))
    return [f"the ZIP's entries differ from the manifest's: {wrong[:3]}"]


def _deflate_ends_at_its_size(file: IO[bytes], info: zipfile.ZipInfo) -> bool:
    """Whether `info`'s deflated data ends exactly at its compressed size, holding exactly its
    stated size. zipfile stops at the stated size and checks the CRC, so a damaged end of the
    stream (more data decoded, or an end-of-stream mark lost) can read back the same bytes;
    a stricter reader would refuse that package, so it is not published."""
    if info.compress_type != zipfile.ZIP_DEFLATED:
        return True
    file.seek(info.header_offset + 26)  # the local header's name and extra-field lengths
    name_length, extra_length = (
        int.from_bytes(file.read(2), "little"),
        int.from_bytes(file.read(2), "little"),
    )
    file.seek(name_length + extra_length, 1)
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflate.decompress(file.read(info.compress_size), info.file_size + 1)
    except zlib.error:
        return False
    return inflate.eof and not inflate.unused_data and len(inflated) == info.file_size
