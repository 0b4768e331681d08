"""Check a package against its manifest: every entry present, sized and hashed as listed, every
record count right, and nothing in the ZIP that the manifest does not list.

`check_written` is the cheap form a worker runs before it publishes: it reads only the ZIP's
central directory and its manifest.json, and compares them with the manifest the writer
returned (which holds the hashes already), so a package that was cut short, lost its manifest,
or is not the one this attempt wrote is never published."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import IO, Any

import orjson

from datapolicy.engine.package import FORMAT_VERSION, MANIFEST

_CHUNK = 1024 * 1024


def verify_package(path: Path) -> list[str]:
    """The problems found (an empty list means the package verifies)."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return [f"not a readable ZIP file: {exc}"]
    with archive:
        try:
            manifest = orjson.loads(archive.read(MANIFEST))
        except KeyError:
            return ["manifest.json is missing"]
        except orjson.JSONDecodeError as exc:
            return [f"manifest.json is not valid JSON: {exc}"]
        if manifest.get("formatVersion") != FORMAT_VERSION:
            return [f"unknown formatVersion {manifest.get('formatVersion')!r}"]
        problems: list[str] = []
        listed = {entry["path"]: entry for entry in manifest.get("files", [])}
        present = set(archive.namelist()) - {MANIFEST}
        problems += [
            f"{p}: in the ZIP but not in the manifest" for p in sorted(present - listed.keys())
        ]
        problems += [f"{p}: listed but missing" for p in sorted(listed.keys() - present)]
        for path_in_zip in sorted(listed.keys() & present):
            problems += _check_entry(archive, listed[path_in_zip])
        return problems


def _check_entry(archive: zipfile.ZipFile, entry: dict) -> list[str]:
    digest, size, lines = hashlib.sha256(), 0, 0
    try:
        with archive.open(entry["path"]) as content:
            while chunk := content.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
    except (zipfile.BadZipFile, OSError) as exc:  # a CRC error surfaces as BadZipFile
        return [f"{entry['path']}: cannot be read: {exc}"]
    problems = []
    if size != entry.get("size"):
        problems.append(f"{entry['path']}: size {size}, manifest says {entry.get('size')}")
    if digest.hexdigest() != entry.get("sha256"):
        problems.append(f"{entry['path']}: SHA-256 does not match the manifest")
    if "records" in entry and lines != entry["records"]:
        problems.append(f"{entry['path']}: {lines} records, manifest says {entry['records']}")
    return problems


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
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    sizes.pop(MANIFEST, None)
    listed = {entry["path"]: entry["size"] for entry in manifest["files"]}
    if sizes == listed:
        return []
    wrong = sorted(set(sizes.items()) ^ set(listed.items()))
    return [f"the ZIP's entries differ from the manifest's: {wrong[:3]}"]
