"""The fake upstream's native provider APIs: Gemini / Vertex AI, Cohere v2 and Ollama, on their real paths.

Each answer is planned like every other fake answer (:func:`plan_reply`: an echo of the last
user text, a word per token) and only reshaped here, following the documented wire formats
(links in or_middleware/genai/gemini.py, cohere.py, ollama.py). Scenarios (``x-fake-scenario``
or the model name's last part): ``error_<status>``, ``midstream_error``, ``truncated``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from or_middleware.demo.fake_formats import _vector
from or_middleware.demo.fake_reply import Reply, plan_reply, texts_of

GEMINI_METHODS = ("generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents", "predict")
NATIVE_PATHS = {"/v2/chat": ("cohere", "chat"), "/v2/embed": ("cohere", "embed"), "/api/chat": ("ollama", "chat"),
                "/api/generate": ("ollama", "generate"), "/api/embed": ("ollama", "embed")}
GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
COHERE_FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL"}
OLLAMA_FINISH = {"stop": "stop", "length": "length", "tool_calls": "stop"}
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def route(path: str) -> tuple[str, str, str | None] | None:
    """(provider, method, model from the path) for a native API path, else None."""
    if path in NATIVE_PATHS:
        provider, method = NATIVE_PATHS[path]
        return provider, method, None
    last = path.rsplit("/", 1)[-1]
    model, colon, method = last.rpartition(":")
    if colon and method in GEMINI_METHODS and "/models/" in path:
        return ("vertex" if "/projects/" in path else "gemini"), method, model
    return None


def _chat_view(provider: str, method: str, body: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    """The request as an OpenAI chat body, which plan_reply understands."""
    if provider in ("gemini", "vertex"):
        config = body.get("generationConfig") or {}
        messages = [{"role": "user" if c.get("role", "user") == "user" else "assistant",
                     "content": " ".join(texts_of(c.get("parts", [])))}
                    for c in body.get("contents", []) if isinstance(c, Mapping)]
        view: dict[str, Any] = {"model": model or "gemini", "messages": messages}
        if isinstance(config, Mapping) and isinstance(config.get("maxOutputTokens"), int):
            view["max_tokens"] = config["maxOutputTokens"]
        return view
    if method == "generate":
        return {"model": body.get("model"), "messages": [{"role": "user", "content": str(body.get("prompt", ""))}]}
    view = {"model": body.get("model"), "messages": body.get("messages", [])}
    limit = (body.get("options") or {}).get("num_predict") if provider == "ollama" else body.get("max_tokens")
    if isinstance(limit, int):
        view["max_tokens"] = limit
    if isinstance(body.get("tools"), list):
        view["tools"] = body["tools"]
    return view


def answer(seq: int, provider: str, method: str, model: str | None, body: Any, query: str,
           scenarios: set[str], error_status: int | None) -> Response:
    if not isinstance(body, Mapping):
        return _error(provider, 400, "request body must be a JSON object")
    if error_status is not None:
        return _error(provider, error_status, f"Fake upstream error {error_status}")
    if method in ("embed", "embedContent", "batchEmbedContents", "predict"):
        return JSONResponse(_embeddings(provider, method, body, model))
    view = _chat_view(provider, method, body, model)
    reply = plan_reply(flavour=provider, fmt="chat", body=view, seq=seq, ident=f"fake-{provider}-{seq:06d}",
                       created=int(time.time()), scenarios=scenarios, chunks=None, response_model=None,
                       provider=provider)
    if provider in ("gemini", "vertex"):
        if method != "streamGenerateContent":
            return JSONResponse(_gemini_chunk(reply, reply.text, final=True))
        chunks = [_gemini_chunk(reply, piece, final=False) for piece in reply.chunks[:-1]]
        chunks.append(_gemini_chunk(reply, reply.chunks[-1] if reply.chunks else "", final=True))
        error = {"error": {"code": 500, "message": "Fake upstream: model disconnected", "status": "INTERNAL"}}
        events = _cut(chunks, error, scenarios)
        if "alt=sse" in query:
            frames = [f"data: {json.dumps(e)}\r\n\r\n".encode() for e in events]
            return StreamingResponse(iter(frames), media_type="text/event-stream")
        return StreamingResponse(_json_array(events), media_type="application/json")
    if provider == "cohere":
        if body.get("stream") is not True:
            return JSONResponse(_cohere_json(reply))
        events = _cut(_cohere_events(reply), {"type": "message-end", "delta": {
            "error": "Fake upstream: model disconnected", "finish_reason": "ERROR"}}, scenarios)
        frames = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
        return StreamingResponse(iter(frames), media_type="text/event-stream")
    objects = _ollama_objects(reply, method, model=str(body.get("model")))
    if body.get("stream") is False:
        return JSONResponse(objects[-1] | _ollama_whole(reply, method))
    events = _cut(objects, {"error": "Fake upstream: model runner stopped"}, scenarios)
    return StreamingResponse(iter([json.dumps(e).encode() + b"\n" for e in events]), media_type="application/x-ndjson")


def _cut(events: list[Any], error: Any, scenarios: set[str]) -> list[Any]:
    half = events[: max(1, len(events) // 2)]
    if "midstream_error" in scenarios:
        return [*half, error]
    return half if "truncated" in scenarios else events


def _json_array(events: list[Any]) -> Iterator[bytes]:
    yield b"["
    for i, event in enumerate(events):
        yield (b",\r\n" if i else b"") + json.dumps(event).encode()
    yield b"]"


def _error(provider: str, status: int, message: str) -> JSONResponse:
    if provider in ("gemini", "vertex"):
        body: Any = {"error": {"code": status, "message": message, "status": GOOGLE_STATUS.get(status, "UNKNOWN")}}
    elif provider == "cohere":
        body = {"id": "fake-error", "message": message}
    else:
        body = {"error": message}
    return JSONResponse(body, status_code=status)


# ---- Gemini / Vertex AI --------------------------------------------------------------------------

def _gemini_chunk(r: Reply, text: str, *, final: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    usage: dict[str, Any] = {"promptTokenCount": r.prompt_tokens, "totalTokenCount": r.prompt_tokens}
    if final:
        candidate["finishReason"] = GEMINI_FINISH[r.finish]
        usage = {"promptTokenCount": r.prompt_tokens, "candidatesTokenCount": r.completion_tokens,
                 "totalTokenCount": r.total_tokens}
        if r.tool:
            candidate["content"]["parts"] = [{"functionCall": {"name": r.tool.name,
                                                                "args": json.loads(r.tool.arguments)}}]
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": r.model,
            "responseId": f"fake-gemini-{r.seq:06d}"}


def _embeddings(provider: str, method: str, body: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    if provider == "cohere":
        texts = body.get("texts") or body.get("inputs") or []
        vectors = [_vector(repr(t), 8) for t in texts]
        return {"id": "fake-embed", "embeddings": {"float": vectors}, "texts": texts, "response_type":
                "embeddings_by_type", "meta": {"api_version": {"version": "2"}, "billed_units": {
                    "input_tokens": sum(len(str(t).split()) for t in texts)}}}
    if provider == "ollama":
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        return {"model": body.get("model"), "embeddings": [_vector(repr(t), 8) for t in inputs],
                "prompt_eval_count": sum(len(str(t).split()) for t in inputs)}
    if method == "predict":
        instances = body.get("instances") or []
        return {"predictions": [{"embeddings": {"values": _vector(repr(i), 8), "statistics": {
            "token_count": len(str(i).split()), "truncated": False}}} for i in instances]}
    if method == "embedContent":
        return {"embedding": {"values": _vector(repr(body.get("content")), 8)}}
    return {"embeddings": [{"values": _vector(repr(item), 8)} for item in body.get("requests") or []]}


# ---- Cohere v2 -----------------------------------------------------------------------------------

def _cohere_usage(r: Reply) -> dict[str, Any]:
    # billed units leave out Cohere's prompt template: fewer input tokens than "tokens"
    return {"billed_units": {"input_tokens": r.prompt_tokens, "output_tokens": r.completion_tokens},
            "tokens": {"input_tokens": r.prompt_tokens + 60, "output_tokens": r.completion_tokens}}


def _cohere_calls(r: Reply) -> list[dict[str, Any]]:
    if r.tool is None:
        return []
    return [{"id": r.tool.call_id, "type": "function",
             "function": {"name": r.tool.name, "arguments": r.tool.arguments}}]


def _cohere_json(r: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    if r.tool:
        message.update(tool_plan="I will call the tool.", tool_calls=_cohere_calls(r))
    else:
        message["content"] = [{"type": "text", "text": r.text}]
    return {"id": r.ident, "finish_reason": COHERE_FINISH[r.finish], "message": message, "usage": _cohere_usage(r)}


def _cohere_events(r: Reply) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"id": r.ident, "type": "message-start", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}]
    if r.tool:
        call = _cohere_calls(r)[0]
        events.append({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
            **call, "function": {"name": r.tool.name, "arguments": ""}}}}})
        events += [{"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {
            "function": {"arguments": f}}}}} for f in r.tool.fragments]
        events.append({"type": "tool-call-end", "index": 0})
    else:
        events.append({"type": "content-start", "index": 0, "delta": {"message": {"content": {
            "type": "text", "text": ""}}}})
        events += [{"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}}
                   for p in r.chunks]
        events.append({"type": "content-end", "index": 0})
    events.append({"type": "message-end", "delta": {"finish_reason": COHERE_FINISH[r.finish],
                                                    "usage": _cohere_usage(r)}})
    return events


# ---- Ollama --------------------------------------------------------------------------------------

def _ollama_objects(r: Reply, method: str, *, model: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()

    def piece(text: str, **extra: Any) -> dict[str, Any]:
        body = {"response": text} if method == "generate" else {"message": {"role": "assistant", "content": text}}
        return {"model": model, "created_at": now, **body, "done": False, **extra}

    objects = [piece(p) for p in r.chunks]
    last = piece("", done_reason=OLLAMA_FINISH[r.finish], total_duration=1_000_000, load_duration=1000,
                 prompt_eval_count=r.prompt_tokens, prompt_eval_duration=1000, eval_count=r.completion_tokens,
                 eval_duration=1000)
    last["done"] = True
    if r.tool and method == "chat":
        last["message"]["tool_calls"] = [{"function": {"name": r.tool.name,
                                                       "arguments": json.loads(r.tool.arguments)}}]
    return [*objects, last]


def _ollama_whole(r: Reply, method: str) -> dict[str, Any]:
    if method == "generate":
        return {"response": r.text}
    last = _ollama_objects(r, method, model=r.model)[-1]["message"]
    return {"message": {**last, "content": r.text}}
