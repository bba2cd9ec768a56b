"""The console destination: one tree per request whatever the batching (spans exported one per
batch, SDK retries, a call after the response), held spans bounded in time and number, and
content printed readably when privacy mode is off. Driven through a real uvicorn and the openai SDK."""

from __future__ import annotations

import io
import re

import httpx
import openai
import pytest
from fastapi import BackgroundTasks, FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import ConsoleDestination
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.console import ConsoleTreeExporter
from or_middleware.export.console_hold import HeldTraces
from or_middleware.export.sinks import ExporterSink
from or_middleware.export.stats import PipelineStats

HEADER = re.compile(r"^trace ([0-9a-f]{32})(.*)$", re.M)


def traced_app(llm_base: str, privacy_mode: bool = True) -> tuple[LLMTracingMiddleware, io.StringIO]:
    """A FastAPI app whose console destination exports one span per batch, every 10 ms."""
    app = FastAPI()
    client = openai.OpenAI(base_url=llm_base, api_key="sk-or-v1-test", max_retries=2,
                           default_headers={"x-fake-retry-after": "0"})

    def ask(model: str, text: str = "hello there") -> str:
        try:
            answer = client.chat.completions.create(model=model, messages=[
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": text}])
        except openai.APIStatusError as exc:
            return f"failed {exc.status_code}"
        return answer.choices[0].message.content or ""

    @app.get("/two")
    def two() -> dict[str, str]:
        return {"a": ask("openai/gpt-4o-mini"), "b": ask("anthropic/claude-sonnet-4.5")}

    @app.get("/retried")
    def retried() -> dict[str, str]:
        return {"a": ask("fake/error_429")}  # the SDK tries 3 times: three GenAI spans

    @app.get("/later")
    def later(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(ask, "openai/gpt-4o-mini", "after the response")
        return {"a": "queued"}

    @app.get("/long")
    def long() -> dict[str, str]:
        return {"a": ask("openai/gpt-4o-mini", "word " * 500)}

    settings = Settings(
        destinations=[ConsoleDestination(schedule_delay_ms=10, privacy_mode=privacy_mode)],
        llm_hosts=f"openrouter={llm_base}",
    )
    traced = LLMTracingMiddleware(app, settings=settings)
    [pipeline] = traced.runtime.pipelines
    pipeline._max_batch_size = 1  # force the smallest batches: every span is its own export
    out = io.StringIO()
    pipeline.sink.exporter._out = out
    return traced, out


def trees(text: str) -> list[list[str]]:
    """The printed blocks, each: its header's suffix, then its lines."""
    blocks = []
    matches = list(HEADER.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        blocks.append([match.group(2), *text[match.end():end].strip("\n").splitlines()])
    return blocks


@pytest.fixture
def upstream():
    with serve_asgi(create_fake_upstream()) as url:
        yield f"{url}/api/v1"


def test_one_tree_per_request_with_one_span_per_batch_and_sdk_retries(upstream):
    traced, out = traced_app(upstream)
    with serve_asgi(traced) as url:
        assert httpx.get(f"{url}/two", timeout=30).status_code == 200
        assert httpx.get(f"{url}/retried", timeout=30).json() == {"a": "failed 429"}
        traced.runtime.force_flush()
    blocks = trees(out.getvalue())
    assert len(blocks) == 2, out.getvalue()  # no GenAI span printed as its own "trace" block
    two, retried = blocks
    assert two[0] == "" and two[1].startswith("  GET /two [SERVER]")
    assert [line.split(" [")[0].strip() for line in two[2:]] == [
        "chat openai/gpt-4o-mini", "chat anthropic/claude-sonnet-4.5"]
    assert all(line.startswith("    chat ") for line in two[2:])  # children of the server span
    assert retried[1].startswith("  GET /retried [SERVER]")
    assert len(retried[2:]) == 3 and all(line.startswith("    chat fake/error_429 [CLIENT]") for line in retried[2:])
    assert all("error 429" in line for line in retried[2:])


def test_a_call_after_the_response_is_printed_as_a_continuation(upstream):
    traced, out = traced_app(upstream)
    with serve_asgi(traced) as url:
        assert httpx.get(f"{url}/later", timeout=30).status_code == 200
        traced.runtime.force_flush()
    blocks = trees(out.getvalue())
    assert blocks[0][1].startswith("  GET /later [SERVER]")
    assert len(blocks) == 2 and blocks[1][0] == " (continued: after the response)", out.getvalue()
    assert blocks[1][1].startswith("  chat openai/gpt-4o-mini [CLIENT]")


def test_privacy_off_prints_the_content_on_lines_cut_to_the_terminal(upstream, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    traced, out = traced_app(upstream, privacy_mode=False)
    with serve_asgi(traced) as url:
        assert httpx.get(f"{url}/long", timeout=30).status_code == 200
        traced.runtime.force_flush()
    [block] = trees(out.getvalue())
    content = [line for line in block if line.startswith("        ")]
    assert content[0].strip() == "system system: You are terse."
    assert content[1].strip().startswith("input user: word word")
    assert content[1].endswith(" chars)") and "… (+" in content[1]  # 2500 characters cut, with the count
    assert content[2].strip().startswith("output assistant: Echo: word word")
    assert all(len(line) <= 100 + len("… (+9999 chars)") for line in content)


def test_privacy_on_prints_no_content(upstream):
    traced, out = traced_app(upstream)
    with serve_asgi(traced) as url:
        assert httpx.get(f"{url}/long", timeout=30).status_code == 200
        traced.runtime.force_flush()
    assert "word" not in out.getvalue() and "terse" not in out.getvalue()


# -- the holding rules, on spans made by hand (time is a fake clock) -------------------------


def span(trace_id: int, span_id: int, parent: int | None, kind: SpanKind = SpanKind.CLIENT) -> ReadableSpan:
    context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))
    parent_context = SpanContext(trace_id, parent, is_remote=False) if parent else None
    return ReadableSpan(name=f"s{span_id}", context=context, parent=parent_context, kind=kind,
                        start_time=span_id, end_time=span_id + 1)


def test_a_trace_whose_root_never_comes_is_released_after_the_hold():
    now = [0.0]
    held = HeldTraces(hold_s=15, clock=lambda: now[0])
    assert held.add([span(1, 2, parent=1)]) == []  # parent 1 (the app's own server span) never comes
    assert held.due_in() == 15
    now[0] = 14.9
    assert held.expired() == []
    now[0] = 15.0
    [group] = held.expired()
    assert group.reason == "partial" and [s.context.span_id for s in group.spans] == [2]
    assert held.due_in() is None and held.held_spans == 0


def test_held_spans_are_bounded_in_number():
    held = HeldTraces(hold_s=1000, max_spans=100)
    released = []
    for trace in range(1, 1001):
        released += held.add([span(trace, 10, parent=9), span(trace, 11, parent=9)])
        assert held.held_spans <= 100
    assert len(released) == 1000 - 50 and all(g.reason == "partial" for g in released)
    assert [g.trace_id for g in released[:3]] == [1, 2, 3]  # the oldest go first


def test_the_pipeline_is_told_when_a_held_trace_is_due():
    """The sink passes the exporter's due time to the pipeline, which wakes and ticks for it."""
    now = [0.0]
    exporter = ConsoleTreeExporter(out := io.StringIO(), hold_s=15)
    exporter._held._clock = lambda: now[0]
    sink = ExporterSink(exporter, PipelineStats())
    sink.deliver([span(1, 2, parent=1)])
    assert out.getvalue() == "" and sink.due_in() == 15
    now[0] = 15
    sink.tick()
    assert "(partial: its request span was not seen)" in out.getvalue() and sink.due_in() is None
    sink.deliver([span(3, 4, parent=1)])
    sink.close()  # shutdown prints what is still held
    assert f"trace {3:032x}" in out.getvalue()


def test_escape_sequences_from_clients_are_shown_not_obeyed():
    """A model name or answer holding terminal escapes (set by a client) cannot act on the reader's terminal."""
    evil = span(1, 2, parent=None)
    evil._name = "chat \x1b]0;pwned\x07\x1b[2J"
    evil._attributes = {"gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", '
                                                  '"content": "hi\\u001b[31m red\\u009b"}]}]'}
    exporter = ConsoleTreeExporter(out := io.StringIO())
    exporter.export([evil])
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "chat \\x1b]0;pwned\\x07\\x1b[2J" in text and "hi\\x1b[31m red\\x9b" in text
