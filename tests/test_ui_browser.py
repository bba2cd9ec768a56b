"""The Activity Explorer in a real browser (Debian's chromium driven by Playwright) over a store filled
through the real middleware: every page loads, the figures are the report's, filters narrow the
list, the XSS canaries stay text, the Live page shows a new generation without a reload.

Screenshots go to $UI_SCREENSHOTS (CI keeps them as artifacts; the directory is git-ignored).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from or_middleware.cli import main
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from or_middleware.ui.app import standalone_app
from tests.support.generations import rows
from tests.support.ui_store import (
    CALLS,
    INJECTION,
    XSS,
    XSS_META_KEY,
    XSS_META_VALUE,
    XSS_MODEL,
    XSS_SESSION,
    XSS_USER,
    fill_store,
)

CHROMIUM = "/usr/bin/chromium"
REQUIRED = os.environ.get("REQUIRE_BROWSER_TEST") == "1"  # set by .ci/run: a missing browser fails there

if not Path(CHROMIUM).exists():
    if REQUIRED:
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} not installed (CI installs it and requires this test)", allow_module_level=True)

from playwright import sync_api  # noqa: E402  (after the chromium check, which explains a missing browser)

SHOTS = Path(os.environ.get("UI_SCREENSHOTS", "ui-screenshots"))


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with serve_asgi(create_fake_upstream()) as url:
        yield url


@pytest.fixture(scope="module")
def store(tmp_path_factory, upstream_url) -> str:
    db = str(tmp_path_factory.mktemp("explorer") / "traces.db")
    fill_store(db, upstream_url)
    return db


@pytest.fixture(scope="module")
def explorer(store) -> Iterator[str]:
    with serve_asgi(standalone_app(store, token=None, host="127.0.0.1")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


class Watched:
    """A page whose dialogs, script errors and failed requests are collected (each one fails the test)."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1360, "height": 900})
        self.problems: list[str] = []
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))

    def open(self, url: str, shot: str | None = None) -> object:
        answer = self.page.goto(url)
        assert answer is not None and answer.status == 200, (url, answer and answer.status)
        self.page.wait_for_load_state("networkidle")
        if shot:
            SHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
        assert self.page.evaluate("window.__xss") is None, f"a canary ran on {url}"
        assert self.problems == [], self.problems
        return self.page


@pytest.fixture
def watched(browser) -> Iterator[Watched]:
    page = Watched(browser)
    yield page
    page.page.close()


def _report(db: str, capsys, *args: str) -> dict:
    assert main(["report", "--db", db, "--since", "24h", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_page_loads_and_the_canaries_stay_text(store, explorer, watched):
    trace_id = rows(store, "SELECT trace_id FROM generations WHERE route = 'POST /agent'")[0]["trace_id"]
    xss_id = rows(store, "SELECT id FROM generations WHERE user_id = ?", [XSS_USER])[0]["id"]
    pages = {
        "overview": "/", "overview-by-user": "/?by=user", "overview-by-metadata": "/?by=metadata.team",
        "models": "/models", "generations": "/generations", "generation-xss": f"/generations/{xss_id}",
        "traces": "/traces", "trace": f"/trace?{urlencode({'id': trace_id})}",
        "sessions": "/sessions", "session-xss": f"/session?{urlencode({'id': XSS_SESSION})}",
        "users": "/users", "user-xss": f"/user?{urlencode({'id': XSS_USER})}",
        "security": "/security", "live": "/live",
    }
    for name, path in pages.items():
        page = watched.open(explorer + path)
        if name.startswith("overview"):  # the charts come after the totals, from /api/series
            page.wait_for_selector("#charts[data-ready]")
            assert page.locator("#charts canvas").count() == 6, name
        if name == "security":
            assert page.locator(".charts canvas").count() == 1
        watched.open(explorer + path, shot=name)
    page = watched.open(explorer + f"/generations/{xss_id}")
    text = page.inner_text("main")
    for canary in (XSS_USER, XSS_MODEL, XSS_SESSION, XSS_META_KEY, XSS_META_VALUE, f"canary {XSS}"):
        assert canary in text  # shown, as text
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0


def test_overview_figures_are_the_reports(store, explorer, watched, capsys):
    report = _report(store, capsys)
    page = watched.open(explorer + "/?since=24h")
    embedded = json.loads(page.locator("#figures").text_content())
    assert embedded["overall"] == report["overall"]
    assert embedded["groups"] == report["groups"]
    overall = report["overall"]
    assert overall["requests"] == len(rows(store)) and overall["errors"] >= 1
    shown = {el.get_attribute("data-figure"): el.inner_text() for el in page.locator("[data-figure]").all()}
    assert shown["requests"] == f"{overall['requests']:,}"
    assert shown["errors"] == f"{overall['errors']:,}"
    assert shown["error_rate"] == f"{100 * overall['error_rate']:.1f}%"
    assert shown["cost_usd"] == f"${overall['cost_usd']:,.6f}"
    assert shown["input_tokens"] == f"{overall['input_tokens']:,}"
    assert shown["output_tokens"] == f"{overall['output_tokens']:,}"
    by_user = _report(store, capsys, "--by", "user")
    page = watched.open(explorer + "/?since=24h&by=user")
    assert json.loads(page.locator("#figures").text_content())["groups"] == by_user["groups"]
    cells = [row.locator("td").first.inner_text() for row in page.locator("#groups tbody tr").all()]
    assert cells == [g["key"] for g in by_user["groups"]]


def test_filters_and_sorting_narrow_the_list(store, explorer, watched):
    page = watched.open(explorer + "/generations")
    assert page.locator("table.grid tbody tr").count() == len(rows(store))
    page.fill("#filters input[name=user]", "bob")
    page.click("#filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    users = {c.inner_text() for c in page.locator("table.grid tbody tr td:nth-child(4)").all()}
    assert users == {"bob"} and page.locator("table.grid tbody tr").count() == 3
    page.fill("#filters input[name=user]", "")
    page.select_option("#filters select[name=status]", "error")
    page.click("#filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    errors = rows(store, "SELECT id FROM generations WHERE status = 'error'")
    assert page.locator("table.grid tbody tr").count() == len(errors) >= 1
    page.select_option("#filters select[name=status]", "")
    page.fill("#filters input[name=meta]", "team=search")
    page.click("#filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("table.grid tbody tr").count() == 2
    page.fill("#filters input[name=meta]", "")
    page.fill("#filters input[name=min_cost]", "0.00003")
    page.click("#filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    costly = rows(store, "SELECT cost_usd FROM generations WHERE cost_usd >= 0.00003 ORDER BY cost_usd DESC")
    assert page.locator("table.grid tbody tr").count() == len(costly) >= 1
    page.click("th a[data-sort=cost]")  # sorted by cost, most expensive first
    page.wait_for_load_state("networkidle")
    shown = [c.inner_text() for c in page.locator("table.grid tbody tr td:nth-child(10)").all()]
    assert shown == [f"${r['cost_usd']:,.6f}" for r in costly]
    # a model on the overview leads to its generations
    page = watched.open(explorer + "/models")
    page.click("#models a:text('anthropic/claude-sonnet-4')")
    page.wait_for_load_state("networkidle")
    models = {c.inner_text().replace(" stream", "") for c in page.locator("table.grid tbody td.model").all()}
    assert models == {"anthropic/claude-sonnet-4"}


def test_security_signal_links_to_its_generation(store, explorer, watched):
    page = watched.open(explorer + "/security?since=24h")
    assert "prompt_injection" in page.inner_text("#by-kind")
    page.click("#signals a:text('#')")
    page.wait_for_load_state("networkidle")
    assert INJECTION in page.inner_text("main")


def test_live_page_shows_a_new_generation_without_reload(store, explorer, watched, upstream_url):
    page = watched.open(explorer + "/live")
    before = page.locator("#live tbody tr").count()
    fill_store(store, upstream_url, [("/chat", {"model": "live/new-model", "prompt": "fresh"}, {"x-user-id": "dan"})])
    page.wait_for_selector("#live tbody tr.fresh td.model:text('live/new-model')", timeout=20_000)
    assert page.locator("#live tbody tr").count() == before + 1
    assert len(CALLS) + 1 <= len(rows(store))
