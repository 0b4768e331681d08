"""File sources read a person's directory without ever following a link: not a link put there
before the export, not one swapped in while it runs, not a symlinked per-person directory; and a
file with several hard links is refused (docs/security.md, "File sources")."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from datapolicy.engine.sources.base import FileItem, SourceError
from datapolicy.engine.sources.files import FileSource
from packages import export_in_memory, file_source

EXPORTS = 40
SECRET = b"bob's secret, never in alice's package\n"


def people(tmp_path: Path) -> Path:
    """/people/alice/{a.txt, sub/b.txt} and /people/bob/secret.txt."""
    root = tmp_path / "people"
    (root / "alice" / "sub").mkdir(parents=True)
    (root / "bob").mkdir()
    (root / "alice" / "a.txt").write_bytes(b"alice's a\n")
    (root / "alice" / "sub" / "b.txt").write_bytes(b"alice's b\n")
    (root / "bob" / "secret.txt").write_bytes(SECRET)
    return root


def package_of(files: FileSource, user_id: str) -> dict[str, bytes]:
    """The user's export: entry name -> content."""
    with zipfile.ZipFile(io.BytesIO(export_in_memory(files, user_id))) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def read(item: FileItem) -> bytes:
    with item.open() as content:
        return content.read()


def test_a_file_swapped_for_a_link_after_listing_is_refused_not_followed(tmp_path: Path):
    root = people(tmp_path)
    items = list(file_source(f"{root}/{{userId}}").parts("alice"))
    assert [item.relative_path for item in items] == ["a.txt", "sub/b.txt"]
    (root / "alice" / "a.txt").unlink()
    (root / "alice" / "a.txt").symlink_to(root / "bob" / "secret.txt")
    with pytest.raises(SourceError, match="changed while it was exported"):
        read(items[0])


def test_a_directory_swapped_for_a_link_after_listing_is_refused_not_followed(tmp_path: Path):
    root = people(tmp_path)
    items = list(file_source(f"{root}/{{userId}}").parts("alice"))
    (root / "alice" / "sub").rename(root / "alice" / "moved")
    (root / "bob" / "b.txt").write_bytes(SECRET)
    (root / "alice" / "sub").symlink_to(root / "bob", target_is_directory=True)
    with pytest.raises(SourceError, match="changed while it was exported"):
        read(items[1])


FLIP = """
import os, sys
target, regular, link, secret = sys.argv[1:]
while True:
    os.symlink(secret, link)
    os.replace(link, target)  # atomic: the name is always there, a file or a link
    with open(regular, "wb") as file:
        file.write(b"alice's a\\n")
    os.replace(regular, target)
"""


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_no_package_holds_the_other_persons_file_while_links_are_swapped_in(tmp_path: Path):
    """Another process flips alice's file between a regular file and a link to bob's, as fast
    as it can, while alice is exported again and again. An export may fail (the file changed
    under it) or carry alice's own content; none may carry bob's. Before files were opened
    without following links, about one export in ten carried it."""
    root = people(tmp_path)
    files = file_source(f"{root}/{{userId}}")
    alice = root / "alice"
    # Copied first, the large file holds open the gap between a.txt's listing and its opening.
    (alice / "0-large.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    paths = [alice / "a.txt", alice / ".regular", alice / ".link", root / "bob" / "secret.txt"]
    flipper = subprocess.Popen([sys.executable, "-c", FLIP, *map(str, paths)])
    outcomes = {"failed": 0, "alice's": 0, "bob's": 0}
    try:
        for _ in range(EXPORTS):
            try:
                package = package_of(files, "alice")
            except SourceError:
                outcomes["failed"] += 1
                continue
            leaked = any(SECRET in content for content in package.values())
            outcomes["bob's" if leaked else "alice's"] += 1
    finally:
        flipper.kill()
        flipper.wait()
    assert outcomes["bob's"] == 0, outcomes


@pytest.mark.parametrize("template", ["{root}/{{userId}}", "{root}/{{userId}}/sub"])
def test_a_symlinked_per_person_directory_is_refused(tmp_path: Path, template: str):
    root = people(tmp_path)
    (root / "bob" / "sub").mkdir()
    (root / "bob" / "sub" / "secret.txt").write_bytes(SECRET)
    (root / "mallory").symlink_to(root / "bob", target_is_directory=True)
    files = file_source(template.format(root=root))
    with pytest.raises(SourceError, match="never read through a link"):
        files.estimate("mallory")
    with pytest.raises(SourceError, match="never read through a link"):
        list(files.parts("mallory"))


def test_the_operators_directories_above_the_person_may_be_links(tmp_path: Path):
    """Only the person's part of the template is read without links: /srv/uploads may well be
    a link to another disk."""
    root = people(tmp_path)
    (tmp_path / "uploads").symlink_to(root, target_is_directory=True)
    package = package_of(file_source(f"{tmp_path}/uploads/{{userId}}"), "alice")
    assert package["files/documents/a.txt"] == b"alice's a\n"
    assert package["files/documents/sub/b.txt"] == b"alice's b\n"


def test_a_file_with_several_hard_links_is_refused(tmp_path: Path):
    root = people(tmp_path)
    os.link(root / "bob" / "secret.txt", root / "alice" / "sub" / "c.txt")
    files = file_source(f"{root}/{{userId}}")
    with pytest.raises(SourceError, match=r"'sub/c.txt' has 2 hard links"):
        files.estimate("alice")
    with pytest.raises(SourceError, match=r"'sub/c.txt' has 2 hard links"):
        package_of(files, "alice")


def test_a_hard_link_made_after_listing_is_refused_when_the_file_is_opened(tmp_path: Path):
    root = people(tmp_path)
    items = list(file_source(f"{root}/{{userId}}").parts("alice"))
    (root / "alice" / "a.txt").unlink()
    os.link(root / "bob" / "secret.txt", root / "alice" / "a.txt")
    with pytest.raises(SourceError, match="2 hard links"):
        read(items[0])


def test_links_fifos_and_sockets_inside_are_skipped_without_blocking(tmp_path: Path):
    root = people(tmp_path)
    (root / "alice" / "to-bob").symlink_to(root / "bob" / "secret.txt")
    (root / "alice" / "to-bobs-dir").symlink_to(root / "bob", target_is_directory=True)
    os.mkfifo(root / "alice" / "pipe")
    package = package_of(file_source(f"{root}/{{userId}}"), "alice")
    assert sorted(name for name in package if name.startswith("files/")) == [
        "files/documents/a.txt",
        "files/documents/sub/b.txt",
    ]


def test_a_person_without_a_directory_has_no_files(tmp_path: Path):
    root = people(tmp_path)
    assert list(file_source(f"{root}/{{userId}}").parts("carol")) == []
    assert list(file_source(f"{tmp_path}/nowhere/{{userId}}").parts("alice")) == []


def test_a_tree_deeper_than_pythons_recursion_limit_is_exported(tmp_path: Path):
    """The walk keeps one open directory per level and no stack frame per level: a tree 1100
    directories deep (past Python's recursion limit of 1000) is listed and copied."""
    depth = 1100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 2 * depth + 200)), hard))
    alice = tmp_path / "people" / "alice"
    alice.mkdir(parents=True)
    levels = [os.open(alice, os.O_RDONLY)]
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=levels[-1])
            levels.append(os.open("d", os.O_RDONLY, dir_fd=levels[-1]))
        bottom = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=levels[-1])
        os.write(bottom, b"at the bottom\n")
        os.close(bottom)
        package = package_of(file_source(f"{tmp_path}/people/{{userId}}"), "alice")
        assert package["files/documents/" + "d/" * depth + "deep.txt"] == b"at the bottom\n"
    finally:  # removed here: shutil.rmtree, which pytest cleans up with, recurses too
        with contextlib.suppress(FileNotFoundError):
            os.unlink("deep.txt", dir_fd=levels[-1])
        for parent, child in reversed(list(itertools.pairwise(levels))):
            os.close(child)
            os.rmdir("d", dir_fd=parent)
        os.close(levels[0])
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
