"""OTEL_SEMCONV_STABILITY_OPT_IN, as the OpenTelemetry GenAI instrumentations honour it: today's
names by default; ``gen_ai_latest_experimental`` switches span attributes and metrics to the
names of semantic-conventions-genai; ``gen_ai_latest_experimental/dup`` emits both. A real app's
calls (plain, streamed, failed) through uvicorn to one OTLP receiver of traces and metrics."""

from __future__ import annotations

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.demo.serving import serve_asgi
from or_middleware.semconv_mode import CACHE_WRITE_INPUT_TOKENS, GenAISemconv, genai_semconv
from tests.apps import fastapi_app
from tests.conftest import make_settings
from tests.test_metrics import MODEL, make_calls, metrics_receiver, otlp_with_metrics  # noqa: F401 (fixture)

CACHE_CREATION = gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
LATEST_METRICS = ("gen_ai.client.inference.duration", "gen_ai.client.inference.time_to_first_chunk",
                  "gen_ai.client.inference.time_per_output_chunk", "gen_ai.client.inference.usage.input_tokens",
                  "gen_ai.client.inference.usage.output_tokens", "gen_ai.client.inference.operation.input_tokens")
CURRENT_METRICS = ("gen_ai.client.token.usage", "gen_ai.client.operation.duration",
                   "gen_ai.client.operation.time_to_first_chunk", "gen_ai.client.operation.time_per_output_chunk")


@pytest.mark.parametrize(("value", "mode"), [
    (None, GenAISemconv(current=True, latest=False)),
    ("http", GenAISemconv(current=True, latest=False)),
    ("gen_ai_latest_experimental", GenAISemconv(current=False, latest=True)),
    ("http, gen_ai_latest_experimental ", GenAISemconv(current=False, latest=True)),
    ("gen_ai_latest_experimental/dup", GenAISemconv(current=True, latest=True)),
    ("gen_ai_latest_experimental,gen_ai_latest_experimental/dup", GenAISemconv(current=True, latest=True)),
])
def test_the_variable_is_read_like_the_instrumentations_read_it(value, mode):
    assert genai_semconv({} if value is None else {"OTEL_SEMCONV_STABILITY_OPT_IN": value}) == mode


def run(upstream, receiver) -> None:
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp_with_metrics(receiver)))
    with serve_asgi(app) as url:
        make_calls(url)
        assert or_middleware.force_flush()


@pytest.mark.parametrize("opt_in", [None, "gen_ai_latest_experimental", "gen_ai_latest_experimental/dup"])
def test_span_attributes_and_metrics_follow_the_opt_in(upstream, metrics_receiver, monkeypatch, opt_in):  # noqa: F811
    if opt_in:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    run(upstream, metrics_receiver)
    mode = genai_semconv()
    spans = metrics_receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=4)
    for span in spans:
        if gen_ai.GEN_AI_USAGE_INPUT_TOKENS in span.attributes:
            assert (CACHE_CREATION in span.attributes) == mode.current, span.attributes
            assert (CACHE_WRITE_INPUT_TOKENS in span.attributes) == mode.latest, span.attributes
    for name in LATEST_METRICS if mode.latest else CURRENT_METRICS:
        metrics_receiver.wait_for_metric(name)
    names = {m.name for export in metrics_receiver.metric_exports for m in export}
    if not mode.latest:
        assert not any(name.startswith("gen_ai.client.inference.") for name in names)
        return
    if not mode.current:
        assert not set(CURRENT_METRICS) & names
    usage = metrics_receiver.wait_for_metric("gen_ai.client.inference.usage.input_tokens")
    assert (usage.kind, usage.unit, usage.monotonic) == ("sum", "{token}", True)
    # fake upstream: a token is a word (2 + 4 + 3 in); the failed call counts 0 under "unknown"
    assert sum(p.value for p in usage.points_where(gen_ai__request__model=MODEL)) == 9
    assert {p.attributes["gen_ai.token.modality"] for p in usage.points} == {"unknown"}
    per_chunk = metrics_receiver.wait_for_metric("gen_ai.client.inference.time_per_output_chunk")
    [point] = per_chunk.points
    assert point.count == 1 and point.sum >= 0  # one streamed call, recorded once with its mean interval
    duration = metrics_receiver.wait_for_metric("gen_ai.client.inference.duration")
    assert sum(p.count for p in duration.points) == 4
    assert [p for p in duration.points if p.attributes.get("error.type") == "429"]
