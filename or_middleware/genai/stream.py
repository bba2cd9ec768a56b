"""What every stream reader shares: lazy decoding, time to first chunk, content budget, the end.

A format's reader subclasses :class:`EventStreamReader` and writes only ``handle`` (one
decoded event), ``write_output`` (the reassembled output, when content is captured) and,
for speed, ``is_routine`` (an event that carries nothing we still need).

Lazy decoding (issue 15, P3): once the first content chunk has set the time to first chunk,
and when no destination captures content, an event that ``is_routine`` says carries no
finish reason, usage or error is counted and skipped without ``json.loads``. The checks look
for a JSON key followed by a non-null value in the raw event text; a JSON string cannot hold
an unescaped quote, so a key marker never matches text inside a string value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from or_middleware.genai.content import DEFAULT_MAX_CONTENT_CHARS, ContentBudget
from or_middleware.genai.record import GenerationRecord

__all__ = ["EventStreamReader", "has_value"]


def has_value(data: str, *markers: str) -> bool:
    """Whether one of ``markers`` (a key's text ending in its closing quote, e.g. ``'"usage"'``)
    is followed by a colon and a value other than ``null`` somewhere in ``data``.

    Plain ``str.find`` per marker: cheaper than one regex alternation over the same text."""
    for marker in markers:
        start = 0
        while (i := data.find(marker, start)) >= 0:
            start = i + len(marker)
            rest = data[start : start + 8].lstrip()
            if rest[:1] == ":" and not rest[1:].lstrip().startswith("null"):
                return True
    return False


class EventStreamReader:
    """Reads one response's stream events into the record (the StreamReader protocol)."""

    end_marker: ClassVar[str] = "its end"  # what a complete stream ends with (truncation message)
    # Keys whose non-null presence makes an event worth decoding after the first content.
    fact_keys: ClassVar[tuple[str, ...]] = ('"usage"', '"error"')

    def __init__(self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS) -> None:
        self._record = record
        self._capture = record.capture_content
        self._budget = ContentBudget(max_content_chars)
        self._ended = False

    # -- the protocol ------------------------------------------------------------------------

    def on_event(self, event: str | None, data: str, now: float) -> None:
        if self._ended:
            return
        if (
            not self._capture
            and self._record.time_to_first_chunk is not None
            and data[:1] == "{"
            and self.is_routine(event, data)
        ):
            self._record.chunk_count += 1
            return
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if isinstance(payload, Mapping):
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

    def is_routine(self, event: str | None, data: str) -> bool:
        """Whether this event (a JSON object, not yet decoded) can be counted and skipped:
        it carries none of ``fact_keys``. Formats with named events override this."""
        return not has_value(data, *self.fact_keys)

    def write_output(self) -> None:
        """Put the reassembled output messages into the record (capture on)."""

    def first_chunk(self, now: float) -> None:
        if self._record.time_to_first_chunk is None:
            self._record.time_to_first_chunk = max(0.0, now - self._record.started_at)
