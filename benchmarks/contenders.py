"""The contenders: one FastAPI app, instrumented (or not) by each tracer under test.

Every contender serves the same three routes through the official ``openai`` SDK:

- ``GET /plain``   a non-LLM request (P1)
- ``GET /chat``    one non-streaming chat completion (P2, throughput, P4)
- ``GET /stream``  one streamed chat completion relayed chunk by chunk (P3, relayed)
- ``GET /consume`` one streamed chat completion consumed inside the handler, answered as JSON
                   (P3, consumed: how most apps use a stream, and free of the per-``send`` spans
                   that OTel ASGI adds to a relayed answer)
- ``GET /drain``   one streamed chat completion read as raw bytes and dropped (P5)

and every tracer exports to a no-op exporter that only counts spans, so only the
instrumentation's own cost is measured. This module is imported by the worker process of
each contender; it must not import ``or_middleware`` (or any peer) at import time, since
the peers run in their own virtualenv.
"""

# No "from __future__ import annotations": FastAPI reads the route signatures at runtime.

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# name -> (description, needs the peers virtualenv)
CONTENDERS: dict[str, tuple[str, bool]] = {
    "bare": ("the app alone", False),
    "otel-asgi": ("opentelemetry-instrumentation-asgi, default options", False),
    "otel-asgi-lean": ("opentelemetry-instrumentation-asgi, exclude_spans=receive,send (what ours wraps)", False),
    "or_middleware": ("LLMTracingMiddleware, defaults: privacy on, SPANS=genai (the local store's scope)", False),
    "or_middleware-all": ("LLMTracingMiddleware, a destination taking every span (SPANS=all)", False),
    "or_middleware-content": ("LLMTracingMiddleware, privacy mode off (content captured), SPANS=genai", False),
    "openllmetry": ("OTel ASGI + opentelemetry-instrumentation-openai (OpenLLMetry)", True),
    "otel-openai-v2": ("OTel ASGI + opentelemetry-instrumentation-openai-v2", True),
    "openinference": ("OTel ASGI + openinference-instrumentation-openai", True),
}

# P4: or_middleware with an OTLP destination in a given state (see benchmarks.sinks); each variant's
# sink kind: "healthy" is the same OTLP exporter against a sink that answers at once. "in-process"
# (no sink: the counting exporter, SPANS=genai) was the baseline before; kept for reference.
P4_VARIANTS = ("healthy", "blackhole", "slow", "in-process")
P4_SINKS = {"healthy": "ok", "blackhole": "blackhole", "slow": "slow", "in-process": ""}

CHUNKS_HEADER = "x-fake-chunks"
DELAY_HEADER = "x-fake-chunk-delay-ms"


@dataclass
class Instrumented:
    """What the worker needs from a contender: the ASGI app, a flush, and span counts."""

    app: Any
    flush: Callable[[], None] = lambda: None
    counts: Callable[[], dict[str, int]] = lambda: {}
    extra: dict[str, Any] = field(default_factory=dict)


def build_app(upstream: str) -> Any:
    """The app under test: FastAPI + AsyncOpenAI pointed at the fake upstream's ``/v1``."""
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse, StreamingResponse
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{upstream}/v1", api_key="sk-bench", max_retries=0)
    try:
        # FastAPI >= 0.165 traces itself once a global TracerProvider is set (the OTel contenders
        # set one): switched off, so that every contender runs the very same app.
        app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
    except TypeError:  # an older FastAPI without native telemetry
        app = FastAPI()
    messages = [{"role": "user", "content": "Say hello to the benchmark"}]

    @app.get("/plain")
    async def plain() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/chat")
    async def chat() -> PlainTextResponse:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=64)
        return PlainTextResponse(completion.choices[0].message.content or "")

    async def open_stream(request: Request) -> Any:
        """A streamed chat completion; the fake's chunk count and pace come from the query."""
        headers = {
            CHUNKS_HEADER: request.query_params.get("chunks", "200"),
            DELAY_HEADER: request.query_params.get("delay_ms", "1"),
        }
        return await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        answer = await open_stream(request)

        async def relay() -> Any:
            async for chunk in answer:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content.encode()

        return StreamingResponse(relay(), media_type="text/plain")

    @app.get("/consume")
    async def consume(request: Request) -> dict[str, Any]:
        answer = await open_stream(request)
        parts: list[str] = []
        async for chunk in answer:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return {"text": "".join(parts)}

    @app.get("/drain")
    async def drain(request: Request) -> PlainTextResponse:
        headers = {CHUNKS_HEADER: request.query_params.get("chunks", "1000"), DELAY_HEADER: "0"}
        size = 0
        async with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        ) as response:
            async for data in response.iter_bytes():
                size += len(data)
        return PlainTextResponse(str(size))

    return app


def _counting_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class CountingExporter(SpanExporter):
        """Does nothing with spans but count them by instrumentation scope."""

        def __init__(self) -> None:
            self.counts: dict[str, int] = {}
            self._lock = threading.Lock()

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            with self._lock:
                for span in spans:
                    scope = span.instrumentation_scope.name if span.instrumentation_scope else "?"
                    self.counts[scope] = self.counts.get(scope, 0) + 1
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    return CountingExporter()


def _otel_provider() -> tuple[Any, Any]:
    """A global TracerProvider with a BatchSpanProcessor over the counting exporter (the usual setup)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = _counting_exporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider, exporter


def _otel_asgi(app: Any, provider: Any, *, lean: bool = False) -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    options: dict[str, Any] = {"tracer_provider": provider}
    if lean:
        options["exclude_spans"] = ["receive", "send"]
    return OpenTelemetryMiddleware(app, **options)


def _or_middleware(
    app: Any, upstream: str, *, privacy: bool, spans: str = "genai", variant: str = "healthy", sink: str = ""
) -> Instrumented:
    import or_middleware
    from or_middleware.asgi import LLMTracingMiddleware
    from or_middleware.config import DestinationSettings, OtlpDestination, Settings, register_preset
    from or_middleware.export.destinations import EXPORTER_FACTORIES

    exporter = _counting_exporter()

    class BenchNullDestination(DestinationSettings):
        """A destination whose exporter only counts spans (benchmarks only)."""

        kind = "benchnull"

    register_preset(BenchNullDestination)
    EXPORTER_FACTORIES["benchnull"] = lambda dest: exporter
    if not sink:
        destination: DestinationSettings = BenchNullDestination(privacy_mode=privacy, spans=spans)
    else:
        # A real OTLP/HTTP exporter against a sink (P4: answers at once, never, or late).
        destination = OtlpDestination(endpoint=sink, privacy_mode=privacy, timeout=10.0, spans=spans)
    settings = Settings(
        service_name="bench",
        destinations=[destination],
        llm_hosts=f"openai={upstream}/v1",
    )
    traced = LLMTracingMiddleware(app, settings=settings)

    def flush() -> None:
        if not sink:
            or_middleware.force_flush(10_000)

    def counts() -> dict[str, int]:
        out = dict(exporter.counts)
        for name, stats in or_middleware.stats().items():
            for key, value in stats.items():
                if value:
                    out[f"stats.{name}.{key}"] = value
        return out

    return Instrumented(traced, flush, counts)


def _peer(name: str) -> None:
    if name == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()
    elif name == "otel-openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as V2Instrumentor

        V2Instrumentor().instrument()
    elif name == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor as OIInstrumentor

        OIInstrumentor().instrument()
    else:
        raise ValueError(name)


def instrument(name: str, upstream: str, *, variant: str = "healthy", sink: str = "") -> Instrumented:
    """Build the app for contender ``name``."""
    if name not in CONTENDERS:
        raise SystemExit(f"unknown contender {name!r}; known: {', '.join(CONTENDERS)}")
    if name.startswith("or_middleware"):
        app = build_app(upstream)
        # P4 (a real OTLP destination, blackholed or slow) takes every span: /plain makes spans too.
        spans = "all" if name == "or_middleware-all" or sink else "genai"
        return _or_middleware(app, upstream, privacy=name != "or_middleware-content", spans=spans, variant=variant,
                              sink=sink)
    if name == "bare":
        return Instrumented(build_app(upstream))
    provider, exporter = _otel_provider()
    if CONTENDERS[name][1]:
        _peer(name)  # before the client is built, as the peers' docs say
    app = build_app(upstream)
    traced = _otel_asgi(app, provider, lean=name == "otel-asgi-lean")
    return Instrumented(traced, lambda: provider.force_flush(10_000), lambda: dict(exporter.counts))
