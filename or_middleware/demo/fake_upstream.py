"""A fake LLM API (OpenRouter, OpenAI, Anthropic wire formats) for tests and ``or-middleware demo``.

Routes (POST). The path prefix picks the flavour: ``/api/v1`` answers as OpenRouter
(``provider``, ``usage.cost``/``cost_details``/``is_byok``, cache and reasoning token details,
``native_finish_reason``, ``X-Generation-Id`` header, ``: OPENROUTER PROCESSING`` SSE comments,
usage chunk always sent), ``/v1`` as OpenAI or Anthropic:

- ``/api/v1/chat/completions``, ``/v1/chat/completions``  OpenAI chat completions
- ``/api/v1/completions``, ``/v1/completions``            legacy text completions
- ``/api/v1/responses``, ``/v1/responses``                OpenAI Responses API
- ``/api/v1/embeddings``, ``/v1/embeddings``              embeddings (``encoding_format=base64`` too)
- ``/api/v1/messages``, ``/v1/messages``                  Anthropic Messages
- ``GET /api/v1/generation?id=gen-...``                   OpenRouter generation stats of a served id
Any other path answers 404 (and is still recorded).

Deterministic answers: the reply text is ``"Echo: <last user text>"``; a token is a word
(prompt tokens = words of all input texts incl. system; completion tokens = words of the reply
+ reasoning tokens); OpenRouter cost = 1e-6 USD per prompt token + 2e-6 per completion token.
Streams split the reply into min(4, words) chunks. ``max_tokens`` (``max_completion_tokens``,
``max_output_tokens``) below the reply length cuts it and finishes with ``length`` /
``max_tokens`` / Responses status ``incomplete``. A request with ``tools`` (and
``tool_choice`` not ``"none"``) gets a call to the first tool with arguments
``{"query": <last user text>, "echo": true}``, streamed in 4 fragments.
OpenAI-flavour chat/completions streams send the usage chunk only with
``stream_options.include_usage``; OpenRouter always does, then ``data: [DONE]``.

Scenario switches: header ``x-fake-scenario`` (comma-separated, combinable), or a model name
whose last ``/`` segment is a scenario (``fake/error_429``):

- ``error_<status>``  e.g. ``error_400``, ``error_402``, ``error_429``, ``error_500``: that status
  with the flavour's error JSON; 429 and 503 carry ``Retry-After`` (header ``x-fake-retry-after``,
  default ``1``).
- ``midstream_error``  streams: 200, half the content, then the format's error (chat/completions:
  chunk with top-level ``error`` and ``finish_reason: "error"``; Anthropic: ``event: error``;
  Responses: ``response.failed``), then the stream ends without ``[DONE]``.
  Non-streaming requests get a 502 error instead.
- ``truncated``  streams stop after half the content with no terminal event; JSON bodies are cut
  in half (valid Content-Length for what is sent).
- ``slow``  sleep between SSE events (100 ms, or header ``x-fake-chunk-delay-ms``; that header
  alone also enables the delay, also before the first event). Header
  ``x-fake-first-chunk-delay-ms``: a wait before the first event only (a slow time to first chunk).
- ``gzip``  gzip ``Content-Encoding`` for JSON and for streams (sync-flushed per event).
- ``invalid_json``  200 with ``application/json`` (or a ``data:`` line) that is not JSON.
- ``reasoning``  reasoning tokens (5) and reasoning deltas (chat on OpenRouter: ``delta.reasoning``;
  Anthropic: a ``thinking`` block).
- ``cache``  cached_tokens = prompt // 2, cache write = prompt // 4 (Anthropic ``input_tokens``
  then excludes both, as the real API does).
Other headers: ``x-fake-chunks: N`` (N content chunks; the reply is padded with ``lorem`` words to
N words), ``x-fake-response-model`` (the served model, e.g. for ``openrouter/auto``),
``x-fake-provider`` (OpenRouter ``provider``, default ``FakeProvider``).

Every request is appended to ``app.state.received`` (:class:`ReceivedRequest`).
Run standalone: ``or-middleware fake-upstream --port 8766`` (:mod:`or_middleware.demo.fake_command`;
its switches set default headers for every request).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from or_middleware.demo import fake_formats as wire
from or_middleware.demo import fake_native
from or_middleware.demo.fake_reply import Reply, plan_reply

ROUTES: dict[str, tuple[str, str]] = {  # path -> (flavour, format)
    "/api/v1/chat/completions": ("openrouter", "chat"),
    "/api/v1/completions": ("openrouter", "completions"),
    "/api/v1/responses": ("openrouter", "responses"),
    "/api/v1/embeddings": ("openrouter", "embeddings"),
    "/api/v1/messages": ("openrouter", "messages"),
    "/v1/chat/completions": ("openai", "chat"),
    "/v1/completions": ("openai", "completions"),
    "/v1/responses": ("openai", "responses"),
    "/v1/embeddings": ("openai", "embeddings"),
    "/v1/messages": ("anthropic", "messages"),
    "/openai/v1/chat/completions": ("groq", "chat"),  # Groq: stream usage in x_groq.usage
    # Mistral (a server_url of <fake>/mistral): usage on the last chunk of every stream
    "/mistral/v1/chat/completions": ("mistral", "chat"),
}
ID_PREFIX = {"chat": "chatcmpl-fake", "completions": "cmpl-fake", "responses": "resp_fake",
             "messages": "msg_fake", "embeddings": "emb-fake"}
KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
SIMPLE_SCENARIOS = {"midstream_error", "truncated", "slow", "gzip", "invalid_json", "reasoning", "cache"}
DEFAULT_SLOW_MS = 100


@dataclass
class ReceivedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any | None  # the parsed body, or None if it was not JSON


def scenarios_of(headers: dict[str, str], body: Any) -> set[str]:
    found = {s.strip() for s in headers.get("x-fake-scenario", "").split(",") if s.strip()}
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str):
        last = model.rsplit("/", 1)[-1]
        if last in SIMPLE_SCENARIOS or last.startswith("error_"):
            found.add(last)
    return found


def error_status(scenarios: set[str]) -> int | None:
    for s in sorted(scenarios):
        if s.startswith("error_") and s[6:].isdigit():
            return int(s[6:])
    return None


def encode_event(event: wire.Event) -> bytes:
    name, data = event
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {name}\n" if name else "").encode() + f"data: {text}\n\n".encode()


class FakeUpstream:
    """The request handler; holds the id counter and what was served."""

    def __init__(self, defaults: dict[str, str] | None = None, keep: int | None = None) -> None:
        self.received: list[ReceivedRequest] = []
        self.generations: dict[str, dict[str, Any]] = {}
        self.count = 0
        self.defaults = {k.lower(): v for k, v in (defaults or {}).items()}  # x-fake-* for every request
        self.keep = keep  # None: every request is kept (tests); a number bounds a long-running fake

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        for name, value in self.defaults.items():
            mine = headers.get(name)
            headers[name] = f"{value},{mine}" if mine and name == "x-fake-scenario" else mine or value
        self.received.append(ReceivedRequest(request.method, request.url.path, request.url.query,
                                             headers, raw, parsed))
        if self.keep is not None and len(self.received) > 2 * self.keep:
            del self.received[: -self.keep]
            while len(self.generations) > self.keep:
                del self.generations[next(iter(self.generations))]
        if request.url.path == "/api/v1/generation":
            gen = self.generations.get(request.query_params.get("id", ""))
            return JSONResponse({"data": gen}) if gen else _error("openrouter", "chat", 404, "Not found")
        native = fake_native.route(request.url.path.rstrip("/"))
        if native is not None and request.method == "POST":
            self.count += 1
            scenarios = scenarios_of(headers, parsed)
            return fake_native.answer(self.count, *native, parsed, request.url.query, scenarios,
                                      error_status(scenarios))
        route = ROUTES.get(request.url.path.rstrip("/"))
        if route is None or request.method != "POST":
            return JSONResponse({"error": {"code": 404, "message": "Not found"}}, status_code=404)
        flavour, fmt = route
        if not isinstance(parsed, dict) or not isinstance(parsed.get("model"), str):
            return _error(flavour, fmt, 400, "Request body must be JSON with a string 'model'")
        return await self.answer(flavour, fmt, parsed, headers)

    async def answer(self, flavour: str, fmt: str, body: dict[str, Any], headers: dict[str, str]) -> Response:
        scenarios = scenarios_of(headers, body)
        stream = body.get("stream") is True and fmt != "embeddings"
        status = error_status(scenarios) or (502 if "midstream_error" in scenarios and not stream else None)
        if status is not None:
            retry = headers.get("x-fake-retry-after", "1")
            return _error(flavour, fmt, status, f"Fake upstream error {status}",
                          {"retry-after": retry} if status in (429, 503) else {})
        self.count += 1
        reply = self.plan(flavour, fmt, body, headers, scenarios)
        extra = _id_headers(reply)
        if "invalid_json" in scenarios and not stream:
            return Response(b'{"id": "broken", "choices": [', media_type="application/json", headers=extra)
        if stream:
            return self.stream(reply, fmt, body, headers, scenarios, extra)
        payload = json.dumps(_json_body(reply, fmt, body)).encode()
        if "truncated" in scenarios:
            payload = payload[: len(payload) // 2]
        if "gzip" in scenarios:
            payload, extra["content-encoding"] = gzip.compress(payload), "gzip"
        return Response(payload, media_type="application/json", headers=extra)

    def plan(self, flavour: str, fmt: str, body: dict[str, Any], headers: dict[str, str],
             scenarios: set[str]) -> Reply:
        n = self.count
        ident = f"gen-{n:010d}-fake" if flavour == "openrouter" else f"{ID_PREFIX[fmt]}{n:06d}"
        chunks = headers.get("x-fake-chunks", "")
        reply = plan_reply(
            flavour=flavour, fmt=fmt, body=body, seq=n, ident=ident, created=int(time.time()),
            scenarios=scenarios, chunks=int(chunks) if chunks.isdigit() else None,
            response_model=headers.get("x-fake-response-model"),
            provider=headers.get("x-fake-provider", "FakeProvider"))
        if flavour == "openrouter":
            self.generations[ident] = {
                "id": ident, "model": reply.model, "provider_name": reply.provider,
                "total_cost": reply.cost, "tokens_prompt": reply.prompt_tokens,
                "tokens_completion": reply.completion_tokens, "streamed": body.get("stream") is True,
                "finish_reason": reply.finish, "native_finish_reason": reply.finish, "cancelled": False}
        return reply

    def stream(self, reply: Reply, fmt: str, body: dict[str, Any], headers: dict[str, str],
               scenarios: set[str], extra: dict[str, str]) -> StreamingResponse:
        plan = _stream_plan(reply, fmt, body)
        half = plan.body[: max(1, len(plan.body) // 2)]
        if "midstream_error" in scenarios:
            events = [*plan.head, *half, *plan.error]
        elif "truncated" in scenarios:
            events = [*plan.head, *half]
        else:
            events = [*plan.head, *plan.body, *plan.tail]
        frames = [encode_event(e) for e in events]
        if "invalid_json" in scenarios:
            frames.insert(len(plan.head) + 1, b"data: {this is not json\n\n")
        if reply.flavour == "openrouter":
            # Keep-alive comments before the first event and between events, as OpenRouter sends.
            last = len(frames) - 1
            frames = [KEEPALIVE] + [f + KEEPALIVE if i % 3 == 1 and i < last else f
                                    for i, f in enumerate(frames)]
        delay_ms = headers.get("x-fake-chunk-delay-ms")
        delay = int(delay_ms) / 1000 if delay_ms else (DEFAULT_SLOW_MS / 1000 if "slow" in scenarios else 0.0)
        if "gzip" in scenarios:
            extra["content-encoding"] = "gzip"
        extra["cache-control"] = "no-cache"
        first_ms = headers.get("x-fake-first-chunk-delay-ms", "")
        first = int(first_ms) / 1000 if first_ms.isdigit() else 0.0
        return StreamingResponse(_emit(frames, delay, "gzip" in scenarios, first), headers=extra,
                                 media_type="text/event-stream; charset=utf-8")


async def _emit(frames: list[bytes], delay: float, compress: bool, first: float = 0.0) -> AsyncIterator[bytes]:
    zipper = zlib.compressobj(wbits=31) if compress else None  # wbits=31: gzip container
    if first:
        await asyncio.sleep(first)
    for frame in frames:
        if delay:
            await asyncio.sleep(delay)
        yield zipper.compress(frame) + zipper.flush(zlib.Z_SYNC_FLUSH) if zipper else frame
    if zipper:
        yield zipper.flush()


def _stream_plan(reply: Reply, fmt: str, body: dict[str, Any]) -> wire.StreamPlan:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if fmt == "chat":
        return wire.chat_stream(reply, include_usage)
    if fmt == "completions":
        return wire.completions_stream(reply, include_usage)
    if fmt == "responses":
        return wire.responses_stream(reply, body)
    return wire.messages_stream(reply)


def _json_body(reply: Reply, fmt: str, body: dict[str, Any]) -> dict[str, Any]:
    if fmt == "chat":
        return wire.chat_json(reply)
    if fmt == "completions":
        return wire.completions_json(reply)
    if fmt == "responses":
        return wire.responses_json(reply, body)
    if fmt == "embeddings":
        return wire.embeddings_json(reply, body)
    return wire.messages_json(reply)


def _id_headers(reply: Reply) -> dict[str, str]:
    if reply.flavour == "openrouter":
        return {"x-generation-id": reply.ident}
    name = "request-id" if reply.flavour == "anthropic" else "x-request-id"
    return {name: f"req_fake{reply.seq:06d}"}


def _error(flavour: str, fmt: str, status: int, message: str,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(wire.error_body(flavour, fmt, status, message), status_code=status, headers=headers)


def create_fake_upstream(defaults: dict[str, str] | None = None, keep: int | None = None) -> Starlette:
    """A fresh fake; ``app.state.received`` lists every request it got (the last ``keep`` ones)."""
    fake = FakeUpstream(defaults, keep)
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=["GET", "POST", "PUT", "DELETE"])])
    app.state.received = fake.received
    app.state.generations = fake.generations
    return app


def main(argv: list[str] | None = None) -> None:
    from or_middleware.demo.fake_command import main as command_main

    raise SystemExit(command_main(argv))


if __name__ == "__main__":
    main()
