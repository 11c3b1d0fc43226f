"""``python -m build`` makes a wheel and an sdist that hold every module, with no setuptools
warning, and the wheel installed into a fresh venv (offline: ``--no-index --no-deps``, the
dependencies read from this venv's site-packages) imports all three packages, including
``llama_index.llms.opengradient``, and gives a working ``opengradient-gateway`` command."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# source folder -> import name, as pyproject.toml's package-dir maps them
PACKAGES = {
    "shared": "opengradient_shared",
    "langchain_opengradient": "langchain_opengradient",
    "llamaindex_opengradient": "llamaindex_opengradient",
    "llama_index_llms_opengradient": "llama_index/llms/opengradient",
}
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def _sources() -> set[str]:
    """Every module and ``py.typed`` of the packages, as paths inside the wheel."""
    found = set()
    for folder, name in PACKAGES.items():
        for path in (ROOT / folder).rglob("*"):
            wanted = path.suffix == ".py" or path.name == "py.typed"
            if wanted and "__pycache__" not in path.parts:
                found.add(f"{name}/{path.relative_to(ROOT / folder).as_posix()}")
    return found


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(output folder, build log) of ``python -m build --no-isolation`` over a copy of the
    sources (the worktree stays clean): an sdist, then a wheel built from that sdist."""
    source, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in PACKAGES:
        shutil.copytree(ROOT / folder, source / folder, ignore=_IGNORE)
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    return out, log


def test_build_prints_no_setuptools_warning(dist: tuple[Path, str]) -> None:
    _, log = dist
    assert "Deprecat" not in log and "SetuptoolsWarning" not in log, log


def test_wheel_holds_every_module_and_the_entry_point(dist: tuple[Path, str]) -> None:
    (wheel,) = dist[0].glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _sources() - names
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"
    assert not {n for n in names if n.startswith(("tests/", "examples/", "benchmarks/"))}
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "opengradient-gateway = opengradient_shared.gateway.__main__:main" in text
    metadata = zipfile.ZipFile(wheel).read(entry_points.replace("entry_points.txt", "METADATA"))
    assert b"License-Expression: MIT" in metadata
    assert b"Provides-Extra: llamaindex" in metadata and b"Provides-Extra: langchain" in metadata


def test_sdist_holds_the_sources_readme_and_pyproject(dist: tuple[Path, str]) -> None:
    (sdist,) = dist[0].glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"README.md", "pyproject.toml"} <= names
    for folder in PACKAGES:
        modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py")}
        assert modules - {m for m in modules if "__pycache__" in m} <= names


def test_wheel_installs_offline_into_a_fresh_venv_and_imports(
    dist: tuple[Path, str], tmp_path: Path
) -> None:
    (wheel,) = dist[0].glob("*.whl")
    home = tmp_path / "venv"
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index"]
    done = subprocess.run(
        [*install, "--no-deps", "--no-cache-dir", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the dependencies (not this project: it is installed here in editable mode, through a
    # finder that a plain path entry does not activate) come from this venv's site-packages
    fresh_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(fresh_site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    check = (
        "import opengradient_shared, langchain_opengradient, llamaindex_opengradient\n"
        "from llama_index.llms.opengradient import OpenGradient\n"
        "from langchain_opengradient import ChatOpenGradient\n"
        "from opengradient_shared import LLM\n"
        "assert OpenGradient is llamaindex_opengradient.OpenGradient\n"
        "for module in (opengradient_shared, langchain_opengradient, llamaindex_opengradient):\n"
        f"    assert module.__file__.startswith({fresh_site!r}), module.__file__\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [str(python), "-c", check], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
    helped = subprocess.run(
        [str(home / "bin" / "opengradient-gateway"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert helped.returncode == 0, helped.stderr
    assert "--protocol" in helped.stdout and "``" not in helped.stdout
