"""Incremental server-sent-events decoder (WHATWG "event stream" interpretation).

Bytes arrive in transport-sized chunks that may split a line, a CRLF pair or a UTF-8
character anywhere. The decoder keeps only the unfinished line and the unfinished event,
so memory is bounded by the largest single event, not by the stream, and both are capped
so a hostile upstream cannot make us buffer without limit.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_EVENT_CHARS", "SSEDecoder", "ServerSentEvent"]

# Generous: real events are a few KiB; a whole non-streamed-style answer in one event is
# still far below this.
DEFAULT_MAX_EVENT_CHARS = 16 * 1024 * 1024

# The three line terminators of the SSE grammar. str.splitlines() is not usable: it also
# splits on \x0b, \x1c, \x85, U+2028 ... which may legally appear raw inside JSON data.
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str | None  # the `event:` field, None when absent (the spec's default "message")
    data: str  # `data:` lines joined with "\n"
    id: str | None = None  # last event id seen so far in the stream (it persists per the spec)
    retry: int | None = None  # `retry:` of this event, when it carried a valid one


class SSEDecoder:
    """Feed raw bytes, get complete events.

    ``overflowed`` becomes true when a line or an event exceeded ``max_event_chars`` and was
    dropped; decoding resumes cleanly at the next event boundary.
    """

    __slots__ = (
        "_at_boundary",
        "_data",
        "_data_chars",
        "_decoder",
        "_discard_event",
        "_discard_line",
        "_event",
        "_last_id",
        "_max",
        "_pending",
        "_pending_chars",
        "_retry",
        "_skip_lf",
        "_started",
        "overflowed",
    )

    def __init__(self, *, max_event_chars: int = DEFAULT_MAX_EVENT_CHARS) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max = max_event_chars
        self._pending: list[str] = []  # pieces of the current, unterminated line
        self._pending_chars = 0
        self._skip_lf = False  # previous chunk ended in "\r": a leading "\n" completes that CRLF
        self._started = False  # BOM is only stripped at the very start of the stream
        self._discard_line = False
        self._discard_event = False
        self._data: list[str] = []
        self._data_chars = 0
        self._event: str | None = None
        self._retry: int | None = None
        self._last_id: str | None = None
        self.overflowed = False
        self._at_boundary = False  # all bytes so far ended in a blank line: nothing is pending

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        if self._at_boundary and data[-2:] == b"\n\n" and data.find(b"\r") < 0:
            return self._feed_blocks(data)
        events = self._feed_text(self._decoder.decode(data))
        # After "\n\n" no line, event, CRLF half or UTF-8 sequence is pending (a partial
        # sequence before a newline was already replaced): the next chunk may take the
        # block path. The BOM is only looked for before the first block.
        self._at_boundary = data[-2:] == b"\n\n" and self._started
        return events

    def _feed_blocks(self, data: bytes) -> list[ServerSentEvent]:
        """Whole "\n"-terminated events from a boundary: the usual one-line ``data: ...``
        event is cut out with C-speed bytes operations; any other block takes the line parser."""
        events: list[ServerSentEvent] = []
        for block in data[:-2].split(b"\n\n"):
            if block[:6] == b"data: " and block.find(b"\n") < 0 and len(block) <= self._max:
                events.append(ServerSentEvent(None, block[6:].decode("utf-8", "replace"), self._last_id))
            else:
                events += self._feed_text(block.decode("utf-8", "replace") + "\n\n")
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: a last line or event without its terminating blank line still counts."""
        events = self._feed_text(self._decoder.decode(b"", final=True))
        if self._pending:
            line = "".join(self._pending)
            self._pending.clear()
            self._pending_chars = 0
            self._line(line, events)
        self._discard_line = False
        self._dispatch(events)
        return events

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        if not text:
            return events
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return events
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        # Most chunks use "\n" alone: str.split is several times cheaper than the regex, same result.
        pieces = _LINE_END.split(text) if "\r" in text else text.split("\n")
        tail = pieces.pop()  # text after the last terminator: the start of an unfinished line
        if pieces:
            # Only this chunk is scanned for terminators, never the accumulated line, so a
            # long line arriving in many small chunks costs linear, not quadratic, time.
            first = pieces[0]
            if self._pending:
                self._pending.append(first)
                first = "".join(self._pending)
                self._pending.clear()
                self._pending_chars = 0
            if self._discard_line:
                self._discard_line = False
            else:
                self._line(first, events)
            for line in pieces[1:]:
                self._line(line, events)
            # "\r" at the very end may be the first half of a CRLF split across chunks.
            self._skip_lf = text[-1] == "\r"
        if tail and not self._discard_line:
            self._pending_chars += len(tail)
            if self._pending_chars > self._max:
                self._pending.clear()
                self._pending_chars = 0
                self._discard_line = True
                self._overflow()
            else:
                self._pending.append(tail)
        return events

    def _line(self, line: str, events: list[ServerSentEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if len(line) > self._max:
            self._overflow()
            return
        if line[0] == ":":
            return  # comment, e.g. OpenRouter's ": OPENROUTER PROCESSING" keep-alive
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_chars += len(value) + 1
            if self._data_chars > self._max:
                self._overflow()
                return
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:  # the spec ignores ids containing NUL
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # any other field name is ignored, as the spec requires

    def _overflow(self) -> None:
        self.overflowed = True
        self._discard_event = True
        self._data.clear()
        self._data_chars = 0

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        # The spec dispatches only events with data; an `event:` line alone is also kept, as
        # the OpenAI and Anthropic SDKs do, so a named event never vanishes silently.
        if not self._discard_event and (self._data or self._event is not None):
            events.append(ServerSentEvent(self._event, "\n".join(self._data), self._last_id, self._retry))
        self._data.clear()
        self._data_chars = 0
        self._event = None
        self._retry = None
        self._discard_event = False
