"""What every stream reader shares: lazy decoding, time to first chunk, content budget, the end.

A format's reader subclasses :class:`EventStreamReader` and writes only ``handle`` (one
decoded event), ``write_output`` (the reassembled output, when content is captured) and,
for speed, ``is_routine`` (an event that carries nothing we still need).

Lazy decoding (issue 15, P3): once the first content chunk has set the time to first chunk,
and when no destination captures content, the reader is ``skipping``: an event that
``is_routine`` says carries no finish reason, usage or error is counted and skipped without
``json.loads``. The checks look for a JSON key followed by a non-null value in the raw event
text; a JSON string cannot hold an unescaped quote, so a key marker never matches text inside
a string value. While skipping, :mod:`or_middleware.genai.scanning` counts whole runs of
routine events from their bytes, before they are even split into events; the class
attributes below (``fact_keys``, ``routine_values``, ``routine_events``, ``routine_prefixes``)
are what both levels judge by.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from or_middleware.genai.content import DEFAULT_MAX_CONTENT_CHARS, ContentBudget
from or_middleware.genai.record import GenerationRecord

__all__ = ["EventStreamReader", "has_value"]


# After a key: optional whitespace, the colon, optional whitespace (linear: no nesting).
_COLON = re.compile(r"[ \t\r\n]*:[ \t\r\n]*")


def has_other_value(data: str, marker: str, value: str) -> bool:
    """Whether ``marker`` (a key's text ending in its closing quote, e.g. ``'"done"'``) is
    followed somewhere in ``data`` by a colon and a value that does not start with ``value``."""
    start = 0
    while (i := data.find(marker, start)) >= 0:
        start = i + len(marker)
        colon = _COLON.match(data, start)
        if colon is not None and not data.startswith(value, colon.end()):
            return True
    return False


def has_value(data: str, *markers: str) -> bool:
    """Whether one of ``markers`` (a key's text ending in its closing quote, e.g. ``'"usage"'``)
    is followed by a colon and a value other than ``null`` somewhere in ``data``.

    Plain ``str.find`` per marker: cheaper than one regex alternation over the same text."""
    return any(has_other_value(data, marker, "null") for marker in markers)


class EventStreamReader:
    """Reads one response's stream events into the record (the StreamReader protocol)."""

    end_marker: ClassVar[str] = "its end"  # what a complete stream ends with (truncation message)
    # Keys whose non-null presence makes an event worth decoding after the first content.
    fact_keys: ClassVar[tuple[str, ...]] = ('"usage"', '"error"')
    # (key, value): the key with any other value makes an event worth decoding (Ollama's "done").
    routine_values: ClassVar[tuple[tuple[str, str], ...]] = ()
    # Formats with named events judge by the name alone: these names (or names starting with
    # one of the prefixes) carry content only. None: the format's events are unnamed.
    routine_events: ClassVar[frozenset[str] | None] = None
    routine_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS) -> None:
        self._record = record
        self._capture = record.capture_content
        self._budget = ContentBudget(max_content_chars)
        self._ended = False
        # Routine events may be counted without decoding: the first content was timed, no
        # destination wants the content, the stream has not ended.
        self.skipping = False

    # -- the protocol ------------------------------------------------------------------------

    def on_event(self, event: str | None, data: str, now: float) -> None:
        if self._ended:
            return
        if self.skipping and data[:1] == "{" and self.is_routine(event, data):
            self._record.chunk_count += 1
            return
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if type(payload) is dict:  # what json.loads gives for an object (no ABC check per event)
            self.handle(event, payload, now)
        else:
            self.handle_other(event, data, now)

    def finalize(self) -> None:
        """Write what was reassembled so far into the record and ignore later events.

        No judgement on completeness: that is on_end's (a consumer that stops reading
        early is not necessarily an error, the caller decides).
        """
        if self._ended:
            return
        self._ended = True
        self.skipping = False
        if self._capture:
            self.write_output()

    def on_end(self) -> None:
        self.finalize()
        if not self._record.completed:
            self._record.set_error("truncated", f"stream ended before {self.end_marker}")

    # -- for subclasses ----------------------------------------------------------------------

    def handle(self, event: str | None, payload: Mapping[str, Any], now: float) -> None:
        """One decoded JSON-object event."""
        raise NotImplementedError

    def handle_other(self, event: str | None, data: str, now: float) -> None:
        """An event whose data is not a JSON object ([DONE], a stray line): ignored by default;
        not ours to judge, a stray non-JSON line does not make the call fail."""

    def skip(self, count: int) -> None:
        """``count`` routine events were counted from their bytes (the scanner's fast path)."""
        self._record.chunk_count += count

    def is_routine(self, event: str | None, data: str) -> bool:
        """Whether this event (a JSON object, not yet decoded) can be counted and skipped.

        Named formats: its name is one of ``routine_events`` or starts with one of
        ``routine_prefixes``. Unnamed formats: it carries none of ``fact_keys`` with a value
        and each ``routine_values`` key only with its routine value."""
        names = self.routine_events
        if names is not None:
            return event is not None and (event in names or event.startswith(self.routine_prefixes))
        if has_value(data, *self.fact_keys):
            return False
        return not any(has_other_value(data, key, value) for key, value in self.routine_values)

    def write_output(self) -> None:
        """Put the reassembled output messages into the record (capture on)."""

    def first_chunk(self, now: float) -> None:
        if self._record.time_to_first_chunk is None:
            self._record.time_to_first_chunk = max(0.0, now - self._record.started_at)
            self.skipping = not self._capture and not self._ended
