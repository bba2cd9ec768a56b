"""Adversarial inputs against the capture seams and the stream framings (issue 12 / issue 11 review).

Each test is an attack that once got through: the request or stream an outsider could send,
driven through a real server and client over loopback where the defect shows there.
"""

from __future__ import annotations

import httpx

from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.demo.serving import serve_asgi
from or_middleware.genai.framing import JSONArrayDecoder, NDJSONDecoder
from tests.conftest import otlp
from tests.test_detection import genai_spans, relay_app


def test_deeply_nested_body_on_an_unlisted_host_is_not_traced(upstream, receiver):
    # A chat-looking body nested past the recursion limit: json raises RecursionError (not a
    # ValueError). It must count as "not JSON": no span for an unconfirmed shape, bytes untouched.
    nested = b"[" * 100_000 + b"]" * 100_000
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "deep": ' + nested + b"}"
    target = f"{upstream.url}/v1/chat/completions"
    app = relay_app(target)
    app.add_middleware(LLMTracingMiddleware, settings=Settings(destinations=[otlp(receiver)]))
    bare = relay_app(target)
    with serve_asgi(app) as url, serve_asgi(bare) as bare_url:
        traced = httpx.post(f"{url}/relay", content=body)
        untraced = httpx.post(f"{bare_url}/relay", content=body)
        assert traced.status_code == untraced.status_code
        receiver.wait_for_spans(lambda s: s.kind == "SERVER")
    assert genai_spans(receiver) == []


def test_ndjson_line_over_the_cap_inside_one_chunk_is_dropped_not_parsed():
    # One read (requests' r.raw.read(), aiohttp's read()) can hand over a whole 50 MB line with its
    # newline: the cap must hold there too, not only for a line still pending at a chunk's end.
    decoder = NDJSONDecoder(max_event_chars=64)
    line = b'{"message": {"content": "' + b"x" * 1000 + b'"}, "done": false}\n'
    events = decoder.feed(line + b'{"done": true}\n')
    assert [event.data for event in events] == ['{"done": true}']
    assert decoder.overflowed
    # a line that starts in one chunk and ends, over the cap, in the next
    decoder = NDJSONDecoder(max_event_chars=64)
    assert decoder.feed(b'{"a": "' + b"y" * 40) == []
    assert decoder.feed(b"y" * 40 + b'"}\n{"done": true}\n')[0].data == '{"done": true}'
    assert decoder.overflowed


def test_gemini_array_split_after_a_backslash_survives_an_empty_chunk():
    # Every split of a Gemini JSON-array stream decodes the same, an empty piece between two
    # included: the escaped quote after a backslash at a chunk's end is still escaped.
    body = b'[{"text": "a\\"]}"},\r\n{"done": 1}]'
    cut = body.index(b"\\") + 1
    decoder = JSONArrayDecoder()
    events = decoder.feed(body[:cut]) + decoder.feed(b"") + decoder.feed(body[cut:]) + decoder.flush()
    assert [event.data for event in events] == ['{"text": "a\\"]}"}', '{"done": 1}']



def test_a_streamed_upload_to_an_unlisted_host_is_sent_as_it_is_produced(receiver):
    """Inside a traced request, an httpx generator body to an unlisted host's chat path is not read
    ahead (the server gets the first chunk before the producer is asked for the second): not
    traced (its shape cannot be confirmed without reading it), bytes unchanged."""
    import threading

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    arrived = threading.Event()
    received: list[bytes] = []

    async def server(scope, receive, send):
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            if message.get("body"):
                received.append(message["body"])
                arrived.set()
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve_asgi(server) as upstream_url:

        def produce():
            yield b'{"model": "m", "messages": ['
            if not arrived.wait(10):
                raise AssertionError("the first chunk was held back")
            yield b'{"role": "user", "content": "hi"}]}'

        def upload(request):  # a sync handler: runs in the threadpool, inside the traced request
            answer = httpx.post(f"{upstream_url}/v1/chat/completions", content=produce(), timeout=30)
            return PlainTextResponse(answer.text)

        app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
        app.add_middleware(LLMTracingMiddleware, settings=Settings(destinations=[otlp(receiver)]))
        with serve_asgi(app) as url:
            assert httpx.post(f"{url}/upload", timeout=30).text == "ok"
    assert b"".join(received) == b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    assert genai_spans(receiver) == []
