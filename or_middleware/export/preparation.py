"""SpanPreparation: what one destination makes of a batch, on its exporter thread.

Selection first (filter rules, sampling: whole traces), then each kept span becomes a draft
that the destination's transforms edit in order: re-parenting (``SPANS=genai``), privacy
(strip content), PII redaction, resource attributes, dialect, and last the secret scrub, so
nothing a transform adds escapes it.

Destinations configured alike (same scope, privacy, redaction, resource, names, dialect) share
one :class:`SharedTransforms` when its transforms keep no state between spans: a span is then
prepared once, by whichever of those destinations' threads gets to it first, not once per
destination. Selection stays each destination's own (its rules, its sampling rate).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan

from or_middleware.export.draft import DraftTransform, SpanDraft
from or_middleware.export.selection import Selected, SpanSelection

# Prepared spans kept for the other destinations of a group: one that never asks (it sampled the
# span out, its queue was full) leaves an entry behind, forgotten oldest first past this bound.
MAX_SHARED_SPANS = 2048


def run_transforms(transforms: Sequence[DraftTransform], span: ReadableSpan) -> ReadableSpan:
    draft = SpanDraft(span)
    for transform in transforms:
        transform(draft)
    return draft.build()


class SharedTransforms:
    """One stateless transform chain used by ``consumers`` destinations; each span is prepared once."""

    def __init__(self, transforms: Sequence[DraftTransform]) -> None:
        self.transforms = tuple(transforms)
        self.consumers = 0  # destinations using it (counted as they are built)
        self._done: dict[int, list[object]] = {}  # id(span) -> [span, prepared, destinations served]
        self._lock = threading.Lock()

    def transform(self, span: ReadableSpan) -> ReadableSpan:
        consumers = self.consumers
        if consumers < 2:
            return run_transforms(self.transforms, span)
        key = id(span)
        entry = self._done.get(key)
        if entry is not None and entry[0] is span:  # the very span (an id can be reused once it is gone)
            entry[2] += 1  # type: ignore[operator]
            if entry[2] >= consumers:  # type: ignore[operator]
                self._done.pop(key, None)  # every destination of the group has it
            return entry[1]  # type: ignore[return-value]
        prepared = run_transforms(self.transforms, span)
        with self._lock:
            while len(self._done) >= MAX_SHARED_SPANS:
                self._done.pop(next(iter(self._done)), None)
            self._done[key] = [span, prepared, 1]
        return prepared


class SpanPreparation:
    def __init__(self, selection: SpanSelection, transforms: Sequence[DraftTransform] | SharedTransforms) -> None:
        self.selection = selection
        self.shared = transforms if isinstance(transforms, SharedTransforms) else None
        self.transforms = self.shared.transforms if self.shared is not None else tuple(transforms)  # type: ignore[union-attr]

    def prepare(self, batch: Sequence[ReadableSpan]) -> Selected:
        selected = self.selection.select(batch)
        selected.spans = [self.transform(span) for span in selected.spans]
        return selected

    def transform(self, span: ReadableSpan) -> ReadableSpan:
        if self.shared is not None:
            return self.shared.transform(span)
        return run_transforms(self.transforms, span)
