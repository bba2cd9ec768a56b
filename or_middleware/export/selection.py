"""SpanSelection: which spans of a batch a destination keeps (filter rules, sampling).

Decisions are made per GenAI span and remembered per trace, so a trace is kept or dropped
whole: the server span of a request follows its GenAI spans (kept when at least one of them
is). Sampling is deterministic on the session id (else the trace id): every span of a session
gets the same decision, in every process, and a destination with a lower rate keeps a subset
of what one with a higher rate keeps. Runs on the exporter thread.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from or_middleware import spans as contract
from or_middleware.export.draft import is_genai_span
from or_middleware.export.filters import FilterRules

_MAX_REMEMBERED_TRACES = 10_000


def sampling_key(session_id: object, trace_id: int) -> str:
    return f"session:{session_id}" if session_id else f"trace:{trace_id:032x}"


def sampled(key: str, rate: float) -> bool:
    """True for a fraction ``rate`` of keys, the same answer for the same key everywhere."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


@dataclass
class Selected:
    spans: list[ReadableSpan]
    filtered: int = 0  # dropped by filter rules (and spans of traces whose GenAI spans were)
    sampled_out: int = 0


class SpanSelection:
    """``llm_traces_only`` (``SPANS=traces``): a span whose trace has no GenAI span is left out
    (not counted: it is out of the destination's scope, like a server span for ``SPANS=genai``)."""

    def __init__(self, rules: FilterRules | None = None, sample_rate: float = 1.0, *,
                 llm_traces_only: bool = False) -> None:
        self._rules = rules if rules is not None and rules.rules else None
        self._rate = sample_rate
        self._llm_traces_only = llm_traces_only
        # trace id -> whether any GenAI span of it was kept, and if not, why ("filtered" | "sampled")
        self._traces: OrderedDict[int, str] = OrderedDict()

    @property
    def selects_everything(self) -> bool:
        return self._rules is None and self._rate >= 1.0 and not self._llm_traces_only

    def select(self, batch: Sequence[ReadableSpan]) -> Selected:
        if self.selects_everything:
            return Selected(list(batch))
        result = Selected([])
        # GenAI spans first: they decide for the other spans of their trace in the same batch.
        genai = [s for s in batch if is_genai_span(s)]
        others = [s for s in batch if not is_genai_span(s)]
        for span in genai:
            verdict = self._judge_genai(span)
            self._remember(span.context.trace_id, verdict)
            self._count(result, span, verdict)
        for span in others:
            verdict = self._traces.get(span.context.trace_id)
            if verdict is None and self._llm_traces_only:
                continue
            if verdict is None:  # a trace without GenAI spans: only sampling applies
                verdict = "kept" if sampled(sampling_key(None, span.context.trace_id), self._rate) else "sampled"
            self._count(result, span, verdict)
        return result

    def _judge_genai(self, span: ReadableSpan) -> str:
        attributes = span.attributes or {}
        if not sampled(sampling_key(attributes.get(contract.SESSION_ID), span.context.trace_id), self._rate):
            return "sampled"
        if self._rules is not None:
            is_error = span.status.status_code is StatusCode.ERROR
            if not self._rules.matches(attributes, is_error):
                return "filtered"
        return "kept"

    def _remember(self, trace_id: int, verdict: str) -> None:
        if self._traces.get(trace_id) == "kept":
            self._traces.move_to_end(trace_id)
            return  # one kept GenAI span keeps the trace's other spans
        self._traces[trace_id] = verdict
        self._traces.move_to_end(trace_id)
        while len(self._traces) > _MAX_REMEMBERED_TRACES:
            self._traces.popitem(last=False)

    @staticmethod
    def _count(result: Selected, span: ReadableSpan, verdict: str) -> None:
        if verdict == "kept":
            result.spans.append(span)
        elif verdict == "filtered":
            result.filtered += 1
        else:
            result.sampled_out += 1
