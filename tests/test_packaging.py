"""The wheel that `python -m build` makes from a checkout is the whole service: every file of
the package (templates, the OpenAPI description, the console, the migrations), the extras that
docs/testing-with-datapolicy.md installs, and a `datapolicy` command that runs from it alone.
The package is not on PyPI, so this wheel (or the checkout itself) is how it is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from conftest import wait_for
from datapolicy.testing.server import bound_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e  # builds in an isolated environment, installs into a new one


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as the docs say, from a copy of the tracked files only (a build writes
    `build/` and `*.egg-info` beside its sources: not into the checkout under test)."""
    source = tmp_path_factory.mktemp("checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        path = Path(name.decode())
        if (ROOT / path).is_file():
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, source / path)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)],
        capture_output=True,
        check=True,
        timeout=600,
    )
    (built,) = out.glob("datapolicy-*.whl")
    return built


def test_the_wheel_holds_every_file_of_the_package(wheel: Path):
    tracked = subprocess.run(
        ["git", "ls-files", "src/datapolicy"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [path for path in tracked if path.removeprefix("src/") not in names]
    assert not missing, f"not in the wheel: {missing}"


def test_the_wheel_declares_the_extras_of_pyproject(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = (name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(metadata).decode())
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = declared["optional-dependencies"]
    assert set(message.get_all("Provides-Extra") or ()) == set(extras)
    for extra, requirements in extras.items():
        in_wheel = {
            Requirement(line).name
            for line in message.get_all("Requires-Dist") or ()
            if Requirement(line).marker is not None
            and Requirement(line).marker.evaluate({"extra": extra})
        }
        assert {Requirement(line).name for line in requirements} <= in_wheel, extra


def test_the_installed_wheel_runs_from_its_own_files(wheel: Path, tmp_path: Path):
    """Installed into a new environment (its dependencies borrowed from this one's
    site-packages, so nothing is downloaded), the command starts and the package's data files
    are read from the installed copy, not from this checkout; `serve --demo` (the README's
    first command: migrations, demo data, the console) serves from it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # Dependencies: this environment's site-packages, after the new one's own.
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    help_text = subprocess.run(
        [str(venv / "bin" / "datapolicy"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert "serve" in help_text
    probe = (
        "import datapolicy, importlib.resources as r; print(datapolicy.__file__); "
        "t = r.files('datapolicy'); "
        "print(all((t / p).is_file() for p in ('engine/templates/report.html', "
        "'web/routes/openapi/seed.yml', 'web/server_root/console/index.html', 'py.typed')))"
    )
    where, complete = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.split()
    assert Path(where).is_relative_to(venv)
    assert complete == "True"
    _serves_the_demo(venv / "bin" / "datapolicy", tmp_path)


def _serves_the_demo(command: Path, cwd: Path) -> None:
    """`datapolicy serve --demo` from the installed copy answers /v1.0/users (the store
    migrated, the demo shop generated) and /console/ (its files packaged)."""
    log = cwd / "serve.log"  # a file, not a pipe: a full pipe would stall the service
    with log.open("w") as sink:
        serving = subprocess.Popen(
            [str(command), "serve", "--demo", "--port", "0", "--data-dir", str(cwd / "data")],
            cwd=cwd,
            stdout=sink,
            stderr=sink,
        )
    data = str(cwd / "data")

    def answers(path: str, token: str = "") -> httpx.Response | None:
        port = bound_port(log)
        if port is None:  # not listening yet
            return None
        try:
            return httpx.get(
                f"http://127.0.0.1:{port}{path}",
                headers={"Authorization": f"Bearer {token}"} if token else {},
            )
        except httpx.TransportError:
            return None

    try:
        wait_for("the service", lambda: answers("/healthz"), timeout=120, logs=log.read_text)
        mint = [str(command), "token", "--permission", "User.Read.All", "--data-dir", data]
        token = subprocess.run(mint, capture_output=True, text=True, check=True, cwd=cwd).stdout
        users = answers("/v1.0/users", token.strip())
        assert users is not None
        assert users.status_code == 200, users.text
        assert users.json()["value"]
        console = answers("/console/")
        assert console is not None
        assert console.status_code == 200
    finally:
        serving.terminate()
        serving.wait(timeout=30)
    assert serving.returncode == 0, log.read_text()
