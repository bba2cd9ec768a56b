"""ConsoleTreeExporter: each trace of a batch as an indented tree on stderr."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from or_middleware import spans as contract

_SHOWN = (
    ("gen_ai.response.model", "served {}"),
    ("gen_ai.usage.input_tokens", "in {}"),
    ("gen_ai.usage.output_tokens", "out {}"),
    (contract.USAGE_COST, "${:.6f}"),
    ("gen_ai.response.time_to_first_chunk", "ttfc {:.3f}s"),
    ("gen_ai.response.finish_reasons", "finish {}"),
    (contract.USER_ID, "user {}"),
    (contract.SESSION_ID, "session {}"),
    ("error.type", "error {}"),
)


def _describe(span: ReadableSpan) -> str:
    duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    attributes = span.attributes or {}
    parts = [f"{span.name} [{span.kind.name}] {duration_ms:.1f}ms"]
    for key, template in _SHOWN:
        value = attributes.get(key)
        if value is not None:
            if isinstance(value, tuple | list):
                value = ",".join(map(str, value))
            parts.append(template.format(value))
    if span.status.status_code is StatusCode.ERROR:
        parts.append("ERROR")
    return "  ".join(parts)


def _walk(
    children: dict[int | None, list[ReadableSpan]], parent: int | None, depth: int, lines: list[str]
) -> None:
    for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
        lines.append("  " * (depth + 1) + _describe(span))
        _walk(children, span.context.span_id, depth + 1, lines)


class ConsoleTreeExporter(SpanExporter):
    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        out = self._out or sys.stderr
        by_trace: dict[int, list[ReadableSpan]] = defaultdict(list)
        for span in spans:
            by_trace[span.context.trace_id].append(span)
        lines: list[str] = []
        for trace_id, members in by_trace.items():
            ids = {s.context.span_id for s in members}
            children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
            for s in members:
                parent = s.parent.span_id if s.parent and s.parent.span_id in ids else None
                children[parent].append(s)
            lines.append(f"trace {trace_id:032x}")

            _walk(children, None, 0, lines)
        out.write("\n".join(lines) + "\n")
        out.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None
