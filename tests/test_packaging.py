"""Packaging: ``python -m build`` makes a wheel and an sdist that install into fresh venvs with
``pip check`` clean, ship what they should, and register the console script and the
``opentelemetry_instrumentor`` entry point. Uses pip's configured package index (a local one
where there is one), so it runs offline wherever pip itself does."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.support.real_servers import REPO_ROOT

CHECK_INSTALLED = """
from importlib.metadata import entry_points, version
import or_middleware
from or_middleware import LLMTracingMiddleware, LLMTracingWSGIMiddleware, Settings
from or_middleware.instrumentor import LLMTracingInstrumentor
[ep] = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "or_middleware"]
assert ep.load() is LLMTracingInstrumentor
assert "site-packages" in or_middleware.__file__, or_middleware.__file__
print(version("or-middleware"))
"""


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    # A fresh venv sees only what it installed: no PYTHONPATH (a work tree's checkout) leaks in.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=600, env=env)
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("build")
    dist = tmp_path_factory.mktemp("dist")
    # build makes the sdist, then the wheel from the unpacked sdist: the sdist is proven buildable
    run(sys.executable, "-m", "build", "--outdir", dist, REPO_ROOT)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    return wheel, sdist


def install_in_fresh_venv(python: str, wheel: Path, where: Path) -> Path:
    env_dir = where / "venv"
    run(python, "-m", "venv", env_dir)
    env_python = env_dir / "bin" / "python"
    run(env_python, "-m", "pip", "install", "--quiet", "--no-compile", wheel)  # no .pyc: half the time
    run(env_python, "-m", "pip", "check")
    return env_python


def test_wheel_and_sdist_build_and_install_cleanly(built: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, sdist = built
    with zipfile.ZipFile(wheel) as archive:
        wheel_files = archive.namelist()
    assert "or_middleware/py.typed" in wheel_files
    assert "or_middleware/instrumentor.py" in wheel_files
    # the Activity Explorer works offline from the wheel: its chart library (with its license) and templates
    assert {"or_middleware/ui/static/uPlot.iife.min.js", "or_middleware/ui/static/uPlot.LICENSE.txt",
            "or_middleware/ui/static/explorer.js", "or_middleware/ui/templates/base.html"} <= set(wheel_files)
    assert not [f for f in wheel_files if f.startswith(("tests/", "examples/", "benchmarks/"))]
    with tarfile.open(sdist) as archive:
        sdist_files = {Path(*Path(name).parts[1:]).as_posix() for name in archive.getnames()}
    assert {"pyproject.toml", "README.md", "or_middleware/__init__.py"} <= sdist_files

    # a fresh venv for each end of the supported range (3.11 runs the tests; 3.13 when this machine
    # has it), in parallel; 3.12 lies between them and is left out to keep the suite short
    pythons = {"3.11": sys.executable} | {v: p for v in ("3.13",) if (p := find_python(v))}

    def install(version: str) -> tuple[str, Path]:
        where = tmp_path / version
        where.mkdir()
        return version, install_in_fresh_venv(pythons[version], wheel, where)

    with concurrent.futures.ThreadPoolExecutor(len(pythons)) as pool:
        installed = dict(pool.map(install, pythons))
    for python in installed.values():
        installed_version = run(python, "-c", CHECK_INSTALLED, cwd=tmp_path).strip()
        assert wheel.name.startswith(f"or_middleware-{installed_version}-")
    assert "usage" in run(installed["3.11"].parent / "or-middleware", "--help").lower()
    missing = {"3.13"} - installed.keys()
    if missing:
        pytest.skip(f"installed and checked on {sorted(installed)}; no python {sorted(missing)} here")


def find_python(version: str) -> str | None:
    """``pythonX.Y`` on PATH, or a pyenv build of it (pyenv's shim refuses versions not selected)."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    return None
