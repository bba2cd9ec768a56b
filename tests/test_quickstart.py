"""README's quickstart, followed literally in a fresh virtualenv, as a new user would: build the
wheel, install it with the demo extra (and openai, which the example app uses) from the package
index, write README's ``app.py`` into an empty directory elsewhere, start ``or-middleware
fake-upstream`` and export what it prints, run the app under uvicorn, make the call, and read
``or-middleware report``. Then the sample test suite runs in that venv with the pytest plugin
loaded through its entry point (nothing configured).

Slow (a wheel build and a venv install: about a minute or two); run by the suite like test_packaging."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.real_servers import REPO_ROOT, free_port, wait_until_serving

README = (REPO_ROOT / "README.md").read_text()


def run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=900)
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def readme_block(first_line: str) -> str:
    for body in re.findall(r"^```python\n(.*?)^```", README, re.S | re.M):
        if body.startswith(first_line):
            return body
    raise AssertionError(f"README has no python block starting {first_line!r}")


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """A user's shell: the venv first on PATH, none of this checkout on PYTHONPATH, no settings of ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OR_MIDDLEWARE_", "OTEL_", "PYTHON", "VIRTUAL_ENV", "PYTEST_"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


@contextlib.contextmanager
def background(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # uvicorn's graceful shutdown flushes the exporters
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)


@pytest.fixture(scope="module")
def venv() -> Iterator[Path]:
    pytest.importorskip("build")
    # its own directory, not pytest's numbered ones: another pytest session may prune those meanwhile
    home = Path(tempfile.mkdtemp(prefix="or-middleware-quickstart-"))
    try:
        run(sys.executable, "-m", "build", "--wheel", "--outdir", home / "dist", REPO_ROOT)  # python -m build --wheel
        [wheel] = (home / "dist").glob("or_middleware-*.whl")
        where = home / "venv"
        run(sys.executable, "-m", "venv", where)
        # README: pip install "$(ls .../dist/or_middleware-*.whl)[demo]", plus the app's own openai and,
        # for the testing guide, pytest
        run(where / "bin" / "pip", "install", "--quiet", "--no-compile", f"{wheel}[demo]", "openai", "pytest",
            env=clean_env(where))  # no PYTHONPATH: pip must not see this checkout as installed already
        yield where
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_quickstart_gives_a_first_trace_and_a_report(venv: Path, tmp_path: Path) -> None:
    project = tmp_path / "myapp"  # somewhere else entirely, as a user's own project
    project.mkdir()
    (project / "app.py").write_text(readme_block("# app.py"))
    env = clean_env(venv)
    fake_port, app_port = free_port(), free_port()

    with background([str(venv / "bin" / "or-middleware"), "fake-upstream", "--port", str(fake_port)], project, env,
                    tmp_path / "fake.log"):
        wait_until_serving(f"http://127.0.0.1:{fake_port}")
        printed = (tmp_path / "fake.log").read_text()
        exports = dict(line.removeprefix("export ").split("=", 1) for line in printed.splitlines()
                       if line.startswith("export "))
        assert exports == {"OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/api/v1",
                           "OR_MIDDLEWARE_LLM_HOSTS": f"openrouter=http://127.0.0.1:{fake_port}/api/v1"}
        app_env = {**env, **exports}
        uvicorn = [str(venv / "bin" / "uvicorn"), "app:app", "--port", str(app_port)]
        with background(uvicorn, project, app_env, tmp_path / "app.log"):
            url = f"http://127.0.0.1:{app_port}"
            wait_until_serving(url)
            answer = httpx.get(f"{url}/ask", params={"q": "hello"},
                               headers={"x-user-id": "alice", "x-session-id": "s1"}, timeout=60)
            assert answer.json() == {"answer": "Echo: hello"}
    app_log = (tmp_path / "app.log").read_text()
    store = project / "or_traces.db"
    assert f"local -> {store} (privacy on)" in app_log  # the start-up line says where the store is

    report = run(venv / "bin" / "or-middleware", "report", cwd=project, env=env)
    # the title wraps between words when the store's path is long for the terminal (COLUMNS): join it
    assert f"{store}: 1 calls since" in " ".join(report.split())
    assert re.search(r"^openai/gpt-4o-mini\s+1\s+0\.0%", report, re.M), report
    assert re.search(r"^alice\s+1\s", report, re.M), report  # top spenders
    by_session = subprocess.run([venv / "bin" / "or-middleware", "report", "--by", "session", "--format", "csv"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120).stdout
    assert "\ns1," in by_session


def test_the_testing_guide_runs_with_the_plugin_from_its_entry_point(venv: Path, tmp_path: Path) -> None:
    suite = tmp_path / "testing_your_app"
    shutil.copytree(REPO_ROOT / "examples" / "testing_your_app", suite,
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([venv / "bin" / "python", "-m", "pytest", "-p", "no:cacheprovider", str(suite)],
                          cwd=tmp_path, env=clean_env(venv), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout
    assert re.search(r"^plugins:.*or[-_]middleware", done.stdout, re.M), done.stdout[:2000]  # loaded by itself
