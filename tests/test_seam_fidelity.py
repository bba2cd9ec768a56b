"""The app sees exactly what it would see without us (issue 11 items 15, 16, 20; issue 12 item 5).

- requests: ``response.raw`` stays urllib3's own HTTPResponse (iterable, a context manager,
  the same type), every way of reading it gives the bytes it gives without the hook, and the
  span still sees the body.
- httpx: a body of the wrong kind for the client (an async generator on a sync client, ...)
  raises httpx's own error, and every body kind behaves as without the hook.
- A stream read through its end marker and then closed is ``completed``; one closed at the
  finish reason, before the end (LiteLLM), is ``closed_after_finish``.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
import requests
import urllib3
from starlette.applications import Starlette

import or_middleware
from or_middleware import LLMTracingMiddleware
from tests.apps import AUTH, chat_body
from tests.conftest import make_settings, otlp
from tests.support.raw_http import RawHTTPServer
from tests.support.seams import HOSTILE_SCRIPTS, genai_span_waiter, inside_a_request, normalised, without_hook


@pytest.fixture
def genai_spans(upstream, receiver) -> Callable[[int], list[Any]]:
    LLMTracingMiddleware(Starlette(), settings=make_settings(upstream, otlp(receiver)))
    return genai_span_waiter(receiver)


# --- item 15: requests' response.raw is untouched ------------------------------------------

RAW_READS: dict[str, Callable[[requests.Response], bytes]] = {
    "for line in raw": lambda r: b"".join(line for line in r.raw),
    "with raw: read()": lambda r: _with_read(r.raw),
    "read(7) loop": lambda r: b"".join(iter(lambda: r.raw.read(7), b"")),
    "read1 loop": lambda r: b"".join(iter(lambda: r.raw.read1(64), b"")),
    "stream()": lambda r: b"".join(r.raw.stream(5)),
    "iter_content": lambda r: b"".join(r.iter_content(3)),
    "iter_lines": lambda r: b"\n".join(r.iter_lines()),
    "content": lambda r: r.content,
    "readinto": lambda r: _readinto(r.raw),
}


def _with_read(raw: Any) -> bytes:
    with raw as body:
        return body.read()


def _readinto(raw: Any) -> bytes:
    out, buffer = b"", bytearray(11)
    while n := raw.readinto(buffer):
        out += bytes(buffer[:n])
    return out


@pytest.mark.parametrize("stream", [True, False], ids=["sse", "json"])
@pytest.mark.parametrize("how", list(RAW_READS))
def test_requests_raw_is_urllib3s_own_response_and_still_observed(upstream, genai_spans, how, stream):
    url = f"{upstream.openrouter}/chat/completions"

    def call() -> tuple[type, bytes]:
        response = requests.post(url, json=chat_body("raw reads", stream=stream), headers=AUTH, stream=True,
                                 timeout=30)
        with response:
            assert isinstance(response.raw, urllib3.HTTPResponse)
            assert iter(response.raw) is not None and hasattr(response.raw, "__enter__")
            return type(response.raw), RAW_READS[how](response)

    bare_type, bare = without_hook(call)
    traced_type, traced = call()
    assert traced_type is bare_type is urllib3.response.HTTPResponse
    assert normalised(traced) == normalised(bare) and traced
    [span] = genai_spans(1)  # only the call made with the hook
    assert span.status_code == "UNSET"
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    if stream:
        assert span.attributes["or_middleware.stream.outcome"] == "completed"


def test_requests_raw_undecoded_gzip_bytes_are_the_apps_and_still_parsed(upstream, genai_spans):
    response = requests.post(f"{upstream.openrouter}/chat/completions", json=chat_body("zipped raw"),
                             headers={"x-fake-scenario": "gzip"}, stream=True, timeout=30)
    with response:
        wire = response.raw.read(decode_content=False)
    assert wire[:2] == b"\x1f\x8b"
    answer = json.loads(gzip.decompress(wire))
    [span] = genai_spans(1)
    assert span.attributes["gen_ai.usage.output_tokens"] == answer["usage"]["completion_tokens"]


def test_requests_stream_closed_early_is_abandoned_and_raw_keeps_working(upstream, genai_spans):
    response = requests.post(f"{upstream.openrouter}/chat/completions", json=chat_body("early", stream=True),
                             headers={"x-fake-chunks": "40"}, stream=True, timeout=30)
    first = next(iter(response.raw))
    assert first
    response.close()
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] == "abandoned"
    assert span.status_code == "UNSET"


def test_uninstrument_restores_urllib3_by_identity(upstream, genai_spans):
    patched = {name: urllib3.response.HTTPResponse.__dict__[name] for name in ("_raw_read", "close", "read_chunked")}
    originals = without_hook(lambda: {name: urllib3.response.HTTPResponse.__dict__[name] for name in patched})
    assert all(originals[name] is not patched[name] for name in patched)
    from or_middleware.capture import requests_hook

    assert all(requests_hook._urllib3_originals[name] is originals[name] for name in patched)
    reinstalled = {name: urllib3.response.HTTPResponse.__dict__[name] for name in patched}
    or_middleware.instrument()  # idempotent: nothing wrapped twice
    assert {name: urllib3.response.HTTPResponse.__dict__[name] for name in patched} == reinstalled


# --- item 16: a body of every kind behaves as without the hook --------------------------------


async def _agen() -> AsyncIterator[bytes]:
    yield json.dumps(chat_body("async gen")).encode()


def _gen() -> Iterator[bytes]:
    yield json.dumps(chat_body("sync gen")).encode()


def _failing_gen() -> Iterator[bytes]:
    yield b'{"model":'
    raise ValueError("the app's body generator failed")


async def _failing_agen() -> AsyncIterator[bytes]:
    yield b'{"model":'
    raise ValueError("the app's async body generator failed")


BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    "bytes": lambda: {"content": json.dumps(chat_body("bytes")).encode()},
    "str": lambda: {"content": json.dumps(chat_body("str"))},
    "json": lambda: {"json": chat_body("json")},
    "sync iterator": lambda: {"content": iter([b'{"model":"m",', b'"messages":[]}'])},
    "sync generator": lambda: {"content": _gen()},
    "async generator": lambda: {"content": _agen()},
    "file": lambda: {"content": io.BytesIO(json.dumps(chat_body("file")).encode())},
    "multipart": lambda: {"files": {"f": ("a.json", b"{}")}, "data": {"k": "v"}},
    "form": lambda: {"data": {"model": "m"}},
    "failing generator": lambda: {"content": _failing_gen()},
    "failing async generator": lambda: {"content": _failing_agen()},
}


def _outcome(action: Callable[[], httpx.Response]) -> tuple[Any, ...]:
    try:
        response = action()
    except Exception as exc:  # the exact exception the app gets
        return ("raised", type(exc), str(exc))
    return ("answered", response.status_code)


@pytest.mark.parametrize("kind", list(BODIES))
def test_every_body_kind_behaves_as_without_the_hook_sync_client(upstream, genai_spans, kind):
    url = f"{upstream.openai}/chat/completions"  # not OpenRouter: no linkage, the body is sent as it is

    def send() -> tuple[Any, ...]:
        with httpx.Client() as client:
            return _outcome(lambda: client.post(url, **BODIES[kind]()))

    bare = without_hook(send)
    received = len(upstream.received)
    assert send() == bare
    if kind == "async generator":
        assert bare[:2] == ("raised", RuntimeError)  # httpx's own error, not ours
    if bare[0] == "answered" and kind not in ("multipart",):  # multipart: a random boundary
        assert upstream.received[-1].body == upstream.received[received - 1].body


@pytest.mark.parametrize("kind", list(BODIES))
def test_every_body_kind_behaves_as_without_the_hook_async_client(upstream, genai_spans, kind):
    url = f"{upstream.openai}/chat/completions"

    def send() -> tuple[Any, ...]:
        async def run() -> tuple[Any, ...]:
            async with httpx.AsyncClient() as client:
                try:
                    response = await client.post(url, **BODIES[kind]())
                except Exception as exc:
                    return ("raised", type(exc), str(exc))
                return ("answered", response.status_code)

        return asyncio.run(run())

    bare = without_hook(send)
    assert send() == bare
    if kind in ("sync generator", "sync iterator"):
        assert bare[:2] == ("raised", RuntimeError)


# --- item 20 and issue 12 item 5: how a stream ended ----------------------------------------


def test_openai_sdk_stream_read_through_done_then_closed_is_completed(upstream, genai_spans):
    client = openai.OpenAI(base_url=upstream.openrouter, api_key="k")
    chunks = list(client.chat.completions.create(**chat_body("to the end", stream=True)))
    assert chunks[-1].usage is not None
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] == "completed"
    assert span.attributes["gen_ai.usage.output_tokens"] == chunks[-1].usage.completion_tokens
    assert span.status_code == "UNSET"


def test_lines_read_through_done_then_closed_is_completed(upstream, genai_spans):
    with httpx.Client() as client, client.stream("POST", f"{upstream.openrouter}/chat/completions",
                                                 json=chat_body("stop at done", stream=True)) as response:
        for line in response.iter_lines():
            if line == "data: [DONE]":
                break  # closed by the with block, the chunked terminator still unread
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] == "completed"
    assert span.attributes["gen_ai.usage.output_tokens"] > 0


def test_a_consumer_that_stops_at_the_finish_reason_is_closed_after_finish(upstream, genai_spans):
    with httpx.Client() as client, client.stream("POST", f"{upstream.openrouter}/chat/completions",
                                                 json=chat_body("stop at finish", stream=True)) as response:
        for line in response.iter_lines():
            if '"finish_reason":"stop"' in line:
                break
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] == "closed_after_finish"
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert "gen_ai.usage.output_tokens" not in span.attributes  # it came after: not known
    assert span.status_code == "UNSET"


def test_litellm_stream_stops_at_the_finish_chunk(upstream, genai_spans, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no cost-map download
    litellm = pytest.importorskip("litellm")
    litellm.telemetry = False
    chunks = list(litellm.completion(model="openrouter/openai/gpt-4o-mini", api_base=upstream.openrouter,
                                     api_key="sk-or-v1-k", messages=[{"role": "user", "content": "hi"}],
                                     stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    [span] = genai_spans(1)
    assert span.attributes["or_middleware.stream.outcome"] in ("completed", "closed_after_finish")
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    # whether the usage chunk was in the last bytes LiteLLM's read pulled off the socket is timing:
    # when it was, the tokens are right; when not, they are absent (never guessed)
    if "gen_ai.usage.output_tokens" in span.attributes:
        assert span.attributes["gen_ai.usage.output_tokens"] == 2


# --- hostile upstreams through requests: the same exception, one error span ------------------


@pytest.mark.parametrize("script", HOSTILE_SCRIPTS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("how", ["content", "iter_lines", "for line in raw"])
def test_requests_against_hostile_upstreams_raises_the_same_and_ends_one_error_span(upstream, genai_spans,
                                                                                    script, how):
    def run(url: str) -> tuple[Any, ...]:
        try:
            response = requests.post(url, json=chat_body("hostile", stream=True), stream=True, timeout=(5, 1))
            with response:
                return ("answered", RAW_READS[how](response))
        except Exception as exc:
            return ("raised", type(exc), str(exc).replace(url, "URL"))

    with RawHTTPServer() as server:
        url = f"{server.url}{server.route(script)}/chat/completions"  # traced by request shape
        bare = without_hook(lambda: run(url))
        traced = inside_a_request(lambda: run(url))
    assert bare[0] == "raised"
    assert traced == bare
    [span] = genai_spans(1)
    assert span.status_code == "ERROR"
