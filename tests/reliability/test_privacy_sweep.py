"""Privacy and secrets sweep: distinct canaries through every path, every byte every sink got, grepped.

Paths: OpenRouter chat (system prompt, user text, tool definitions, tool-call arguments, tool
results), a relayed stream, the Responses API (instructions, input), Anthropic Messages (with an
``x-api-key``), embeddings input, an upstream error body echoing the prompt, a forwarding
gateway (examples/proxy_app.py), custom ``trace`` metadata whose values look like secrets, and
API keys in the app's outbound ``Authorization`` header and in the inbound request's headers.

Sinks: OTLP bodies (protobuf and JSON; semconv, Langfuse, OpenInference and LangSmith dialects),
PostHog events, the console destination's output, the local SQLite store's files, and every log
record. Rules:

- content canaries: never in a privacy-mode sink, never in a log record; in a destination with
  privacy off only under keys in ``spans.CONTENT_ATTRIBUTES`` — so an attribute added tomorrow
  that carries content past the privacy filter fails here;
- credential canaries: nowhere at all;
- controls (a non-secret trace metadata value, the user id) appear where they should, so the
  sweep cannot pass by looking at nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings, spans
from or_middleware.config import (
    ConsoleDestination,
    LangfuseDestination,
    LangSmithDestination,
    LocalDestination,
    OtlpDestination,
    PhoenixDestination,
    PostHogDestination,
)
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from tests.support.capture_receiver import CaptureReceiver
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.raw_http import RawHTTPServer, send_response

# Content: one-word tokens, so the fake's echo ("Echo: <last user text>") carries them to outputs.
CONTENT = {
    "system": "cnt-system-q1w2",
    "user": "cnt-user-e3r4",
    "tool_definition": "cnt-tooldef-u7i8",
    "tool_arguments": "cnt-toolargs-o9p0",
    "tool_result": "cnt-toolresult-a1s2",
    "stream": "cnt-stream-t5y6",
    "responses_instructions": "cnt-instructions-d3f4",
    "responses_input": "cnt-respinput-g5h6",
    "anthropic_system": "cnt-antsystem-j7k8",
    "anthropic_user": "cnt-antuser-l9z0",
    "embeddings_input": "cnt-embed-x1c2",
    "error_body": "cnt-errorbody-v3b4",
    "forwarded": "cnt-forwarded-n5m6",
}
# Embeddings inputs are never read, privacy mode or not (semconv has no shape for them, and a
# batch of documents is the bulk content privacy guards): not even a content destination gets them.
NEVER_CAPTURED = {"embeddings_input"}
# Credentials: the distinctive run of each is what is grepped.
OUTBOUND_KEY = "sk-or-v1-" + "d00d" * 16  # the app's key to OpenRouter (Authorization)
ANTHROPIC_KEY = "sk-ant-api03-" + "beef" * 20  # x-api-key
INBOUND_BEARER = "sk-or-v1-" + "f00d" * 16  # a client's key on the request to the app
INBOUND_API_KEY = "inbound-" + "cafe" * 6  # no known key shape: only not recording it keeps it out
GATEWAY_API_KEY = "gwkey-" + "5eed" * 6  # the app's key to its own gateway, no known shape either
PROMPT_KEY = "sk-proj-" + "abba" * 12  # pasted into a prompt
METADATA_TOKEN = "ghp_" + "C0FFEE" * 6  # a trace metadata value that is a secret
GATEWAY_CLIENT_KEY = "sk-or-v1-" + "fade" * 16  # forwarded by the gateway
CREDENTIALS = {
    "outbound authorization": "d00dd00dd00d", "anthropic x-api-key": "beefbeefbeef",
    "inbound authorization": "f00df00df00d", "inbound x-api-key": "cafecafecafe",
    "key in a prompt": "abbaabbaabba", "secret trace metadata": "C0FFEEC0FFEE", "gateway client key": "fadefadefade",
    "gateway x-api-key": "5eed5eed5eed",
}
METADATA_OK = "meta-ok-z9x8"  # trace metadata that is not a secret: exported everywhere
USER = "user-canary-ok"


def _chat_body() -> dict[str, Any]:
    tool = {"type": "function", "function": {
        "name": "lookup", "description": f"finds {CONTENT['tool_definition']}",
        "parameters": {"type": "object",
                       "properties": {"q": {"type": "string", "description": CONTENT["tool_definition"]}}}}}
    return {
        "model": "openai/gpt-4o-mini",
        "tools": [tool],
        "tool_choice": "none",
        "trace": {"order": METADATA_OK, "deploy_token": METADATA_TOKEN},
        "messages": [
            {"role": "system", "content": f"You are {CONTENT['system']}"},
            {"role": "user", "content": f"Look up with key {PROMPT_KEY}"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "lookup", "arguments": json.dumps({"q": CONTENT["tool_arguments"], "key": PROMPT_KEY})}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": f"found {CONTENT['tool_result']}"},
            {"role": "user", "content": CONTENT["user"]},
        ],
    }


def sweep_app(fake_url: str, rejecting_url: str) -> Starlette:
    """An app whose routes make every kind of LLM call, with its own API keys on them."""
    openrouter, anthropic = f"{fake_url}/api/v1", fake_url.replace("127.0.0.1", "localhost")
    client = httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {OUTBOUND_KEY}"})

    async def post(url: str, body: dict[str, Any], **headers: str) -> Response:
        answer = await client.post(url, json=body, headers=headers)
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    async def chat(request: Request) -> Response:
        return await post(f"{openrouter}/chat/completions", _chat_body())

    async def stream(request: Request) -> StreamingResponse:
        body = {"model": "openai/gpt-4o-mini", "stream": True, "trace": {"order": METADATA_OK},
                "messages": [{"role": "user", "content": CONTENT["stream"]}]}
        upstream = await client.send(client.build_request("POST", f"{openrouter}/chat/completions", json=body),
                                     stream=True)

        async def relay() -> Iterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(relay(), media_type="text/event-stream")

    async def responses(request: Request) -> Response:
        return await post(f"{openrouter}/responses", {
            "model": "openai/gpt-4o-mini", "instructions": CONTENT["responses_instructions"],
            "input": [{"role": "user", "content": CONTENT["responses_input"]}]})

    async def messages(request: Request) -> Response:
        return await post(f"{anthropic}/v1/messages", {
            "model": "claude-sonnet-4", "max_tokens": 64, "system": CONTENT["anthropic_system"],
            "messages": [{"role": "user", "content": CONTENT["anthropic_user"]}]},
            **{"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"})

    async def embeddings(request: Request) -> Response:
        return await post(f"{openrouter}/embeddings", {"model": "openai/text-embedding-3-small",
                                                        "input": [CONTENT["embeddings_input"]]})

    async def rejected(request: Request) -> Response:
        return await post(f"{rejecting_url}/chat/completions", {
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": CONTENT["error_body"]}]},
            **{"x-api-key": GATEWAY_API_KEY})

    routes = [Route(f"/{f.__name__}", f, methods=["POST"]) for f in (chat, stream, responses, messages,
                                                                      embeddings, rejected)]
    return Starlette(routes=routes)


def _rejecting(request: Any, conn: Any) -> None:
    """An API that echoes the prompt and a key in its error body, as real APIs do."""
    body = json.dumps({"error": {"message": f"cannot use {CONTENT['error_body']} with key {PROMPT_KEY}",
                                 "type": "invalid_request_error", "code": "invalid_prompt"}}).encode()
    send_response(conn, 400, {"content-type": "application/json"}, [body], chunked=False)


class Sinks:
    """Every destination of the sweep and the bytes each received."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.private = {name: OTLPReceiver().__enter__() for name in ("otlp", "otlp_json", "langfuse", "phoenix",
                                                                      "langsmith")}
        self.open = {name: OTLPReceiver().__enter__() for name in ("otlp_open", "phoenix_open")}
        self.posthog = CaptureReceiver().__enter__()
        self.store = tmp_path / "traces.db"

    def destinations(self) -> list[Any]:
        fast = {"schedule_delay_ms": 20, "spool_dir": str(self.tmp_path / "spool")}
        p, o = self.private, self.open
        return [
            OtlpDestination(name="otlp", endpoint=p["otlp"].traces_url, spans="all", **fast),
            OtlpDestination(name="otlp_json", endpoint=p["otlp_json"].traces_url, protocol="http/json", **fast),
            LangfuseDestination(public_key="pk-lf-x", secret_key="sk-lf-" + "9e9e" * 8, host=p["langfuse"].url,
                                **fast),
            PhoenixDestination(endpoint=p["phoenix"].traces_url, **fast),
            LangSmithDestination(api_key="lsv2_x", endpoint=p["langsmith"].url, **fast),
            PostHogDestination(api_key="phc_x", host=self.posthog.url, **fast),
            ConsoleDestination(schedule_delay_ms=20),
            LocalDestination(path=str(self.store), schedule_delay_ms=20),
            OtlpDestination(name="otlp_open", endpoint=o["otlp_open"].traces_url, privacy_mode=False, spans="all",
                            **fast),
            PhoenixDestination(name="phoenix_open", endpoint=o["phoenix_open"].traces_url, privacy_mode=False,
                               **fast),
        ]

    def close(self) -> None:
        for receiver in (*self.private.values(), *self.open.values()):
            receiver.close()
        self.posthog.__exit__(None, None, None)

    def store_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.tmp_path.glob("traces.db*"))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> bytes:
        formatter = logging.Formatter()
        out = []
        for record in self.records:
            out.append(record.getMessage())
            if record.exc_info:
                out.append(formatter.formatException(record.exc_info))
        return "\n".join(out).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run every path once through the app and the gateway; collect what each sink received.
    Module-scoped: one run serves every check (console output and log records are captured here,
    not by pytest's function-scoped capture fixtures)."""
    from examples.proxy_app import create_app

    tmp_path = tmp_path_factory.mktemp("sweep")
    logs, root = _Records(), logging.getLogger()
    level = root.level
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)
    console = io.StringIO()
    sinks = Sinks(tmp_path)
    try:
        with serve_asgi(create_fake_upstream()) as fake_url, RawHTTPServer() as rejecting, \
                contextlib.redirect_stderr(console):
            rejecting_url = f"{rejecting.url}{rejecting.route(_rejecting)}"
            hosts = f"openrouter={fake_url}/api/v1,anthropic={fake_url.replace('127.0.0.1', 'localhost')}/v1," \
                    f"openai={rejecting_url}"
            settings = Settings(service_name="sweep", destinations=sinks.destinations(), llm_hosts=hosts)
            app = sweep_app(fake_url, rejecting_url)
            app.add_middleware(LLMTracingMiddleware, settings=settings)
            gateway = create_app(f"{fake_url}/api/v1", settings=Settings(
                service_name="sweep-gateway", destinations=sinks.destinations(), llm_hosts=hosts))
            inbound = {"authorization": f"Bearer {INBOUND_BEARER}", "x-api-key": INBOUND_API_KEY,
                       "x-user-id": USER, "x-session-id": "session-canary-ok", "cookie": f"session={INBOUND_API_KEY}"}
            with serve_asgi(app) as url, serve_asgi(gateway) as gateway_url, \
                    httpx.Client(timeout=30, headers=inbound) as http:
                for route in ("chat", "stream", "responses", "messages", "embeddings", "rejected"):
                    response = http.post(f"{url}/{route}")
                    assert response.status_code == (400 if route == "rejected" else 200), (route, response.text)
                forwarded = {"model": "openai/gpt-4o-mini", "stream": True, "user": USER,
                             "trace": {"order": METADATA_OK, "deploy_token": METADATA_TOKEN},
                             "messages": [{"role": "user", "content": CONTENT["forwarded"]}]}
                with http.stream("POST", f"{gateway_url}/v1/chat/completions", json=forwarded,
                                 headers={"authorization": f"Bearer {GATEWAY_CLIENT_KEY}"}) as answer:
                    assert answer.status_code == 200
                    answer.read()
                assert or_middleware.force_flush(10_000)
            genai = lambda s: s.scope == "or_middleware"  # noqa: E731
            for receiver in (*sinks.private.values(), *sinks.open.values()):
                receiver.wait_for_spans(genai, count=7)
            sinks.posthog.wait_for_requests()
            or_middleware.shutdown_all()  # the store and the console write everything before we read them
        yield {
            "private": {name: _bytes(rx) for name, rx in sinks.private.items()}
            | {"posthog": b"".join(r.body for r in sinks.posthog.requests), "store": sinks.store_bytes(),
               "console": console.getvalue().encode("utf-8", "surrogatepass")},
            "open": {name: _bytes(rx) for name, rx in sinks.open.items()},
            "open_spans": list(sinks.open["otlp_open"].spans),
            "logs": logs.text(),
        }
    finally:
        root.removeHandler(logs)
        root.setLevel(level)
        sinks.close()


def _bytes(receiver: OTLPReceiver) -> bytes:
    return b"".join(r.body for r in receiver.requests)


def test_content_never_reaches_a_privacy_mode_sink_nor_the_logs(swept):
    for name, data in [*swept["private"].items(), ("logs", swept["logs"])]:
        found = [label for label, canary in CONTENT.items() if canary.encode() in data]
        assert not found, f"content canaries {found} reached {name}"


def test_credentials_reach_no_sink_at_all(swept):
    every = {**swept["private"], **swept["open"], "logs": swept["logs"]}
    for name, data in every.items():
        found = [label for label, canary in CREDENTIALS.items() if canary.encode() in data]
        assert not found, f"credentials {found} reached {name}"


def test_the_sweep_saw_every_path(swept):
    """Controls: content reached the destinations with privacy off (every path was traced and
    read), metadata reached every sink, so the negative checks above looked at real bytes."""
    for name, data in swept["open"].items():
        missing = [label for label, canary in CONTENT.items() if canary.encode() not in data
                   and label not in NEVER_CAPTURED]
        assert not missing, f"{name} lacks content from {missing}"
        assert not [label for label in NEVER_CAPTURED if CONTENT[label].encode() in data], name
    names = {span.name for span in swept["open_spans"]}
    assert {"chat openai/gpt-4o-mini", "chat claude-sonnet-4", "embeddings openai/text-embedding-3-small",
            "chat gpt-4o-mini"} <= names, names
    for name in ("otlp", "otlp_json", "langfuse", "phoenix", "langsmith", "store"):
        assert METADATA_OK.encode() in swept["private"][name], name
        assert USER.encode() in swept["private"][name], name
    assert USER.encode() in swept["private"]["posthog"]
    assert b"chat openai/gpt-4o-mini" in swept["private"]["console"]


def test_content_travels_only_under_content_attributes(swept):
    """The rule the privacy filter relies on: any attribute whose value carries content is one of
    ``spans.CONTENT_ATTRIBUTES`` (those, and only those, are stripped for privacy mode)."""
    offenders: dict[str, list[str]] = {}

    def check(where: str, attributes: dict[str, Any]) -> None:
        for key, value in attributes.items():
            text = json.dumps(value, default=str)
            carried = [label for label, canary in CONTENT.items() if canary in text]
            if carried and key not in spans.CONTENT_ATTRIBUTES:
                offenders.setdefault(f"{where}: {key}", []).extend(carried)

    span: ReceivedSpan
    for span in swept["open_spans"]:
        check(f"span {span.name!r}", span.attributes)
        for event in span.events:
            check(f"event {event['name']!r} of {span.name!r}", event["attributes"])
        check("resource", span.resource)
        assert not [c for c in CONTENT.values() if c in span.name + span.status_message], span.name
    assert not offenders, f"content outside CONTENT_ATTRIBUTES: {offenders}"
