"""HeldTraces: gathers a request's spans across batches so the console prints one tree per request.

A destination's batches follow its schedule, not requests: with small batches, a slow schedule or
an SDK that retries, a request's GenAI spans can arrive one batch before its server span. Spans
are held per trace until the trace's root (the server span: no parent, or a remote one) arrives,
then released together. Held spans are bounded in time (``hold_s``: a root that never comes, as
when the app's own instrumentation owns the server span, releases the trace as a partial tree)
and in number (``max_spans``: beyond it the oldest traces are released early). A span whose
parent was printed a moment ago (a background task that ran after the response) is released at
once as a continuation.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan

DEFAULT_HOLD_S = 15.0
DEFAULT_MAX_SPANS = 2000
REMEMBERED_SPAN_IDS = 10_000  # printed span ids, to recognise a late child as a continuation


@dataclass
class TraceGroup:
    """Spans of one trace released together, and why now."""

    trace_id: int
    spans: list[ReadableSpan]
    reason: str = "complete"  # complete | continued | partial


@dataclass
class _Held:
    since: float
    spans: list[ReadableSpan] = field(default_factory=list)


def is_root(span: ReadableSpan) -> bool:
    parent = span.parent
    return parent is None or parent.is_remote


class HeldTraces:
    """Not thread-safe: the console exporter calls it under its own lock."""

    def __init__(self, hold_s: float = DEFAULT_HOLD_S, max_spans: int = DEFAULT_MAX_SPANS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self.max_spans = max_spans
        self._clock = clock
        self._held: OrderedDict[int, _Held] = OrderedDict()  # oldest first
        self._count = 0
        self._printed: OrderedDict[int, None] = OrderedDict()

    def add(self, spans: Sequence[ReadableSpan]) -> list[TraceGroup]:
        """Take a batch; return the groups ready to print, in arrival order."""
        now = self._clock()
        ready: list[TraceGroup] = []
        by_trace: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        for span in spans:
            by_trace.setdefault(span.context.trace_id, []).append(span)
        for trace_id, members in by_trace.items():
            if any(is_root(s) for s in members):
                held = self._take(trace_id)
                ready.append(self._release(trace_id, held + members, "complete"))
            elif trace_id not in self._held and self._continues_printed(members):
                ready.append(self._release(trace_id, members, "continued"))
            else:
                entry = self._held.setdefault(trace_id, _Held(now))
                entry.spans.extend(members)
                self._count += len(members)
        ready.extend(self._overflow())
        return ready

    def expired(self) -> list[TraceGroup]:
        """Traces held longer than ``hold_s``: released as partial trees."""
        now = self._clock()
        out = []
        while self._held:
            trace_id, entry = next(iter(self._held.items()))
            if now - entry.since < self.hold_s:
                break
            out.append(self._release(trace_id, self._take(trace_id), "partial"))
        return out

    def due_in(self) -> float | None:
        """Seconds until the oldest held trace expires, None when nothing is held."""
        if not self._held:
            return None
        entry = next(iter(self._held.values()))
        return max(0.0, entry.since + self.hold_s - self._clock())

    def drain(self) -> list[TraceGroup]:
        """Everything still held (shutdown)."""
        return [self._release(t, self._take(t), "partial") for t in list(self._held)]

    @property
    def held_spans(self) -> int:
        return self._count

    # -- internals --------------------------------------------------------------------------

    def _take(self, trace_id: int) -> list[ReadableSpan]:
        entry = self._held.pop(trace_id, None)
        if entry is None:
            return []
        self._count -= len(entry.spans)
        return entry.spans

    def _release(self, trace_id: int, spans: list[ReadableSpan], reason: str) -> TraceGroup:
        self._remember(s.context.span_id for s in spans)
        return TraceGroup(trace_id, spans, reason)

    def _overflow(self) -> list[TraceGroup]:
        out = []
        while self._count > self.max_spans and self._held:
            trace_id = next(iter(self._held))
            out.append(self._release(trace_id, self._take(trace_id), "partial"))
        return out

    def _remember(self, span_ids: Iterable[int]) -> None:
        printed = self._printed
        for span_id in span_ids:
            printed[span_id] = None
        while len(printed) > REMEMBERED_SPAN_IDS:
            printed.popitem(last=False)

    def _continues_printed(self, members: list[ReadableSpan]) -> bool:
        """Every top span of the group (parent not in the group) has a parent printed a moment ago."""
        ids = {m.context.span_id for m in members}
        tops = [m.parent.span_id for m in members if m.parent is not None and m.parent.span_id not in ids]
        return bool(tops) and all(parent in self._printed for parent in tops)
