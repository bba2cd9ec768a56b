"""Watches one response's bytes as they pass through and fills the GenerationRecord.

The transport wrapper calls ``feed`` for every chunk the app reads and then exactly one of
``finish`` (the body ended normally) or ``abandon`` (it did not). Nothing here may raise into
the app's I/O path: every parser failure becomes ``error.type = parse_error`` on the record.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from or_middleware.genai.content import DEFAULT_MAX_CONTENT_CHARS
from or_middleware.genai.decoding import ContentDecoder, UnsupportedEncoding, decoder_for
from or_middleware.genai.formats import StreamReader, WireFormat
from or_middleware.genai.record import GenerationRecord
from or_middleware.genai.scanning import BATCH_BUDGET, CHUNK_OVERHEAD, EventScanner

__all__ = ["DEFAULT_MAX_DECODED_BYTES", "DEFAULT_MAX_JSON_BYTES", "ResponseObserver"]

DEFAULT_MAX_JSON_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024
# Ends of an oversized body kept for formats with read_oversized: the head must hold one
# whole embedding vector (3072 floats as JSON text is ~60 KiB), the tail the usage.
_HEAD_BYTES = 256 * 1024
_TAIL_BYTES = 64 * 1024

_log = logging.getLogger(__name__)
_logged_parse_error = False


class _DecodedLimit(Exception):
    """The decompressed body outgrew its budget (a compression bomb, or just far too big)."""


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


_NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines"})


def stream_framing(fmt: WireFormat, record: GenerationRecord, media: str) -> str | None:
    """How a successful response is framed: "sse", "ndjson", "json_array", or None (one JSON body).

    The Content-Type decides when it names a stream; a request that asked for a stream and
    got something else is read in the format's own stream framing (``stream_framing``, SSE
    by default), or, under a JSON type, as the format's JSON stream (Gemini's JSON array)."""
    if media == "text/event-stream":
        return "sse"
    if media in _NDJSON_TYPES:
        return "ndjson"
    if not record.stream:
        return None
    if media == "application/json" or media.endswith("+json"):
        return getattr(fmt, "json_stream_framing", None)
    return getattr(fmt, "stream_framing", "sse")


class ResponseObserver:
    """Per-response parser state; holds at most one pending SSE event or a capped JSON body.

    ``skipped_reason`` tells why nothing was parsed (unsupported Content-Encoding, a
    redirect, ...), for the caller's debug logging; the record then carries only the status.
    """

    def __init__(
        self,
        fmt: WireFormat,
        record: GenerationRecord,
        *,
        status_code: int,
        content_type: str | None,
        content_encoding: str | None = None,
        max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
        max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
    ) -> None:
        self._fmt = fmt
        self._record = record
        self._status = status_code
        self._max_json = max_json_bytes
        self._max_decoded = max_decoded_bytes
        self._decoded = 0
        self._body: bytearray | None = bytearray()
        self._head: bytes | None = None  # first bytes of an oversized body
        self._tail: bytearray | None = None  # last bytes of an oversized body
        self._reader: StreamReader | None = None
        self._scanner: EventScanner | None = None
        # Chunks held for a bulk scan (a stream whose reader skips routine events): a plain
        # list and a byte count, the cheapest per-chunk path there is; see genai/scanning.py.
        self._batch: list[bytes] = []
        self._batched = 0
        self._holding = False  # decoded bytes go to the batch (the scanner is ready)
        self._last = b""  # the last chunk fed before the batch (see last_byte)
        self._batching = False  # the same, for raw chunks in feed (no content decoder)
        self._decoder: ContentDecoder | None = None
        self._active = True  # still parsing
        self._done = False  # finish/abandon already ran
        self.skipped_reason: str | None = None
        record.status_code = status_code
        try:
            self._decoder = decoder_for(content_encoding)
        except UnsupportedEncoding as exc:
            self._skip(f"unsupported content-encoding {exc}")
        if 300 <= status_code < 400:
            self._skip("redirect")
        # A stream is parsed as one only on success: an error status is judged by the
        # status and its (JSON) body, never as a "truncated" stream.
        framing = stream_framing(fmt, record, _media_type(content_type)) if status_code < 300 else None
        if framing is not None:
            record.stream = True
            self._body = None
            try:
                self._reader = fmt.stream_reader(record, max_content_chars=max_content_chars)
                self._scanner = EventScanner(framing, self._reader)
            except Exception:
                self._parse_error()

    # --- the app-facing path: never raises -------------------------------------------------

    def feed(self, chunk: bytes, now: float | None = None) -> None:
        """One chunk as the app read it; ``now`` is time.perf_counter() (taken here when None,
        and only when it can matter: chunks held for a bulk scan need no time)."""
        if self._batching:  # the hot path of a long stream: hold the chunk, nothing else
            self._batch.append(chunk)
            self._batched += len(chunk) + CHUNK_OVERHEAD
            if self._batched > BATCH_BUDGET:
                self._scan_batch(time.perf_counter())
            return
        if not self._active or not chunk:
            return
        self._last = chunk
        if now is None:
            now = time.perf_counter()
        try:
            if self._decoder is None:
                self._consume(chunk, now)
            else:
                self._decoder.feed(chunk, lambda out: self._consume_decoded(out, now))
        except _DecodedLimit:
            self._stop()
            self._record.set_error("decompression_limit", "decoded response exceeded the parse limit")
        except Exception:
            self._parse_error()

    @property
    def last_byte(self) -> bytes:
        """The last byte of the chunks fed so far (b"" before any)."""
        return (self._batch[-1] if self._batching and self._batch else self._last)[-1:]

    def settle(self, now: float | None = None) -> None:
        """Judge the chunks held for a bulk scan now, so the record is up to date (before the
        caller reads ``completed`` or ``finish_reasons`` mid-stream). Never raises."""
        if self._batch:
            self._scan_batch(time.perf_counter() if now is None else now)

    def finish(self, now: float) -> None:
        """The body ended normally (the upstream closed it after the last byte)."""
        if self._done:
            return
        self.settle(now)
        self._done = True
        try:
            if self._active and self._decoder is not None:
                try:
                    self._decoder.flush(lambda out: self._consume_decoded(out, now))
                except _DecodedLimit:
                    self._stop()
                    self._record.set_error("decompression_limit", "decoded response exceeded the parse limit")
            if self._scanner is not None:
                self._finish_stream(now)
            elif self._active and self._tail is not None:
                self._finish_oversized()
            elif self._active:
                self._finish_json()
            elif self._status < 400 and self.skipped_reason is None and self._record.error_type is None:
                # Parsing stopped early without an error of its own: the body outgrew the limit.
                self._record.set_error("response_too_large", "response body exceeded the parse limit")
        except Exception:
            self._parse_error()
        finally:
            self._stop()
            self._error_status()

    def abandon(self, now: float, *, error_type: str | None = None, message: str | None = None) -> None:
        """The body was not read to its end (consumer stopped early, cancellation, upstream
        disconnect, garbage collection).

        Keeps everything learned so far (tokens, finish reasons, and the partial output of a
        stream) but does not by itself make the call an error: pass ``error_type`` (e.g.
        "truncated", "cancelled", an exception name) when the caller considers it one. An
        error status is recorded as ``http_<status>`` regardless. A JSON body that had in
        fact arrived whole is still read.
        """
        if self._done:
            return
        self.settle(now)
        self._done = True
        try:
            if error_type:
                self._record.set_error(error_type, message)
            if self._scanner is not None:
                if self._reader is not None and self.skipped_reason is None:
                    self._reader.finalize()
            elif self._active and self._body:
                body = _loads(bytes(self._body))
                if body is not None:
                    if self._status >= 400:
                        self._fmt.read_error(body, self._record)
                    elif self._status < 300:
                        self._fmt.read_response(body, self._record)
        except Exception:
            self._parse_error()
        finally:
            self._stop()
            self._error_status()

    # --- internals ------------------------------------------------------------------------

    def _consume_decoded(self, data: bytes, now: float) -> None:
        self._decoded += len(data)
        if self._decoded > self._max_decoded:
            raise _DecodedLimit
        self._consume(data, now)

    def _consume(self, data: bytes, now: float) -> None:
        scanner = self._scanner
        if scanner is not None:
            if self._holding:  # a content-encoded body: its decoder's output is held
                self._hold(data, now)
                return
            rest = scanner.feed(data, now)
            if scanner.ready:
                # The reader skips routine events and the decoder sits at an event boundary:
                # from here on chunks are held and judged in bulk.
                self._holding = True
                self._batching = self._decoder is None
                if rest:
                    self._hold(rest, now)
        elif self._tail is not None:
            # Past the limit: keep only a rolling window of the last bytes.
            tail = self._tail
            tail += data
            if len(tail) > _TAIL_BYTES:
                del tail[: len(tail) - _TAIL_BYTES]
        elif self._body is not None:
            if len(self._body) + len(data) <= self._max_json:
                self._body += data
            elif hasattr(self._fmt, "read_oversized"):
                # A format that can read a huge body from its ends (embeddings batches)
                # gets the head and a rolling tail; everything between is dropped.
                self._head = bytes(self._body[:_HEAD_BYTES])
                self._tail = bytearray()
                self._body = None
                self._consume(data, now)
            else:
                # Stop keeping bytes at once; the error is recorded only if the body then
                # ends, since an abandoned body is judged by abandon().
                self._body = None
                self._active = False

    def _hold(self, data: bytes, now: float) -> None:
        self._batch.append(data)
        self._batched += len(data) + CHUNK_OVERHEAD
        if self._batched > BATCH_BUDGET:
            self._scan_batch(now)

    def _scan_batch(self, now: float) -> None:
        """Hand the held chunks to the scanner as one run; never raises (app's I/O path)."""
        batch, self._batch, self._batched = self._batch, [], 0
        if self._batching:  # raw chunks: the last one is the last byte fed
            self._last = batch[-1]
        self._holding = self._batching = False
        scanner = self._scanner
        if scanner is None or not self._active:
            return
        try:
            scanner.scan(batch[0] if len(batch) == 1 else b"".join(batch), now)
            self._holding = scanner.ready
            self._batching = self._holding and self._decoder is None
        except Exception:
            self._parse_error()

    def _finish_stream(self, now: float) -> None:
        reader = self._reader
        if reader is None or self.skipped_reason is not None:
            return
        if self._active and self._scanner is not None:
            self.settle(now)  # what the content decoder's flush just added
            self._scanner.flush(now)
        reader.on_end()

    def _finish_json(self) -> None:
        raw = bytes(self._body or b"")
        self._body = None
        record = self._record
        if self._status >= 400:
            body = _loads(raw)
            if body is not None:
                self._fmt.read_error(body, record)
            if record.error_type is None:
                text = raw[:1024].decode("utf-8", "replace").strip()
                record.set_error(f"http_{self._status}", text or None)
            return
        if not raw.strip():
            if self._status not in (204, 205):
                record.set_error("invalid_json", "empty response body")
            return
        body = _loads(raw)
        if body is None:
            record.set_error("invalid_json", "response body is not valid JSON")
            return
        self._fmt.read_response(body, record)

    def _finish_oversized(self) -> None:
        head, tail = self._head or b"", bytes(self._tail or b"")
        self._head = self._tail = None
        if self._status >= 400:
            return  # _error_status records it; such an error body is not worth reading
        read_oversized = getattr(self._fmt, "read_oversized", None)
        if read_oversized is None or not read_oversized(head, tail, self._record):
            self._record.set_error("response_too_large", "response body exceeded the parse limit")

    def _error_status(self) -> None:
        if self._status >= 400:
            self._record.set_error(f"http_{self._status}")

    def _skip(self, reason: str) -> None:
        if self.skipped_reason is None:
            self.skipped_reason = reason
        self._stop()

    def _stop(self) -> None:
        self._active = False
        self._holding = self._batching = False
        self._batch = []
        self._batched = 0
        self._body = None
        self._head = self._tail = None

    def _parse_error(self) -> None:
        global _logged_parse_error
        if not _logged_parse_error:  # once per process: a broken parser must not flood logs
            _logged_parse_error = True
            _log.warning("or_middleware: failed to parse an LLM response", exc_info=True)
        self._stop()
        self._record.set_error("parse_error")


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        return None
