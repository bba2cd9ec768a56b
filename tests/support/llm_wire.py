"""Minimal OpenAI chat wire bytes for raw-socket tests: a JSON answer and an SSE stream.

The fake upstream (``or_middleware.demo.fake_upstream``) is the full-fidelity one; these are for
scripts that must cut, corrupt or inflate the bytes themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

PROMPT_TOKENS = 7


def sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def _chunk(choices: list[Any], **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "model": "raw-model", "choices": choices,
            **extra}


def usage(completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": completion_tokens,
            "total_tokens": PROMPT_TOKENS + completion_tokens}


def chat_frames(words: list[str]) -> list[bytes]:
    """A complete chat stream: role chunk, one chunk per word, finish, usage, [DONE]."""
    return [
        sse(_chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])),
        *(sse(_chunk([{"index": 0, "delta": {"content": word}}])) for word in words),
        sse(_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
        sse(_chunk([], usage=usage(len(words)))),
        b"data: [DONE]\n\n",
    ]


def many_frames(total_bytes: int, frame_text: str = "lorem ipsum dolor sit amet " * 300) -> Iterator[bytes]:
    """A chat stream of about ``total_bytes``, generated lazily (never held in memory); events
    of ~8 KB keep the per-event parsing cost (~30 µs) from dominating a 100 MB test."""
    frame = sse(_chunk([{"index": 0, "delta": {"content": frame_text}}]))
    count = max(1, total_bytes // len(frame))
    yield sse(_chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}]))
    for _ in range(count):
        yield frame
    yield sse(_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    yield sse(_chunk([], usage=usage(count)))
    yield b"data: [DONE]\n\n"


def chat_json(text: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-raw", "object": "chat.completion", "model": "raw-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage(len(text.split())),
    }).encode()


def big_chat_json(total_bytes: int, piece: bytes = b"lorem ipsum " * 5000) -> Iterator[bytes]:
    """A valid chat JSON answer of about ``total_bytes`` whose content is one huge string."""
    yield b'{"id":"chatcmpl-big","object":"chat.completion","model":"raw-model","choices":[{"index":0,' \
          b'"message":{"role":"assistant","content":"'
    for _ in range(max(1, total_bytes // len(piece))):
        yield piece
    yield b'"},"finish_reason":"stop"}],"usage":' + json.dumps(usage(1)).encode() + b"}"


def big_embeddings_json(total_bytes: int, dimensions: int = 1536) -> Iterator[bytes]:
    """An embeddings answer of about ``total_bytes``: as many vectors as it takes."""
    vector = ("[" + ",".join(["0.0123456789"] * dimensions) + "]").encode()
    item = b'{"object":"embedding","index":0,"embedding":' + vector + b"}"
    yield b'{"object":"list","data":['
    count = max(1, total_bytes // (len(item) + 1))
    for i in range(count):
        yield item if i == 0 else b"," + item
    yield b'],"model":"raw-embed","usage":{"prompt_tokens":' + str(count).encode() + b',"total_tokens":' \
          + str(count).encode() + b"}}"
