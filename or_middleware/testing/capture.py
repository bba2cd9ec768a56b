"""Capture the LLM calls the code under test makes, in memory, as plain records.

:func:`capture_llm_calls` attaches one span processor to every tracing runtime of the process
(those already built and those built while it is active) and turns each finished GenAI span into
an :class:`LLMCall`. Nothing is exported by the capture itself and nothing leaves memory.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanKind, StatusCode

from or_middleware import runtime as runtimes
from or_middleware import spans as contract


@dataclass(frozen=True)
class LLMCall:
    """One LLM call as the middleware saw it (a GenAI span, in plain fields)."""

    operation: str | None  # chat, text_completion, embeddings, ...
    provider: str | None  # gen_ai.provider.name: openrouter, openai, anthropic, ...
    request_model: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost: float | None  # USD
    user: str | None
    session: str | None
    route: str | None  # the inbound request that made the call ("GET /ask"), when there was one
    stream: bool
    status: str  # ok | error
    error_type: str | None
    finish_reasons: tuple[str, ...]
    metadata: dict[str, Any]  # trace.metadata.<key>: the app's own keys (the request body's trace object)
    served_by: str | None  # OpenRouter's upstream provider
    input_messages: list[Any] | None  # content: only when the runtime captured it
    output_messages: list[Any] | None
    system_instructions: list[Any] | None
    span: ReadableSpan = field(repr=False, compare=False)

    @property
    def model(self) -> str | None:
        """The model that served the call, else the one requested."""
        return self.response_model or self.request_model

    @property
    def attributes(self) -> dict[str, Any]:
        return dict(self.span.attributes or {})


_OPENROUTER_METADATA = contract.TRACE_METADATA_PREFIX + "openrouter."  # OpenRouter's own, not the app's


def _json(value: Any) -> list[Any] | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) else None


def to_call(span: ReadableSpan, route: str | None) -> LLMCall:
    a = span.attributes or {}
    metadata = {k.removeprefix(contract.TRACE_METADATA_PREFIX): v for k, v in a.items()
                if k.startswith(contract.TRACE_METADATA_PREFIX) and not k.startswith(_OPENROUTER_METADATA)}
    return LLMCall(
        operation=a.get(gen_ai.GEN_AI_OPERATION_NAME),  # type: ignore[arg-type]
        provider=a.get(gen_ai.GEN_AI_PROVIDER_NAME),  # type: ignore[arg-type]
        request_model=a.get(gen_ai.GEN_AI_REQUEST_MODEL),  # type: ignore[arg-type]
        response_model=a.get(gen_ai.GEN_AI_RESPONSE_MODEL),  # type: ignore[arg-type]
        input_tokens=a.get(gen_ai.GEN_AI_USAGE_INPUT_TOKENS),  # type: ignore[arg-type]
        output_tokens=a.get(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS),  # type: ignore[arg-type]
        total_tokens=a.get(contract.USAGE_TOTAL_TOKENS),  # type: ignore[arg-type]
        cost=a.get(contract.USAGE_COST),  # type: ignore[arg-type]
        user=a.get(contract.USER_ID),  # type: ignore[arg-type]
        session=a.get(contract.SESSION_ID),  # type: ignore[arg-type]
        route=route or a.get(contract.TRACE_NAME),  # type: ignore[arg-type]
        stream=bool(a.get(gen_ai.GEN_AI_REQUEST_STREAM)),
        status="error" if span.status.status_code is StatusCode.ERROR else "ok",
        error_type=a.get("error.type"),  # type: ignore[arg-type]
        finish_reasons=tuple(a.get(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS) or ()),  # type: ignore[arg-type]
        metadata=metadata,
        served_by=a.get(contract.SERVED_BY),  # type: ignore[arg-type]
        input_messages=_json(a.get(gen_ai.GEN_AI_INPUT_MESSAGES)),
        output_messages=_json(a.get(gen_ai.GEN_AI_OUTPUT_MESSAGES)),
        system_instructions=_json(a.get(gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS)),
        span=span,
    )


class CapturedLLMCalls:
    """What a capture has seen so far. Thread-safe: calls may end on any thread."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._genai: list[ReadableSpan] = []
        self._servers: dict[int, str] = {}  # span id -> "GET /ask"

    # -- fed by the processor -------------------------------------------------------------

    def _add(self, span: ReadableSpan) -> None:
        with self._lock:
            if span.instrumentation_scope is not None and span.instrumentation_scope.name == contract.GENAI_SCOPE \
                    and (span.attributes or {}).get(gen_ai.GEN_AI_OPERATION_NAME):
                self._genai.append(span)
            elif span.kind is SpanKind.SERVER:
                self._servers[span.context.span_id] = span.name
            self._lock.notify_all()

    # -- for the test ---------------------------------------------------------------------

    @property
    def calls(self) -> list[LLMCall]:
        """Every LLM call that has finished, in the order they finished."""
        with self._lock:
            spans, servers = list(self._genai), dict(self._servers)
        return [to_call(s, servers.get(s.parent.span_id) if s.parent else None) for s in spans]

    def find(self, **fields: Any) -> list[LLMCall]:
        """The calls whose fields equal all of ``fields`` (``model=`` matches served or requested)."""
        def matches(call: LLMCall) -> bool:
            for name, wanted in fields.items():
                if name == "model":
                    if wanted not in (call.response_model, call.request_model):
                        return False
                elif getattr(call, name) != wanted:
                    return False
            return True

        return [c for c in self.calls if matches(c)]

    def one(self, **fields: Any) -> LLMCall:
        """The single call matching ``fields``; fails with what was seen otherwise."""
        found = self.find(**fields)
        if len(found) != 1:
            seen = [(c.route, c.request_model, c.user, c.status) for c in self.calls]
            raise AssertionError(f"expected one LLM call with {fields}, found {len(found)}; seen: {seen}")
        return found[0]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[LLMCall]:
        """Until ``count`` calls have finished (a stream or a background task may end after the
        response), then the calls. Fails after ``timeout`` seconds with what was seen."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._genai) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} LLM calls, {len(self._genai)} finished in {timeout}s")
                self._lock.wait(left)
        return self.calls

    @property
    def total_tokens(self) -> int:
        return sum(c.total_tokens or 0 for c in self.calls)

    @property
    def total_cost(self) -> float:
        return sum(c.cost or 0.0 for c in self.calls)

    def clear(self) -> None:
        with self._lock:
            self._genai.clear()
            self._servers.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._genai)


class _CaptureProcessor(SpanProcessor):
    """One per runtime, attached once; forwards finished spans to the active captures."""

    def on_end(self, span: ReadableSpan) -> None:
        for capture in list(_active):
            capture._add(span)


_active: list[CapturedLLMCalls] = []
_attach_lock = threading.Lock()
_ATTACHED = "_or_middleware_capture_attached"


def _attach(runtime: runtimes.TracingRuntime) -> None:
    with _attach_lock:
        if not getattr(runtime, _ATTACHED, False):
            runtime.tracer_provider.add_span_processor(_CaptureProcessor())
            setattr(runtime, _ATTACHED, True)


@contextlib.contextmanager
def capture_llm_calls(*, content: bool = False) -> Iterator[CapturedLLMCalls]:
    """Capture every LLM call made in this process while the block runs.

    ``content=True`` also reads prompts and answers for runtimes that have no destination at all
    (such as the apps built under the ``capllm`` fixture of ``or_middleware_pytest``), so they stay in
    memory; a runtime with destinations keeps its own privacy choice.
    """
    captured = CapturedLLMCalls()

    def on_new_runtime(runtime: runtimes.TracingRuntime) -> None:
        _attach(runtime)
        if content and not runtime.pipelines:
            runtime.capture_content = True

    runtimes.add_runtime_observer(on_new_runtime)
    for existing in runtimes.live_runtimes():
        on_new_runtime(existing)
    _active.append(captured)
    try:
        yield captured
    finally:
        _active.remove(captured)
        runtimes.remove_runtime_observer(on_new_runtime)
