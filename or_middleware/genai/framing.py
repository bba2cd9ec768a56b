"""Stream framings besides SSE: newline-delimited JSON and a JSON array sent piece by piece.

Each decoder has the SSE decoder's interface (``feed(bytes) -> events``, ``flush()``, an
``overflowed`` flag) and yields :class:`ServerSentEvent` values with ``event=None`` and one
JSON document as ``data``, so every stream reader reads every framing the same way.

- NDJSON (Ollama's ``/api/chat``, ``/api/generate``): one JSON object per line.
  https://github.com/ollama/ollama/blob/main/docs/api.md ("a stream of JSON objects")
- JSON array (Gemini's ``:streamGenerateContent`` without ``alt=sse``): ``[{...}\\r\\n,{...}]``
  arriving in arbitrary pieces; each top-level element is one response chunk.
  https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent

Bytes are scanned, never decoded, until an element is complete: memory is bounded by the
largest element (capped like an SSE event), time is linear in the stream.
"""

from __future__ import annotations

import re

from or_middleware.genai.sse import DEFAULT_MAX_EVENT_CHARS, ServerSentEvent

__all__ = ["JSONArrayDecoder", "NDJSONDecoder", "decoder_for_framing"]


_STRUCTURAL = re.compile(rb'["\\\\{}\[\]]')


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class NDJSONDecoder:
    """One event per non-blank line (``\\n``, ``\\r\\n``)."""

    __slots__ = ("_discarding", "_max", "_pending", "overflowed")

    def __init__(self, *, max_event_chars: int = DEFAULT_MAX_EVENT_CHARS) -> None:
        self._max = max_event_chars
        self._pending = bytearray()
        self._discarding = False  # inside an over-long line: drop bytes up to its end
        self.overflowed = False

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
                self._pending.clear()
            elif len(self._pending) + end - start > self._max:  # a whole over-long line in one chunk
                self._pending.clear()
                self.overflowed = True
            else:
                self._pending += data[start:end]
                self._emit(events)
            start = end + 1
        if not self._discarding:
            self._pending += data[start:]
            if len(self._pending) > self._max:
                self._pending.clear()
                self._discarding = True
                self.overflowed = True
        return events

    def flush(self) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        if not self._discarding:
            self._emit(events)
        self._discarding = False
        return events

    def _emit(self, events: list[ServerSentEvent]) -> None:
        line = bytes(self._pending).strip()
        self._pending.clear()
        if line:
            events.append(ServerSentEvent(None, _text(line)))


class JSONArrayDecoder:
    """The elements of one top-level JSON array, as they complete.

    A small state machine that jumps between structural bytes (quotes, backslashes,
    brackets and braces) with one regex: depth of nesting, inside a string or not, after a
    backslash or not. Objects and arrays at the top level are the elements; anything else
    between them (commas, whitespace) is skipped. A body that is not an array (an error
    object sent with a 200) comes out whole, as one event, at flush.
    """

    __slots__ = ("_depth", "_escape", "_in_string", "_max", "_mode", "_pending", "_skip", "overflowed")

    def __init__(self, *, max_event_chars: int = DEFAULT_MAX_EVENT_CHARS) -> None:
        self._max = max_event_chars
        self._pending = bytearray()  # the current element's bytes so far
        self._mode = "start"  # start | array | other
        self._depth = 0  # nesting inside the top-level array; 0 = between elements
        self._in_string = False
        self._escape = False  # the chunk ended in a string's backslash
        self._skip = False  # the current element overflowed: drop it
        self.overflowed = False

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        if not data:  # nothing to scan; an empty chunk must not drop a pending backslash
            return events
        if self._mode == "start":
            stripped = data.lstrip()
            if not stripped:
                return events
            if stripped[:1] == b"[":
                self._mode = "array"
                data = stripped[1:]
            else:
                self._mode = "other"
        if self._mode == "other":
            self._keep(data)
            return events
        start = 0 if self._depth else -1  # where the current element starts in this chunk
        escaped = 0 if self._escape else -1  # position of the byte after a backslash
        self._escape = False
        for match in _STRUCTURAL.finditer(data):
            i = match.start()
            byte = data[i]
            if self._in_string:
                if i == escaped:
                    continue
                if byte == 0x5C:
                    escaped = i + 1
                    if escaped == len(data):
                        self._escape = True  # the escaped byte starts the next chunk
                elif byte == 0x22:
                    self._in_string = False
                continue
            if byte == 0x22:
                self._in_string = True
            elif byte in (0x7B, 0x5B):  # { [
                if self._depth == 0:
                    start = i
                    self._skip = False
                self._depth += 1
            elif byte in (0x7D, 0x5D):  # } ]
                if self._depth == 0:
                    if byte == 0x5D:
                        self._mode = "done"  # the top-level array closed
                        break
                    continue
                self._depth -= 1
                if self._depth == 0:
                    self._keep(data[start : i + 1])
                    if not self._skip and self._pending:
                        events.append(ServerSentEvent(None, _text(bytes(self._pending))))
                    self._pending.clear()
                    start = -1
        if self._depth and start >= 0:
            self._keep(data[start:])
        return events

    def _keep(self, piece: bytes) -> None:
        if self._skip:
            return
        self._pending += piece
        if len(self._pending) > self._max:
            self._pending.clear()
            self._skip = True
            self.overflowed = True

    def flush(self) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        if self._mode == "other" and not self._skip and self._pending.strip():
            events.append(ServerSentEvent(None, _text(bytes(self._pending).strip())))
        self._pending.clear()
        return events


def decoder_for_framing(framing: str) -> NDJSONDecoder | JSONArrayDecoder:
    return NDJSONDecoder() if framing == "ndjson" else JSONArrayDecoder()
