"""The aiohttp seam (issue 12 item 3): every ``aiohttp.ClientSession`` request is traced once, its
body observed as the app reads it, the span ended exactly once however the body ends, and the
app sees exactly what it sees without us (the same bytes, the same exceptions)."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.applications import Starlette

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.demo.serving import serve_asgi
from tests.apps import AUTH, chat_body
from tests.conftest import make_settings, otlp
from tests.support.raw_http import RawHTTPServer
from tests.support.seams import HOSTILE_SCRIPTS, genai_span_waiter, inside_a_request, normalised, without_hook


@pytest.fixture
def genai_spans(upstream, receiver) -> Callable[[int], list[Any]]:
    LLMTracingMiddleware(Starlette(), settings=make_settings(upstream, otlp(receiver)))
    return genai_span_waiter(receiver)


Reader = Callable[[aiohttp.ClientResponse], Awaitable[bytes]]


async def _lines(r: aiohttp.ClientResponse) -> bytes:
    return b"".join([line async for line in r.content])


async def _readline(r: aiohttp.ClientResponse) -> bytes:
    out = b""
    while line := await r.content.readline():
        out += line
    return out


async def _readchunk(r: aiohttp.ClientResponse) -> bytes:
    out = b""
    while (piece := await r.content.readchunk())[0]:
        out += piece[0]
    return out


async def _chunked(r: aiohttp.ClientResponse) -> bytes:
    return b"".join([c async for c in r.content.iter_chunked(7)])


async def _any(r: aiohttp.ClientResponse) -> bytes:
    return b"".join([c async for c in r.content.iter_any()])


async def _read_n(r: aiohttp.ClientResponse) -> bytes:
    out = b""
    while piece := await r.content.read(5):
        out += piece
    return out


READERS: dict[str, Reader] = {
    "read()": lambda r: r.read(),
    "text()": lambda r: _encode(r.text()),
    "json()": lambda r: _encode_json(r),
    "async for line": _lines,
    "readline": _readline,
    "readchunk": _readchunk,
    "iter_chunked": _chunked,
    "iter_any": _any,
    "content.read(5)": _read_n,
}


async def _encode(text: Awaitable[str]) -> bytes:
    return (await text).encode()


async def _encode_json(r: aiohttp.ClientResponse) -> bytes:
    if r.content_type != "application/json":
        return await r.read()
    return json.dumps(await r.json()).encode()


def _post(url: str, body: dict[str, Any], reader: Reader, **options: Any) -> bytes:
    async def run() -> bytes:
        async with aiohttp.ClientSession() as session, session.post(url, json=body, **options) as response:
            return await reader(response)

    return asyncio.run(run())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("how", list(READERS))
def test_every_way_of_reading_is_observed_and_unchanged(upstream, genai_spans, how, stream):
    url = f"{upstream.openrouter}/chat/completions"
    body = chat_body("aiohttp reads", stream=stream)
    bare = without_hook(lambda: _post(url, body, READERS[how]))
    traced = _post(url, body, READERS[how])
    assert normalised(traced) == normalised(bare) and traced
    [span] = genai_spans(1)
    assert span.status_code == "UNSET"
    assert span.attributes["gen_ai.provider.name"] == "openrouter"
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert span.attributes["gen_ai.usage.cost"] > 0
    if stream:
        assert span.attributes["or_middleware.stream.outcome"] == "completed"
        assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    linked = upstream.received[-1]
    assert linked.json["trace"]["parent_span_id"] == span.span_id  # the body was linked
    assert int(linked.headers["content-length"]) == len(linked.body)


@pytest.mark.parametrize("decompress", [True, False])
def test_gzip_bodies_with_and_without_auto_decompress(upstream, genai_spans, decompress):
    url = f"{upstream.openrouter}/chat/completions"
    data = _post(url, chat_body("zipped"), lambda r: r.read(), headers={"x-fake-scenario": "gzip"},
                 auto_decompress=decompress)
    assert (data[:2] == b"\x1f\x8b") is not decompress
    [span] = genai_spans(1)
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
    assert span.status_code == "UNSET"


def test_inside_a_real_app_the_span_is_the_child_of_the_request_span(upstream, receiver):
    app = FastAPI()

    @app.post("/ask")
    async def ask(request: Request) -> Response:
        async with aiohttp.ClientSession(headers=AUTH) as session, session.post(
            f"{upstream.openrouter}/chat/completions", json=await request.json()
        ) as answer:
            return Response(await answer.read(), status_code=answer.status, media_type="application/json")

    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver)))
    with serve_asgi(app) as url:
        async def call() -> dict[str, Any]:
            async with aiohttp.ClientSession() as session, session.post(
                f"{url}/ask", json=chat_body("from the app"), headers={"x-user-id": "ada"}
            ) as r:
                return await r.json()

        answer = asyncio.run(call())
        or_middleware.force_flush()
        [span] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
        [server] = receiver.wait_for_spans(lambda s: s.kind == "SERVER")
    assert span.parent_span_id == server.span_id and span.trace_id == server.trace_id
    assert span.attributes["gen_ai.response.id"] == answer["id"]
    assert span.attributes["user.id"] == "ada"


def test_a_session_made_before_the_hook_is_traced(upstream, receiver):
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            LLMTracingMiddleware(Starlette(), settings=make_settings(upstream, otlp(receiver)))
            async with session.post(f"{upstream.openai}/chat/completions", json=chat_body("early session")) as r:
                await r.read()

    asyncio.run(run())
    or_middleware.force_flush()
    [span] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
    assert span.attributes["gen_ai.provider.name"] == "openai"


# --- every way a body ends: exactly one span end ---------------------------------------------


def test_early_release_is_abandoned(upstream, genai_spans):
    async def run() -> None:
        async with aiohttp.ClientSession() as session, session.post(
            f"{upstream.openrouter}/chat/completions", json=chat_body("early", stream=True),
            headers={"x-fake-chunks": "50", "x-fake-chunk-delay-ms": "20"},
        ) as response:
            await response.content.readline()

    asyncio.run(run())
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] == "abandoned"
    assert span.status_code == "UNSET"


def test_a_line_reader_stopping_at_done_is_completed(upstream, genai_spans):
    async def run() -> None:
        async with aiohttp.ClientSession() as session, session.post(
            f"{upstream.openrouter}/chat/completions", json=chat_body("to done", stream=True)
        ) as response:
            while not (await response.content.readline()).startswith(b"data: [DONE]"):
                pass

    asyncio.run(run())
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] == "completed"


def test_a_response_never_read_nor_released_ends_when_collected(upstream, genai_spans):
    async def run() -> None:
        session = aiohttp.ClientSession()
        response = await session.post(f"{upstream.openrouter}/chat/completions", json=chat_body("gc", stream=True))
        assert response.status == 200
        del response
        gc.collect()
        await session.close()

    asyncio.run(run())
    gc.collect()
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] == "abandoned"


def test_task_cancellation_mid_stream(upstream, genai_spans):
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            async def consume() -> None:
                async with session.post(f"{upstream.openrouter}/chat/completions", json=chat_body("c", stream=True),
                                        headers={"x-fake-chunk-delay-ms": "200", "x-fake-chunks": "20"}) as r:
                    async for _ in r.content:
                        pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] == "abandoned"


def test_truncated_stream_is_an_error(upstream, genai_spans):
    _post(f"{upstream.openrouter}/chat/completions", chat_body("t", stream=True), lambda r: r.read(),
          headers={"x-fake-scenario": "truncated"})
    [span] = genai_spans(1)
    assert span.status_code == "ERROR"
    assert span.attributes["error.type"] == "truncated"


def _outcome(action: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("answered", action())
    except Exception as exc:
        return ("raised", type(exc), str(exc))


def _hostile(server: RawHTTPServer, script: Callable[[Any, socket.socket], None]) -> Callable[[], tuple[Any, ...]]:
    """A run against a raw server answering with ``script``; returns what the app saw."""
    url = f"{server.url}{server.route(script)}/chat/completions"  # traced by request shape on any host

    def run() -> tuple[Any, ...]:
        # total: a hang is a failure here, never a stalled suite
        return _outcome(lambda: _post(url, chat_body("hostile", stream=True), lambda r: r.read(),
                                      timeout=aiohttp.ClientTimeout(sock_read=1, total=30)))

    return run


# An invalid chunk size followed by the server's close: aiohttp 3.14 itself (no hook installed)
# sometimes neither raises nor arms its sock_read timer, and waits for ever (4 of 15 bare runs
# here): its outcome is not deterministic, so it cannot be compared with and without the hook.
# httpx and requests are still tested against it (tests/test_seam_fidelity.py).
AIOHTTP_HOSTILE_SCRIPTS = [s for s in HOSTILE_SCRIPTS if s.__name__ != "bad_chunking"]


@pytest.mark.parametrize("script", AIOHTTP_HOSTILE_SCRIPTS,
                         ids=lambda s: s.__name__.strip("_"))
def test_hostile_upstreams_raise_the_same_exception_and_end_one_error_span(upstream, genai_spans, script):
    with RawHTTPServer() as server:
        run = _hostile(server, script)
        bare = without_hook(run)
        traced = inside_a_request(run)
    assert bare[0] == "raised"
    assert traced == bare
    [span] = genai_spans(1)
    assert span.status_code == "ERROR"


def test_connection_refused_is_the_same_exception(upstream, genai_spans):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    def run() -> tuple[Any, ...]:
        return _outcome(lambda: _post(url, chat_body("refused"), lambda r: r.read()))

    bare = without_hook(run)
    assert bare[:2] == ("raised", aiohttp.ClientConnectorError)
    assert inside_a_request(run) == bare
    [span] = genai_spans(1)
    assert span.attributes["error.type"] == "ClientConnectorError"


def test_total_timeout_is_the_same_exception(upstream, genai_spans):
    url = f"{upstream.openrouter}/chat/completions"

    def run() -> tuple[Any, ...]:
        return _outcome(lambda: _post(url, chat_body("slow", stream=True), lambda r: r.read(),
                                      headers={"x-fake-chunk-delay-ms": "300", "x-fake-chunks": "20"},
                                      timeout=aiohttp.ClientTimeout(total=1)))

    bare = without_hook(run)
    assert bare[:2] == ("raised", TimeoutError)
    assert run() == bare
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] in ("abandoned", "error")


# --- aiohttp under an httpx seam, and the install itself -------------------------------------


def test_litellm_over_its_aiohttp_transport_gives_exactly_one_span(upstream, genai_spans, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    litellm.telemetry = False
    sent: list[str] = []
    original = aiohttp.ClientRequest.send

    async def counting(self: Any, conn: Any) -> Any:
        sent.append(str(self.url))
        return await original(self, conn)

    monkeypatch.setattr(aiohttp.ClientRequest, "send", counting)

    async def run() -> str:
        plain = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=upstream.openai, api_key="sk-k",
                                          messages=[{"role": "user", "content": "hi"}])
        chunks = [c async for c in await litellm.acompletion(
            model="openrouter/openai/gpt-4o-mini", api_base=upstream.openrouter, api_key="sk-or-v1-k",
            messages=[{"role": "user", "content": "hi"}], stream=True)]
        assert chunks
        return plain.id

    ident = asyncio.run(run())
    assert len(sent) == 2  # both went through aiohttp (inside litellm's httpx transport)
    spans = sorted(genai_spans(2), key=lambda s: s.attributes["gen_ai.request.stream"])
    assert spans[0].attributes["gen_ai.response.id"] == ident
    assert spans[1].attributes["gen_ai.provider.name"] == "openrouter"
    assert spans[1].attributes["or_middleware.stream.outcome"] in ("completed", "closed_after_finish")


def test_uninstrument_restores_aiohttp_by_identity(upstream, genai_spans):
    from aiohttp.client_reqrep import ClientRequest, ClientResponse
    from aiohttp.connector import BaseConnector
    from aiohttp.streams import StreamReader

    places = [(BaseConnector, "connect"), (ClientRequest, "send"), (ClientResponse, "start"),
              (ClientResponse, "release"), (ClientResponse, "close"), (StreamReader, "_read_nowait_chunk"),
              (StreamReader, "set_exception")]
    patched = [cls.__dict__[name] for cls, name in places]
    originals = without_hook(lambda: [cls.__dict__[name] for cls, name in places])
    from or_middleware.capture import aiohttp_hook

    assert all(o is not p for o, p in zip(originals, patched, strict=True))
    assert [aiohttp_hook._originals[place] for place in places] == originals
    assert all(a is b for a, b in zip([aiohttp_hook._originals[p] for p in places], originals, strict=True))
    reinstalled = [cls.__dict__[name] for cls, name in places]
    or_middleware.instrument()  # idempotent
    assert [cls.__dict__[name] for cls, name in places] == reinstalled
    _post(f"{upstream.openai}/chat/completions", chat_body("after"), lambda r: r.read())
    genai_spans(1)


def test_an_app_called_in_process_through_httpx_asgi_transport_still_traces_its_aiohttp_calls(upstream, receiver):
    """The outer httpx request (to the app, not an LLM call) marks nothing: the app's own
    aiohttp call inside it is traced, once."""
    import httpx

    app = FastAPI()

    @app.post("/ask")
    async def ask(request: Request) -> Response:
        async with aiohttp.ClientSession() as session, session.post(
            f"{upstream.openai}/chat/completions", json=await request.json()
        ) as answer:
            return Response(await answer.read(), media_type="application/json")

    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver)))

    async def run() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            return (await client.post("/ask", json=chat_body("in process"))).json()

    answer = asyncio.run(run())
    or_middleware.force_flush()
    [span] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
    assert span.attributes["gen_ai.response.id"] == answer["id"]
