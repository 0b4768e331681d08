"""The documentation points only at what exists: every file a doc or a source comment cites is in
the repository, and docs/architecture.md's module tree names every module, and only those.

A citation is a relative path written as one: a Markdown link's target (resolved from the
linking file), or a path with a directory in README.md, docs/*.md, bench/README.md, or the
docstrings and comments of src/ (`docs/security.md`, `bench/api_throughput.py`,
`tests/web/...`, `web/app.py`); in those of tests/ and bench/, only paths from the root (there
`root/datapolicy.toml` is a variable's file, not a citation). Paths under `docs/`, `bench/`,
`tests/`, `scripts/`, `deploy/` and `src/` are read from the repository's root; any other
(`web/app.py`, `openapi/seed.yml`, `datapolicy/redact.py`) from src/ or a directory inside it.
A path may not leave the repository (`../shared/...`). Not citations: a path in double quotes (a
string value in an example, an HTML attribute), and a path the repository ignores
(`bench/results/`, where the benchmarks write their result files).
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "datapolicy"
ROOTED = ("docs/", "bench/", "tests/", "scripts/", "deploy/", "src/")

# A path with at least one directory: either with a file extension, or (under the repository's
# own top-level directories) any file or directory name. Not part of a longer path or URL.
_PATH = re.compile(
    r"""(?<![\w./\-~$*{<@:])(?<!=")
    (
        (?:\.\./)*(?:[A-Za-z_][\w.\-]*/)+[\w.\-]*\.(?:py|md|toml|ya?ml|lua|sh|mako|html|js|css)
        | (?:bench|tests|scripts|deploy)/[\w.\-/]*[\w\-]
    )
    (?![\w/])""",
    re.VERBOSE,
)
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted(ROOT.glob("docs/*.md"))]


def _python_prose(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every docstring and comment of a Python file: code is not prose."""
    source = path.read_text(encoding="utf-8")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                for offset, line in enumerate(first.value.value.splitlines()):
                    yield first.lineno + offset, line


def _citing_lines() -> Iterator[tuple[Path, int, list[str]]]:
    """(file, line, the paths the line cites) for every line that may cite a file."""
    for path in _markdown_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            yield path, number, list(_citations(line))
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in _python_prose(path):
            yield path, number, list(_citations(line))
    for path in sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]):
        for number, line in _python_prose(path):
            yield path, number, [c for c in _citations(line) if c.startswith((*ROOTED, "../"))]


def _citations(line: str) -> Iterator[str]:
    for match in _PATH.finditer(line):
        start, end = match.span(1)
        if line[start - 1 : start] == '"' and line[end : end + 1] == '"':
            continue  # a quoted string value, not a reference
        yield match.group(1)
    for match in _LINK.finditer(line):
        if ":" not in match.group(1):  # not a URL or mailto:
            yield match.group(1)


_PACKAGE_DIRS = [ROOT / "src", PACKAGE, *(d for d in PACKAGE.rglob("*") if d.is_dir())]


def _exists(cited: str, citing: Path) -> bool:
    candidates = [citing.parent / cited]  # a Markdown link, or `../`: from the citing file
    if not cited.startswith("../"):
        candidates.append(ROOT / cited)
        if not cited.startswith(ROOTED):
            candidates.extend(directory / cited for directory in _PACKAGE_DIRS)
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.is_relative_to(ROOT) and resolved.exists():
            return True
    return False


def _ignored(cited: str) -> bool:
    """Whether git ignores the path: a run's output (bench/results/...), not a repository file."""
    if cited.startswith("../"):
        return False  # outside the repository: git would refuse to say
    checked = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", cited], cwd=ROOT, check=False
    )
    return checked.returncode == 0


def dangling_citations() -> list[str]:
    dangling = []
    for path, number, cited_paths in _citing_lines():
        for cited in cited_paths:
            if not _exists(cited, path) and not _ignored(cited):
                dangling.append(f"{path.relative_to(ROOT)}:{number}: {cited}")
    return dangling


def test_every_cited_file_exists_in_the_repository() -> None:
    """A doc or comment that cites a missing file (or one outside the repository) fails."""
    assert dangling_citations() == []


def test_the_citation_check_sees_a_missing_file_and_a_path_outside() -> None:
    """The check itself: a missing doc, a link out of the repository and a module that is not
    there are dangling; a quoted example value and an existing module are not."""
    cited = set(
        _citations(
            "see docs/missing.md, [notes](../shared/notes.md), web/nowhere.py, "
            '[security](security.md), web/app.py and ["--config", "tests/datapolicy.toml"]'
        )
    )
    assert cited == {
        "docs/missing.md",
        "../shared/notes.md",
        "web/nowhere.py",
        "security.md",
        "web/app.py",
    }
    missing = {path for path in cited if not _exists(path, ROOT / "docs" / "example.md")}
    assert missing == {"docs/missing.md", "../shared/notes.md", "web/nowhere.py"}


def _tree_entries() -> set[str]:
    """The paths docs/architecture.md's module tree names, relative to src/datapolicy: an
    entry's parents are the directories above it, two spaces of indentation a level."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = text.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert tree[0] == "src/datapolicy/"
    entries: set[str] = set()
    parents: list[str] = []
    for line in tree[1:]:
        match = re.match(r"( *)(\S+)", line)
        if match is None or not match.group(2).endswith((".py", "/")):
            continue
        depth = len(match.group(1)) // 2 - 1
        if depth < 0:
            break  # back at the root: the tree's files outside src/datapolicy
        parents = [*parents[:depth], match.group(2).rstrip("/")]
        entries.add("/".join(parents))
    return entries


def _modules() -> set[str]:
    """Every module and package under src/datapolicy, but `__init__.py` (its package is named)
    and the numbered Alembic revisions (the tree names their directory)."""
    modules = set()
    for path in PACKAGE.rglob("*"):
        relative = path.relative_to(PACKAGE).as_posix()
        if "__pycache__" in path.parts or relative.startswith("store/migrations/versions/"):
            continue
        if path.is_dir() or (path.suffix == ".py" and path.name != "__init__.py"):
            modules.add(relative)
    return modules


def test_architecture_names_every_module_and_only_modules() -> None:
    """docs/architecture.md's tree lists each module under src/datapolicy, and nothing else."""
    entries = _tree_entries()
    modules = _modules()
    assert sorted(modules - entries) == [], "modules missing from docs/architecture.md"
    assert sorted(entries - modules) == [], "docs/architecture.md names modules that do not exist"


# `pip install datapolicy[...]` or `'datapolicy[otel]'`: an install from a package index, where
# datapolicy is not (a checkout's `./datapolicy[...]`, `.[otel]` or a wheel's path is fine).
_FROM_AN_INDEX = re.compile(r"""pip install (?:-\S+ )*["']?datapolicy\b""")


def test_no_doc_installs_datapolicy_from_a_package_index() -> None:
    """datapolicy is not on PyPI (issue 19): every install a doc shows is from a checkout or a
    built wheel. `pip install 'datapolicy[otel]'` stood in docs/observability.md and
    docs/configuration.md."""
    docs = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in docs
        for match in _FROM_AN_INDEX.finditer(path.read_text())
    ]
    assert not found
    assert _FROM_AN_INDEX.search("pip install 'datapolicy[otel]'")
    assert not _FROM_AN_INDEX.search('pip install "./datapolicy[testing]"')
