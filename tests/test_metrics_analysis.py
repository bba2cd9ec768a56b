"""The analysis stage between our provider and the destinations: once per span, off the request path, contained."""

from __future__ import annotations

import threading

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from or_middleware.analysis import GenerationAnalysis
from or_middleware.config import SecuritySettings
from or_middleware.security import SecurityMonitor
from or_middleware.spans import PROMPT_SHA256
from tests.support.generations import genai_span


class Collected(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.threads: set[str] = set()

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)
        self.threads.add(threading.current_thread().name)


class Exploding(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("a destination's bug")


def test_a_failing_destination_neither_stops_the_analysis_nor_starves_the_others(caplog):
    collected = Collected()
    analysis = GenerationAnalysis([Exploding(), collected], security=SecurityMonitor(SecuritySettings()))
    for n in range(3):
        analysis.on_end(genai_span(request_model=f"m-{n}", user="alice"))
    assert analysis.force_flush(5000)
    assert [s.attributes["gen_ai.request.model"] for s in collected.spans] == ["m-0", "m-1", "m-2"]
    assert collected.threads == {"or_middleware-analysis"}  # handed on from the analysis thread
    assert caplog.text.count("internal error in Exploding.on_end") == 1  # logged once, not per span
    analysis.shutdown()


def test_the_prompt_is_hashed_on_the_analysis_thread_and_never_exported():
    collected = Collected()
    analysis = GenerationAnalysis([collected])  # no metrics, no security: only the hash to add
    span = genai_span(request_model="m")
    prompt = {"messages": [{"role": "user", "content": "SECRET-PROMPT"}]}
    analysis._prompts[span.context.span_id] = prompt  # as end_span hands it to on_end
    analysis.on_end(span)
    analysis._prompts.clear()
    analysis.on_end(genai_span(request_model="no prompt"))
    assert analysis.force_flush(5000)
    hashed, plain = collected.spans
    assert len(hashed.attributes[PROMPT_SHA256]) == 64
    assert "SECRET" not in repr(dict(hashed.attributes)) and not hashed.events
    assert plain.attributes.get(PROMPT_SHA256) is None
    assert hashed.attributes["gen_ai.request.model"] == "m"  # everything else as it was
    analysis.shutdown()


def test_every_destination_gets_spans_in_the_order_they_ended():
    """A GenAI span must reach a destination before its request's server span (whose filter and
    sampling decisions follow the GenAI spans of its trace), however long the analysis takes."""
    from opentelemetry.sdk.trace import TracerProvider

    collected = Collected()
    analysis = GenerationAnalysis([collected], security=SecurityMonitor(SecuritySettings()))
    provider = TracerProvider()
    provider.add_span_processor(analysis)
    server_tracer, genai_tracer = provider.get_tracer("server"), provider.get_tracer("or_middleware")
    expected = []
    for n in range(200):
        with server_tracer.start_as_current_span(f"POST /ask {n}"):
            genai = genai_tracer.start_span(f"chat {n}")
            analysis.end_span(genai, {"messages": [{"role": "user", "content": "x" * 10_000}]})
        expected += [f"chat {n}", f"POST /ask {n}"]
    assert analysis.force_flush(10_000)
    assert [s.name for s in collected.spans] == expected
    provider.shutdown()


def test_no_span_is_stranded_by_racing_producers():
    """Threads appending while the analysis thread drains: every span still goes on, unflushed."""
    import time

    collected = Collected()
    analysis = GenerationAnalysis([collected])

    def produce(start: int) -> None:
        for n in range(start, start + 500):
            analysis.on_end(genai_span(request_model=f"m-{n}"))

    producers = [threading.Thread(target=produce, args=(k * 500,)) for k in range(8)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    deadline = time.monotonic() + 5
    while len(collected.spans) < 4000 and time.monotonic() < deadline:
        time.sleep(0.01)  # no force_flush: the thread must find them by itself
    assert len(collected.spans) == 4000
    analysis.shutdown()
