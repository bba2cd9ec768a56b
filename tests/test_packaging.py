"""Packaging: ``python -m build`` makes a wheel and an sdist that install into a fresh venv with
``pip check`` clean, ship what they should, and register the console script and the
``opentelemetry_instrumentor`` entry point. Uses pip's configured package index (a local one
where there is one), so it runs offline wherever pip itself does."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
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
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_wheel_and_sdist_build_and_install_cleanly(tmp_path: Path) -> None:
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    # build makes the sdist, then the wheel from the unpacked sdist: the sdist is proven buildable
    run(sys.executable, "-m", "build", "--outdir", dist, REPO_ROOT)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")

    with zipfile.ZipFile(wheel) as archive:
        wheel_files = archive.namelist()
    assert "or_middleware/py.typed" in wheel_files
    assert "or_middleware/instrumentor.py" in wheel_files
    assert not [f for f in wheel_files if f.startswith(("tests/", "examples/", "benchmarks/"))]
    with tarfile.open(sdist) as archive:
        sdist_files = {Path(*Path(name).parts[1:]).as_posix() for name in archive.getnames()}
    assert {"pyproject.toml", "README.md", "or_middleware/__init__.py"} <= sdist_files

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel)
    run(python, "-m", "pip", "check")
    installed_version = run(python, "-c", CHECK_INSTALLED, cwd=tmp_path).strip()
    assert wheel.name.startswith(f"or_middleware-{installed_version}-")
    assert "usage" in run(env_dir / "bin" / "or-middleware", "--help").lower()
