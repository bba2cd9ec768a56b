"""Wire shapes of each API for a planned :class:`Reply`: JSON bodies and SSE event plans.

Shapes follow the real APIs (OpenAI, Anthropic, OpenRouter); OpenRouter's additions
(``provider``, ``usage.cost``, ``native_finish_reason``, ...) appear only for that flavour.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from or_middleware.demo.fake_reply import Reply

Event = tuple[str | None, Any]  # (SSE ``event:`` name or None, data: a JSON-able value or a raw str)
DONE: Event = (None, "[DONE]")


@dataclass
class StreamPlan:
    """A stream in parts, so scenarios can cut it: ``truncated`` = head + half of body,
    ``midstream_error`` = head + half of body + error, normal = head + body + tail."""

    head: list[Event]
    body: list[Event]
    tail: list[Event]
    error: list[Event]


ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 529: "overloaded_error",
}
OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                      404: "invalid_request_error", 429: "rate_limit_exceeded"}


# ---- errors -------------------------------------------------------------------------------------

def error_body(flavour: str, fmt: str, status: int, message: str) -> dict[str, Any]:
    if flavour == "openrouter":
        return {"error": {"code": status, "message": message,
                          "metadata": {"provider_name": "FakeProvider", "raw": message}}}
    if fmt == "messages":
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = OPENAI_ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


# ---- usage --------------------------------------------------------------------------------------

def _openrouter_cost(r: Reply) -> dict[str, Any]:
    return {"cost": r.cost, "is_byok": False, "cost_details": {
        "upstream_inference_cost": None,
        "upstream_inference_prompt_cost": r.prompt_cost,
        "upstream_inference_completions_cost": r.completion_cost}}


def openai_usage(r: Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
        "total_tokens": r.total_tokens,
    }
    if r.flavour == "openrouter":
        usage["prompt_tokens_details"] = {"cached_tokens": r.cached_tokens,
                                          "cache_write_tokens": r.cache_write_tokens, "audio_tokens": 0}
        usage["completion_tokens_details"] = {"reasoning_tokens": r.reasoning_tokens, "image_tokens": 0}
        usage.update(_openrouter_cost(r))
    else:
        usage["prompt_tokens_details"] = {"cached_tokens": r.cached_tokens, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": r.reasoning_tokens, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    return usage


def responses_usage(r: Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": r.prompt_tokens, "input_tokens_details": {"cached_tokens": r.cached_tokens},
        "output_tokens": r.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": r.reasoning_tokens},
        "total_tokens": r.total_tokens,
    }
    if r.flavour == "openrouter":
        usage.update(_openrouter_cost(r))
    return usage


def anthropic_usage(r: Reply, output_tokens: int) -> dict[str, Any]:
    # Anthropic's input_tokens excludes the cached parts, unlike OpenAI's prompt_tokens.
    usage: dict[str, Any] = {
        "input_tokens": r.prompt_tokens - r.cached_tokens - r.cache_write_tokens,
        "cache_creation_input_tokens": r.cache_write_tokens,
        "cache_read_input_tokens": r.cached_tokens,
        "output_tokens": output_tokens, "service_tier": "standard",
    }
    if r.flavour == "openrouter":
        usage.update(_openrouter_cost(r))
    return usage


# ---- chat completions ---------------------------------------------------------------------------

def _chat_base(r: Reply, obj: str) -> dict[str, Any]:
    base: dict[str, Any] = {"id": r.ident, "object": obj, "created": r.created, "model": r.model}
    if r.flavour == "openrouter":
        base["provider"] = r.provider
        base["system_fingerprint"] = None  # OpenRouter sends the key, usually null; its SDK requires it
    else:
        base["system_fingerprint"] = "fp_fake"
    return base


def _choice_end(r: Reply, finish: str | None) -> dict[str, Any]:
    end: dict[str, Any] = {"finish_reason": finish, "logprobs": None}
    if r.flavour == "openrouter":
        end["native_finish_reason"] = finish
    return end


def _tool_call_json(r: Reply) -> dict[str, Any]:
    assert r.tool is not None
    return {"id": r.tool.call_id, "type": "function",
            "function": {"name": r.tool.name, "arguments": r.tool.arguments}}


def chat_json(r: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.text or None, "refusal": None}
    if r.tool:
        message["tool_calls"] = [_tool_call_json(r)]
    if r.flavour == "openrouter":
        message["reasoning"] = "".join(r.reasoning_chunks) or None
    choice = {"index": 0, "message": message, **_choice_end(r, r.finish)}
    return {**_chat_base(r, "chat.completion"), "choices": [choice], "usage": openai_usage(r)}


def chat_stream(r: Reply, include_usage: bool) -> StreamPlan:
    # OpenAI puts "usage": null on every chunk when include_usage is on; OpenRouter always
    # sends the usage chunk.
    with_usage = include_usage or r.flavour == "openrouter"
    null_usage = {"usage": None} if include_usage and r.flavour == "openai" else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
        choice = {"index": 0, "delta": delta, **_choice_end(r, finish)}
        return (None, {**_chat_base(r, "chat.completion.chunk"), "choices": [choice], **null_usage})

    body = [chunk({"reasoning": piece, "reasoning_details": [
        {"type": "reasoning.text", "text": piece, "format": "unknown", "index": 0}]})
        for piece in r.reasoning_chunks if r.flavour == "openrouter"]
    if r.tool:
        body.append(chunk({"tool_calls": [{"index": 0, "id": r.tool.call_id, "type": "function",
                                           "function": {"name": r.tool.name, "arguments": ""}}]}))
        body += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": f}}]})
                 for f in r.tool.fragments]
    body += [chunk({"content": piece}) for piece in r.chunks]
    tail = [chunk({}, r.finish)]
    if r.flavour == "groq":  # Groq sends no usage chunk: the usage rides on the last chunk
        tail[0][1]["x_groq"] = {"id": f"req_fake{r.seq:06d}", "usage": openai_usage(r)}
    elif r.flavour == "mistral":  # Mistral: always, on the finish chunk
        tail[0][1]["usage"] = openai_usage(r)
    elif with_usage:
        usage_chunk = {**_chat_base(r, "chat.completion.chunk"), "choices": [], "usage": openai_usage(r)}
        tail.append((None, usage_chunk))
    error = {**_chat_base(r, "chat.completion.chunk"),
             "error": {"code": 502, "message": "Fake upstream: provider disconnected mid-stream"},
             "choices": [{"index": 0, "delta": {"content": ""}, **_choice_end(r, "error")}]}
    head = [chunk({"role": "assistant", "content": ""})]
    return StreamPlan(head, body, [*tail, DONE], [(None, error)])


# ---- legacy completions -------------------------------------------------------------------------

def completions_json(r: Reply) -> dict[str, Any]:
    choice = {"text": r.text, "index": 0, "logprobs": None, **_choice_end(r, r.finish)}
    return {**_chat_base(r, "text_completion"), "choices": [choice], "usage": openai_usage(r)}


def completions_stream(r: Reply, include_usage: bool) -> StreamPlan:
    def chunk(text: str, finish: str | None = None) -> Event:
        choice = {"text": text, "index": 0, "logprobs": None, **_choice_end(r, finish)}
        return (None, {**_chat_base(r, "text_completion"), "choices": [choice]})

    tail = [chunk("", r.finish)]
    if include_usage or r.flavour == "openrouter":
        tail.append((None, {**_chat_base(r, "text_completion"), "choices": [], "usage": openai_usage(r)}))
    error = {**_chat_base(r, "text_completion"),
             "error": {"code": 502, "message": "Fake upstream: provider disconnected mid-stream"},
             "choices": [{"text": "", "index": 0, "logprobs": None, **_choice_end(r, "error")}]}
    return StreamPlan([], [chunk(piece) for piece in r.chunks], [*tail, DONE], [(None, error)])


# ---- Responses API ------------------------------------------------------------------------------

def _response_obj(r: Reply, body: Mapping[str, Any], status: str, output: list[Any],
                  usage: dict[str, Any] | None) -> dict[str, Any]:
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    obj: dict[str, Any] = {
        "id": r.ident, "object": "response", "created_at": r.created, "status": status,
        "error": None, "incomplete_details": incomplete, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": r.model, "output": output,
        "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": False,
        "temperature": body.get("temperature", 1.0), "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0), "truncation": "disabled", "usage": usage,
        "user": body.get("user"), "metadata": body.get("metadata") or {},
    }
    if r.flavour == "openrouter":
        obj["provider"] = r.provider
    return obj


def _output_item(r: Reply, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if r.tool:
        return {"type": "function_call", "id": f"fc_fake{r.seq:06d}", "call_id": r.tool.call_id,
                "name": r.tool.name, "arguments": r.tool.arguments if done else "", "status": status}
    content = [_text_part(r.text)] if done else []
    return {"type": "message", "id": f"msg_fake{r.seq:06d}", "status": status, "role": "assistant",
            "content": content}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _final_status(r: Reply) -> str:
    return "incomplete" if r.finish == "length" else "completed"


def responses_json(r: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
    return _response_obj(r, body, _final_status(r), [_output_item(r, True)], responses_usage(r))


def responses_stream(r: Reply, body: Mapping[str, Any]) -> StreamPlan:
    seq = iter(range(1_000_000))
    item_id = _output_item(r, False)["id"]

    def ev(kind: str, **data: Any) -> Event:
        return (kind, {"type": kind, "sequence_number": next(seq), **data})

    def lifecycle(kind: str, status: str, output: list[Any], usage: dict[str, Any] | None) -> Event:
        return ev(kind, response=_response_obj(r, body, status, output, usage))

    head = [lifecycle("response.created", "in_progress", [], None),
            lifecycle("response.in_progress", "in_progress", [], None),
            ev("response.output_item.added", output_index=0, item=_output_item(r, False))]
    at = {"item_id": item_id, "output_index": 0}
    if r.tool:
        body_events = [ev("response.function_call_arguments.delta", **at, delta=f) for f in r.tool.fragments]
        tail = [ev("response.function_call_arguments.done", **at, arguments=r.tool.arguments,
                   name=r.tool.name)]
    else:
        at["content_index"] = 0
        head.append(ev("response.content_part.added", **at, part=_text_part("")))
        body_events = [ev("response.output_text.delta", **at, delta=p, logprobs=[]) for p in r.chunks]
        tail = [ev("response.output_text.done", **at, text=r.text, logprobs=[]),
                ev("response.content_part.done", **at, part=_text_part(r.text))]
    status = _final_status(r)
    tail += [ev("response.output_item.done", output_index=0, item=_output_item(r, True)),
             lifecycle(f"response.{status}", status, [_output_item(r, True)], responses_usage(r))]
    failed = _response_obj(r, body, "failed", [], None)
    failed["error"] = {"code": "server_error", "message": "Fake upstream: provider disconnected mid-stream"}
    return StreamPlan(head, body_events, tail, [ev("response.failed", response=failed)])


# ---- Anthropic Messages -------------------------------------------------------------------------

def _blocks(r: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if r.reasoning_chunks:
        blocks.append({"type": "thinking", "thinking": "".join(r.reasoning_chunks), "signature": "sig-fake"})
    if r.tool:
        blocks.append({"type": "tool_use", "id": f"toolu_fake{r.seq:06d}", "name": r.tool.name,
                       "input": json.loads(r.tool.arguments)})
    else:
        blocks.append({"type": "text", "text": r.text})
    return blocks


def _message(r: Reply, content: list[Any], stop: str | None, output_tokens: int) -> dict[str, Any]:
    msg: dict[str, Any] = {"id": r.ident, "type": "message", "role": "assistant", "model": r.model,
                           "content": content, "stop_reason": stop, "stop_sequence": None,
                           "usage": anthropic_usage(r, output_tokens)}
    if r.flavour == "openrouter":
        msg["provider"] = r.provider
    return msg


def messages_json(r: Reply) -> dict[str, Any]:
    return _message(r, _blocks(r), ANTHROPIC_STOP[r.finish], r.completion_tokens)


def messages_stream(r: Reply) -> StreamPlan:
    def ev(kind: str, **data: Any) -> Event:
        return (kind, {"type": kind, **data})

    body: list[Event] = []
    for index, block in enumerate(_blocks(r)):
        if block["type"] == "thinking":
            start, deltas = {**block, "thinking": "", "signature": ""}, [
                {"type": "thinking_delta", "thinking": p} for p in r.reasoning_chunks]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "tool_use":
            assert r.tool is not None
            start = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in r.tool.fragments]
        else:
            start, deltas = {**block, "text": ""}, [{"type": "text_delta", "text": p} for p in r.chunks]
        body.append(ev("content_block_start", index=index, content_block=start))
        if index == 0:
            body.append(ev("ping"))  # the real API pings right after the first block starts
        body += [ev("content_block_delta", index=index, delta=d) for d in deltas]
        body.append(ev("content_block_stop", index=index))
    head = [ev("message_start", message=_message(r, [], None, 1))]
    tail = [ev("message_delta", delta={"stop_reason": ANTHROPIC_STOP[r.finish], "stop_sequence": None},
               usage={"output_tokens": r.completion_tokens}),
            ev("message_stop")]
    error = ev("error", error={"type": "overloaded_error", "message": "Overloaded"})
    return StreamPlan(head, body, tail, [error])


# ---- embeddings ---------------------------------------------------------------------------------

def _vector(key: str, dims: int) -> list[float]:
    out = []
    for j in range(dims):
        digest = hashlib.sha256(f"{key}:{j}".encode()).digest()
        out.append(round(int.from_bytes(digest[:4], "big") / 2**31 - 1.0, 6))
    return out


def embeddings_json(r: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
    raw = body.get("input", "")
    # Token-id inputs ([1, 2] or [[1, 2], [3]]) count one token per id.
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        raw = [raw]
    inputs = raw if isinstance(raw, list) else [raw]
    dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
    data = []
    for i, item in enumerate(inputs):
        vector = _vector(repr(item), dims)
        emb: Any = vector
        if body.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = max(1, sum(len(x) if isinstance(x, list) else len(str(x).split()) for x in inputs))
    usage: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
    out: dict[str, Any] = {"object": "list", "data": data, "model": r.model, "usage": usage}
    if r.flavour == "openrouter":
        cost = round(tokens * 0.0000001, 12)
        usage.update(cost=cost, is_byok=False, cost_details={"upstream_inference_cost": None})
        out.update(id=r.ident, provider=r.provider)
    return out
