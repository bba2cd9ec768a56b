"""Byte-level scanning of a stream: routine events are counted, never split or decoded (issue 15, P3).

A stream reader only needs a few events decoded: the first content (time to first chunk), then
the ones carrying a finish reason, usage or an error (and every event when content is captured
for some destination). Once its reader is ``skipping``, the response observer holds the chunks
the app reads (up to :data:`BATCH_BUDGET` bytes) and hands them to :meth:`EventScanner.scan`
as one run of bytes. The run is judged with a handful of ``bytes.count`` calls (C speed over
the whole run, a few instructions per byte, instead of a decoder and a reader per event):

- it must be made of whole events of the usual shape, each one line ``data: {...}`` (unnamed
  SSE formats: chat, Gemini), or ``event: NAME`` then ``data: {...}`` (named: Anthropic,
  Responses, Cohere), or one ``{...}`` line (NDJSON: Ollama); ``\\n`` or ``\\r\\n`` lines;
- unnamed events must hold every ``fact_keys`` key only as ``"key":null`` and every
  ``routine_values`` key only with its routine value (compact JSON; anything else, e.g. a
  space after the colon, is not routine here and goes to the exact path); named events must
  all carry routine names.

Needles are anchored to line starts (a raw newline cannot occur inside a JSON string, so text
in a content string never forms one) or are quoted keys (a JSON string cannot hold an unescaped
quote, so content never forms a key). A run that passes is counted as that many chunks; one
that does not is split in halves at event boundaries and each half judged again, down to a few
KiB that are decoded event by event (the exact path: :class:`~or_middleware.genai.sse.SSEDecoder`
and the reader's ``on_event``). The last :data:`TAIL_EVENTS` events of a run are always decoded:
that is where a stream's facts are. Every byte goes to exactly one path, in order, and the
exact path only ever starts or resumes at an event boundary, so both paths see one stream.

Time and memory stay linear and bounded: each judgement is a fixed number of passes, halving
stops after a few levels, and the held chunks are capped per call (``CHUNK_OVERHEAD`` counts
against the budget per chunk, so a stream of 1-byte chunks cannot pile up list entries).
The JSON-array framing (Gemini without ``alt=sse``) is decoded event by event.
"""

from __future__ import annotations

from typing import Any

from or_middleware.genai.framing import JSONArrayDecoder, NDJSONDecoder, decoder_for_framing
from or_middleware.genai.sse import SSEDecoder

__all__ = ["BATCH_BUDGET", "CHUNK_OVERHEAD", "TAIL_EVENTS", "EventScanner"]

BATCH_BUDGET = 64 * 1024  # bytes of chunks held before they are scanned
CHUNK_OVERHEAD = 64  # what each held chunk counts against the budget besides its bytes
TAIL_EVENTS = 3  # finish reason, usage, end marker: decoded, never judged in bulk
_SMALLEST_SPLIT = 4 * 1024  # a failing run smaller than this is decoded, not halved again


class _Needles:
    """What a run of one reader's events is judged by, for one line ending (``\\n`` or ``\\r\\n``)."""

    __slots__ = (
        "data_line",
        "event_line",
        "event_start",
        "keys",
        "named",
        "nl",
        "object_line",
        "object_start",
        "prefix_lines",
        "routine_pairs",
        "sep",
    )

    def __init__(self, reader: Any, nl: bytes, sse: bool = True) -> None:
        self.nl = nl
        self.sep = nl + nl if sse else nl  # what ends an event: a blank line (SSE), a line end (NDJSON)
        self.named = reader.routine_events is not None
        self.data_line = nl + b"data:"
        self.object_line = nl + b"data: {"
        self.object_start = self.sep + b"data: {"  # an unnamed event starting after the previous one
        self.event_line = nl + b"event:"
        self.event_start = self.sep + b"event:"
        keys = [(k.encode(), f"{k}:null".encode()) for k in reader.fact_keys]
        keys += [(k.encode(), f"{k}:{v}".encode()) for k, v in reader.routine_values]
        self.keys = tuple(keys)
        names = sorted(reader.routine_events or ())
        # `event: NAME` directly followed by its object data line, at a line start.
        self.routine_pairs = tuple(b"event: " + n.encode() + nl + b"data: {" for n in names)
        self.prefix_lines = tuple(b"event: " + p.encode() for p in reader.routine_prefixes)


_NEEDLES: dict[tuple[type, bytes, bool], _Needles] = {}


def _needles(reader: Any, nl: bytes, sse: bool = True) -> _Needles:
    """Built once per reader class, line ending and framing (the class attributes do not change)."""
    key = (type(reader), nl, sse)
    needles = _NEEDLES.get(key)
    if needles is None:
        needles = _NEEDLES[key] = _Needles(reader, nl, sse)
    return needles


def _starts(data: bytes, needle: bytes, start: int, end: int, nl: bytes) -> int:
    """Occurrences of ``needle`` at a line start in ``data[start:end]`` (``start`` is one)."""
    return data.count(nl + needle, start, end) + data.startswith(needle, start, end)


def _keys_routine(data: bytes, start: int, end: int, keys: tuple[tuple[bytes, bytes], ...]) -> bool:
    for key, routine in keys:
        found = data.count(key, start, end)
        if found and data.count(routine, start, end) != found:
            return False
    return True


def _sse_events(data: bytes, start: int, end: int, n: _Needles) -> int:
    """Routine events in ``data[start:end]`` (whole SSE events), or -1 when not all are."""
    nl = n.nl
    if n.named:
        events = data.count(n.event_start, start, end) + data.startswith(b"event:", start, end)
        if (
            _starts(data, b"event:", start, end, nl) != events  # one event line per event
            or _starts(data, b"data:", start, end, nl) != events  # one data line per event
        ):
            return -1
        if n.prefix_lines:
            if _starts(data, b"data: {", start, end, nl) != events:
                return -1
            routine = sum(_starts(data, p, start, end, nl) for p in n.prefix_lines)
        else:
            routine = sum(_starts(data, p, start, end, nl) for p in n.routine_pairs)
        return events if routine == events else -1
    events = data.count(n.object_start, start, end) + data.startswith(b"data: {", start, end)
    if _starts(data, b"data:", start, end, nl) != events or _starts(data, b"event:", start, end, nl):
        return -1  # a multi-line, non-object or [DONE] event, or a named one (chat's `event: error`)
    return events if _keys_routine(data, start, end, n.keys) else -1


def _ndjson_events(data: bytes, start: int, end: int, n: _Needles) -> int:
    """Routine NDJSON lines in ``data[start:end]`` (whole lines), or -1 when not all are."""
    events = data.count(b"\n{", start, end) + data.startswith(b"{", start, end)
    if data.count(b"\n", start, end) != events:
        return -1  # a blank or indented line, or one that is no object
    return events if _keys_routine(data, start, end, n.keys) else -1


class EventScanner:
    """One response's framing decoder and stream reader, with the byte-level fast path."""

    __slots__ = ("_clean", "_crlf", "_decoder", "_lf", "_reader", "_sse")

    def __init__(self, framing: str, reader: Any) -> None:
        self._reader = reader
        self._sse = framing == "sse"
        self._decoder: SSEDecoder | NDJSONDecoder | JSONArrayDecoder = (
            SSEDecoder() if self._sse else decoder_for_framing(framing)
        )
        scannable = framing in ("sse", "ndjson") and hasattr(reader, "skipping")
        self._lf = _needles(reader, b"\n", self._sse) if scannable else None
        self._crlf = _needles(reader, b"\r\n") if scannable and self._sse else None
        self._clean = False  # the decoder sits at an event boundary (and scanning is possible)

    @property
    def ready(self) -> bool:
        """Chunks may now be held and judged in bulk by :meth:`scan`."""
        return self._clean and self._reader.skipping

    def feed(self, data: bytes, now: float) -> bytes:
        """The exact path for ``data``. Once the reader skips, only up to the first event
        boundary: what follows it is returned, to be held and judged in bulk by :meth:`scan`."""
        if self._lf is not None and not self._clean and self._reader.skipping:
            sep = (b"\r\n\r\n" if data.find(b"\r") >= 0 else b"\n\n") if self._sse else b"\n"
            cut = data.find(sep) + len(sep)
            if len(sep) <= cut < len(data):
                self._decode(data[:cut], now)
                if self._clean:
                    return data[cut:]
                data = data[cut:]
        self._decode(data, now)
        return b""

    def scan(self, data: bytes, now: float) -> None:
        """``data`` starts at an event boundary: count its routine events, decode the rest."""
        reader = self._reader
        if self._lf is None or not reader.skipping:
            self._decode(data, now)
            return
        needles = self._crlf if self._sse and data.find(b"\r") >= 0 else self._lf
        if needles is None:
            self._decode(data, now)
            return
        if needles.nl == b"\r\n" and not data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n"):
            self._decode(data, now)  # mixed line endings: the decoder knows them all
            return
        sep = needles.sep
        last = data.rfind(sep)
        cut = last + len(sep) if last >= 0 else 0  # after the last whole event
        for _ in range(TAIL_EVENTS):  # the last events are decoded: that is where the facts are
            before = data.rfind(sep, 0, cut - len(sep)) if cut > len(sep) else -1
            cut = before + len(sep) if before >= 0 else 0
        if cut > 0:
            self._judge(data, 0, cut, needles, now)
        self._decode(data[cut:] if cut else data, now)

    def flush(self, now: float) -> None:
        """End of stream: a last event without its terminating blank line still counts."""
        on_event = self._reader.on_event
        for event in self._decoder.flush():
            on_event(event.event, event.data, now)
        self._clean = False

    def _judge(self, data: bytes, start: int, end: int, needles: _Needles, now: float) -> None:
        """Count ``data[start:end]`` (whole events) if routine, else halve it or decode it."""
        count = _sse_events if self._sse else _ndjson_events
        events = count(data, start, end, needles)
        if events >= 0:
            self._reader.skip(events)
            return
        sep = needles.sep
        if end - start >= _SMALLEST_SPLIT:
            # At an event boundary near the middle; a first event longer than half the run has
            # none before the middle: then the first boundary after it (never a cut inside an event).
            half = (start + end) // 2
            found = data.rfind(sep, start, half)
            if found < 0:
                found = data.find(sep, half, end)
            middle = found + len(sep) if found >= 0 else end
            if start < middle < end:
                self._judge(data, start, middle, needles, now)
                self._judge(data, middle, end, needles, now)
                return
        self._decode(data[start:end], now)

    def _decode(self, data: bytes, now: float) -> None:
        if not data:
            return
        on_event = self._reader.on_event
        for event in self._decoder.feed(data):
            on_event(event.event, event.data, now)
        if self._lf is not None:
            # After a blank line (SSE) or a line end (NDJSON) the decoder holds nothing.
            self._clean = data.endswith((b"\n\n", b"\r\n\r\n")) if self._sse else data.endswith(b"\n")
