"""ConsoleTreeExporter: one indented tree per request on stderr.

A request's spans are gathered across batches (:mod:`or_middleware.export.console_hold`) so its
GenAI spans print under its server span whatever the batching. When the destination's privacy mode
is off its spans carry content, and the tree shows it under each GenAI span: the system
instructions, the last few input messages and the answer, one line each, cut to the terminal width.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import StatusCode

from or_middleware import spans as contract
from or_middleware.export.console_hold import DEFAULT_HOLD_S, HeldTraces, TraceGroup
from or_middleware.terminal import printable

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
_HEADERS = {
    "complete": "",
    "continued": " (continued: after the response)",
    "partial": " (partial: its request span was not seen)",
}
INPUT_MESSAGES_SHOWN = 3  # the last few turns; the earlier ones are counted
MIN_LINE = 40


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


# -- content -------------------------------------------------------------------------------


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    rest = len(flat) - width
    return f"{flat[:width]}… (+{rest} chars)"


def _part_text(part: Any) -> str:
    if not isinstance(part, dict):
        return str(part)
    kind = part.get("type")
    if kind in ("text", "reasoning"):
        text = str(part.get("content", ""))
        return f"(reasoning) {text}" if kind == "reasoning" else text
    if kind == "tool_call":
        arguments = part.get("arguments")
        shown = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        return f"-> {part.get('name', '?')}({shown})"
    if kind == "tool_call_response":
        response = part.get("response")
        return f"tool result: {response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)}"
    return f"[{kind}]"


def _messages(raw: Any) -> list[tuple[str, str]] | None:
    """(role, text) of a semconv message list (a JSON string on the span); None when unreadable."""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:  # cut at the content cap: not JSON any more
        return None
    if not isinstance(value, list):
        return None
    out = []
    for message in value:
        if isinstance(message, dict) and "parts" in message:
            role = str(message.get("role", "?"))
            out.append((role, " ".join(_part_text(p) for p in message.get("parts") or [])))
        elif isinstance(message, dict) and message.get("type"):  # system instructions are parts
            out.append(("system", _part_text(message)))
    return out


def _content_lines(span: ReadableSpan, width: int) -> list[str]:
    attributes = span.attributes or {}
    lines: list[str] = []

    def add(label: str, raw: Any, last: int | None = None) -> None:
        if raw is None:
            return
        messages = _messages(raw)
        if messages is None:
            lines.append(_one_line(f"{label}: {raw}", width))
            return
        if last is not None and len(messages) > last:
            lines.append(f"{label}: ({len(messages) - last} earlier messages)")
            messages = messages[-last:]
        for role, text in messages:
            lines.append(_one_line(f"{label} {role}: {text}", width))

    add("system", attributes.get(gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS))
    add("input", attributes.get(gen_ai.GEN_AI_INPUT_MESSAGES), INPUT_MESSAGES_SHOWN)
    add("output", attributes.get(gen_ai.GEN_AI_OUTPUT_MESSAGES))
    error = attributes.get(contract.ERROR_MESSAGE)
    if error is not None:
        lines.append(_one_line(f"error message: {error}", width))
    return lines


# -- the tree ------------------------------------------------------------------------------


def render_group(group: TraceGroup, columns: int) -> list[str]:
    members = group.spans
    ids = {s.context.span_id for s in members}
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in members:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        children[parent].append(span)
    lines = [f"trace {group.trace_id:032x}{_HEADERS.get(group.reason, '')}"]

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            indent = "  " * (depth + 1)
            lines.append(indent + _describe(span))
            content_indent = indent + "    "
            width = max(MIN_LINE, columns - len(content_indent))
            lines.extend(content_indent + line for line in _content_lines(span, width))
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return [printable(line) for line in lines]  # model names and content come from clients


class ConsoleTreeExporter(SpanExporter):
    """Prints each request's spans as one tree; ``hold_s`` 0 prints each batch as it comes."""

    def __init__(self, out: TextIO | None = None, *, hold_s: float = DEFAULT_HOLD_S,
                 max_held_spans: int | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._held = HeldTraces(hold_s, **({"max_spans": max_held_spans} if max_held_spans is not None else {}))

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._held.hold_s <= 0:
                groups = [TraceGroup(t, list(m)) for t, m in _by_trace(spans).items()]
            else:
                groups = self._held.add(spans) + self._held.expired()
            self._print(groups)
        return SpanExportResult.SUCCESS

    def due_in(self) -> float | None:
        """When held spans must be printed even if no batch comes (the pipeline wakes for it)."""
        with self._lock:
            return self._held.due_in()

    def tick(self) -> None:
        with self._lock:
            self._print(self._held.expired())

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            self._print(self._held.drain())
        return True

    def shutdown(self) -> None:
        self.force_flush()

    def _print(self, groups: list[TraceGroup]) -> None:
        if not groups:
            return
        out = self._out or sys.stderr
        columns = shutil.get_terminal_size().columns  # COLUMNS when set, else the terminal, else 80
        lines = [line for group in groups for line in render_group(group, columns)]
        out.write("\n".join(lines) + "\n")
        out.flush()


def _by_trace(spans: Sequence[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    by_trace: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.context.trace_id].append(span)
    return by_trace
