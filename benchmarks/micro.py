"""In-process cost of or_middleware's LLM-call path, without sockets, servers or the SDK.

    .venv/bin/python -m benchmarks.micro            # µs of CPU per call, traced vs untraced
    .venv/bin/python -m benchmarks.micro --profile  # + the top functions (cProfile) of the traced path
    .venv/bin/python -m benchmarks.micro --ablate   # + what each piece costs (each switched off in turn)

An ``httpx2.AsyncClient`` with a ``MockTransport`` answering the fake upstream's bytes (one
non-streaming chat completion; one stream of 200 chunks) is driven inside a request identity,
with the hook installed and a counting destination, then with the hook uninstalled. The
difference is exactly what or_middleware adds to an LLM call (detection, request parse, span
start, response observation, attributes, pricing, span end, queueing; export thread included).
The numbers are far less noisy than the end-to-end benchmark, so optimisations are judged here
first and confirmed end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import time
from typing import Any

MESSAGES = [{"role": "user", "content": "Say hello to the benchmark"}]
HOST = "http://127.0.0.1:9/v1"


def _fake_bodies(chunks: int) -> tuple[bytes, list[bytes]]:
    from or_middleware.demo.fake_upstream import FakeUpstream, _json_body, _stream_plan, encode_event

    fake = FakeUpstream()
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 64}
    reply = fake.plan("openai", "chat", body, {}, set())
    whole = json.dumps(_json_body(reply, "chat", body)).encode()
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    reply = fake.plan("openai", "chat", stream_body, {"x-fake-chunks": str(chunks)}, set())
    plan = _stream_plan(reply, "chat", stream_body)
    frames = [encode_event(e) for e in [*plan.head, *plan.body, *plan.tail]]
    return whole, frames


def _client(whole: bytes, frames: list[bytes]) -> Any:
    import httpx2

    class Frames(httpx2.AsyncByteStream):
        async def __aiter__(self) -> Any:
            for frame in frames:
                yield frame

    def handler(request: Any) -> Any:
        if b'"stream":true' in request.content:
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Frames())
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=whole)

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


async def _calls(client: Any, n: int, stream: bool) -> None:
    payload: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 64}
    if stream:
        payload |= {"stream": True, "stream_options": {"include_usage": True}}
    for _ in range(n):
        if stream:
            async with client.stream("POST", f"{HOST}/chat/completions", json=payload) as response:
                async for _chunk in response.aiter_bytes():
                    pass
        else:
            response = await client.post(f"{HOST}/chat/completions", json=payload)
            response.read()


# Pieces of the traced path that can be switched off to see what each costs (never in production).
ABLATIONS = ("pricing", "traceparent", "attributes", "queueing")


def ablate(piece: str) -> Any:
    """Switch one piece off; returns a function that switches it back on."""
    from or_middleware.capture import call
    from or_middleware.export.pipeline import DestinationPipeline

    if piece == "pricing":
        saved, call._price = call._price, lambda record: None
        return lambda: setattr(call, "_price", saved)
    if piece == "traceparent":
        saved = call.LLMCall.wants_traceparent
        call.LLMCall.wants_traceparent = lambda self: False  # type: ignore[method-assign]
        return lambda: setattr(call.LLMCall, "wants_traceparent", saved)
    if piece == "attributes":
        saved = call.contract.record_attributes
        call.contract.record_attributes = lambda record, max_bytes: {}  # type: ignore[assignment]
        return lambda: setattr(call.contract, "record_attributes", saved)
    if piece == "queueing":
        saved = DestinationPipeline.on_end
        DestinationPipeline.on_end = lambda self, span: None  # type: ignore[method-assign]
        return lambda: setattr(DestinationPipeline, "on_end", saved)
    raise ValueError(piece)


def measure(
    n_calls: int = 2000, n_streams: int = 50, chunks: int = 200, profile: bool = False, ablations: bool = False
) -> dict[str, float]:
    import or_middleware
    from benchmarks.contenders import _counting_exporter
    from or_middleware import context
    from or_middleware.config import DestinationSettings, Settings
    from or_middleware.export import destinations
    from or_middleware.identity import identity_from_asgi
    from or_middleware.runtime import TracingRuntime

    exporter = _counting_exporter()

    class MicroNullDestination(DestinationSettings):
        kind = "micronull"
        default_spans = "all"

    destinations.EXPORTER_FACTORIES["micronull"] = lambda dest: exporter
    runtime = TracingRuntime(Settings(destinations=[MicroNullDestination()], llm_hosts=f"openai={HOST}"))
    scope = {"type": "http", "method": "GET", "path": "/chat", "headers": []}
    client = _client(*_fake_bodies(chunks))
    out: dict[str, float] = {}

    async def run(traced: bool, stream: bool, n: int) -> float:
        (or_middleware.instrument if traced else or_middleware.uninstrument)()
        token = context.enter(identity_from_asgi(runtime, scope, (b"x-user-id", b"x-session-id")))
        try:
            await _calls(client, max(5, n // 10), stream)  # warm-up
            runtime.force_flush()
            t0 = time.process_time_ns()
            await _calls(client, n, stream)
            runtime.force_flush()
            return (time.process_time_ns() - t0) / 1000 / n
        finally:
            context.leave(token)

    for _ in range(3):  # alternate, keep the best of three (the least disturbed)
        for key, traced, stream, n in (
            ("chat_untraced_us", False, False, n_calls),
            ("chat_traced_us", True, False, n_calls),
            ("stream_untraced_us", False, True, n_streams),
            ("stream_traced_us", True, True, n_streams),
        ):
            value = asyncio.run(run(traced, stream, n))
            out[key] = min(out.get(key, value), value)
    out["chat_added_us"] = out["chat_traced_us"] - out["chat_untraced_us"]
    out["stream_added_us_per_chunk"] = (out["stream_traced_us"] - out["stream_untraced_us"]) / chunks
    out["spans"] = sum(exporter.counts.values())
    if ablations:
        for piece in ABLATIONS:
            restore = ablate(piece)
            try:
                best = min(asyncio.run(run(True, False, n_calls)) for _ in range(3))
            finally:
                restore()
            out[f"chat_cost_of_{piece}_us"] = out["chat_traced_us"] - best
    if profile:
        for stream, n in ((False, n_calls), (True, n_streams)):
            profiler = cProfile.Profile()
            profiler.enable()
            asyncio.run(run(True, stream, n))
            profiler.disable()
            print(f"--- traced {'stream' if stream else 'chat'} call, top 25 by own time")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    runtime.shutdown()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.micro", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--ablate", action="store_true", help="cost of each piece: " + ", ".join(ABLATIONS))
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=50)
    args = parser.parse_args(argv)
    result = measure(args.calls, args.streams, profile=args.profile, ablations=args.ablate)
    print(json.dumps({k: round(v, 2) for k, v in result.items()}))


if __name__ == "__main__":
    main()
