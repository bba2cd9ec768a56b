"""README.md, docs/*.md and examples/env/ never rot: the Python blocks run, the env blocks and env
files are valid configurations, the coverage table names tests that exist, and every relative link
points at a file that exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from or_middleware.config import DestinationSettings, Settings
from tests.support.real_servers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)
EXAMPLE_TESTS = REPO_ROOT / "examples" / "testing_your_app" / "test_llm_app.py"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def blocks(language: str, text: str = README) -> list[str]:
    found = []
    for indent, lang, body in FENCE.findall(text):
        if lang == language:
            found.append("\n".join(line.removeprefix(indent) for line in body.splitlines()))
    return found


def env_of(text: str) -> dict[str, str]:
    """``NAME=value`` lines (env files) or ``export NAME='value'`` lines (shell), as the shell reads them."""
    pairs = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            name, _, value = words[-1].partition("=")
            pairs[name] = value
    return pairs


def known_kinds() -> set[str]:
    kinds, todo = set(), [DestinationSettings]
    while todo:
        cls = todo.pop()
        kinds.add(cls.kind)
        todo += cls.__subclasses__()
    return kinds


def load_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    settings.destination_settings()  # each destination's own variables are validated here
    return settings


def test_the_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "console")
    monkeypatch.syspath_prepend(str(EXAMPLE_TESTS.parent))  # the testing guide imports its llm_app
    code = blocks("python")
    assert len(code) >= 3
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in code:  # in order, in one namespace: later blocks build on earlier ones, as a reader would
        exec(compile(block, "README.md", "exec"), namespace)
    from fastapi import FastAPI
    from flask import Flask

    from or_middleware import LLMTracingWSGIMiddleware

    assert isinstance(namespace["app"], FastAPI)
    assert isinstance(namespace["flask_app"], Flask)
    assert isinstance(namespace["flask_app"].wsgi_app, LLMTracingWSGIMiddleware)


def test_the_testing_guide_shows_a_test_of_the_sample_suite():
    """The README's pytest example is code the sample suite runs (tests/test_testing_kit.py)."""
    [guide] = [b for b in blocks("python") if "capllm" in b]
    example = EXAMPLE_TESTS.read_text()
    assert all(line in example for line in guide.splitlines()), "README's test drifted from the sample suite"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.stem)
def test_the_python_blocks_of_the_docs_run(tmp_path, monkeypatch, page: Path):
    code = blocks("python", page.read_text())
    if not code:
        pytest.skip("no Python block")
    if "django" in "".join(code):
        pytest.importorskip("django")
        import examples.django_app  # noqa: F401  (configures Django, as the wsgi.py block expects a project to)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "console")
    namespace: dict[str, object] = {"__name__": "docs"}
    for block in code:
        exec(compile(block, str(page), "exec"), namespace)


@pytest.mark.parametrize("page", [REPO_ROOT / "README.md", *DOCS], ids=lambda p: p.stem)
def test_relative_links_point_at_files_that_exist(page: Path):
    for target in LINK.findall(page.read_text()):
        if "://" not in target and not target.startswith("mailto:"):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_env_blocks_are_valid_configurations(monkeypatch):
    every = blocks("bash") + [b for page in DOCS for b in blocks("bash", page.read_text())]
    env_blocks = [b for b in every if b.strip() and all(
        line.startswith("export OR_MIDDLEWARE_") for line in b.strip().splitlines())]
    assert env_blocks
    for block in env_blocks:
        with monkeypatch.context() as m:
            settings = load_settings(m, env_of(block))
            assert settings.destination_settings()


@pytest.mark.parametrize("env_file", sorted((REPO_ROOT / "examples" / "env").glob("*.env")), ids=lambda p: p.stem)
def test_the_example_env_files_are_valid_configurations(monkeypatch, env_file: Path):
    env = env_of(env_file.read_text())
    assert all(name.startswith("OR_MIDDLEWARE_") for name in env), "env files configure the middleware only"
    wanted = {d.strip().split("_")[0] for d in env["OR_MIDDLEWARE_DESTINATIONS"].split(",")}
    if not wanted <= known_kinds():
        pytest.skip(f"destination presets {sorted(wanted - known_kinds())} are not in this checkout")
    settings = load_settings(monkeypatch, env)
    assert {d.kind for d in settings.destination_settings()} == wanted


def test_the_coverage_table_names_tests_that_exist():
    section = (REPO_ROOT / "docs" / "clients.md").read_text()
    references = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", section)
    assert len(references) >= 8
    for path, function in references:
        source = REPO_ROOT / path
        assert source.exists(), path
        if function:
            assert re.search(rf"^(async )?def {function}\(", source.read_text(), re.M), f"{path}::{function}"
