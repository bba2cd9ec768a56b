"""SpanPreparation: what one destination makes of a batch, on its exporter thread.

Selection first (filter rules, sampling: whole traces), then each kept span becomes a draft
that the destination's transforms edit in order: re-parenting (``SPANS=genai``), privacy
(strip content), PII redaction, resource attributes, dialect, and last the secret scrub, so
nothing a transform adds escapes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan

from or_middleware.export.draft import DraftTransform, SpanDraft
from or_middleware.export.selection import Selected, SpanSelection


class SpanPreparation:
    def __init__(self, selection: SpanSelection, transforms: Sequence[DraftTransform]) -> None:
        self.selection = selection
        self.transforms = tuple(transforms)

    def prepare(self, batch: Sequence[ReadableSpan]) -> Selected:
        selected = self.selection.select(batch)
        selected.spans = [self.transform(span) for span in selected.spans]
        return selected

    def transform(self, span: ReadableSpan) -> ReadableSpan:
        draft = SpanDraft(span)
        for transform in self.transforms:
            transform(draft)
        return draft.build()
