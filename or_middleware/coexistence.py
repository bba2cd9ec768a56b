"""Living inside an app that already has its own OpenTelemetry setup.

- :func:`foreign_genai_span`: the current span, when another instrumentation (OpenLLMetry,
  OpenInference, Logfire, ``opentelemetry-instrumentation-openai-v2``, ...) already traces the
  LLM call we are about to trace. With ``OR_MIDDLEWARE_DEDUPLICATE=auto`` we then start no
  GenAI span of our own: the call is linked (OpenRouter body, ``traceparent``) to theirs.
- :class:`AppProviderForwarder`: our finished spans, content stripped, also reach the app's own
  SDK ``TracerProvider`` (``OR_MIDDLEWARE_EXPORT_TO_APP_PROVIDER``). Its backend then holds one
  trace without holes: an HTTP client span an httpx/requests instrumentation starts inside our
  GenAI span has its parent there too. We never configure or replace the app's provider; we
  only hand it finished spans, as its own instrumentations do.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from or_middleware.spans import CONTENT_ATTRIBUTES, GENAI_SCOPE

logger = logging.getLogger(__name__)

# GenAI semconv operations that are one model call; the others (invoke_agent, create_agent,
# execute_tool) are spans above the calls, and a call made inside them is still ours to trace.
_MODEL_CALL_OPERATIONS = frozenset({"chat", "text_completion", "embeddings", "generate_content", "completion"})
# Older keys that other instrumentations (OpenLLMetry, Logfire) set on their model-call spans.
_MODEL_CALL_KEYS = ("gen_ai.system", "gen_ai.provider.name", "llm.request.type")
# OpenInference marks its spans with a kind; only these wrap one LLM API call.
_OPENINFERENCE_LLM_KINDS = frozenset({"LLM", "EMBEDDING"})
# Traceloop's workflow/task/agent/tool spans wrap many calls.
_TRACELOOP_GROUPING_KINDS = frozenset({"workflow", "task", "agent", "tool"})


def _is_model_call(attributes: Any) -> bool:
    if "openinference.span.kind" in attributes:
        return attributes["openinference.span.kind"] in _OPENINFERENCE_LLM_KINDS
    if attributes.get("traceloop.span.kind") in _TRACELOOP_GROUPING_KINDS:
        return False
    if "gen_ai.operation.name" in attributes:
        return attributes["gen_ai.operation.name"] in _MODEL_CALL_OPERATIONS
    return any(key in attributes for key in _MODEL_CALL_KEYS)


def foreign_genai_span() -> trace.Span | None:
    """The current span if another instrumentation made it for an LLM call, else None."""
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    scope = getattr(span, "instrumentation_scope", None)
    if scope is not None and scope.name == GENAI_SCOPE:
        return None  # ours: a call made while one of our calls is in flight (an in-process gateway)
    attributes: Any = getattr(span, "attributes", None) or {}
    return span if _is_model_call(attributes) else None


def _without_content(span: ReadableSpan) -> ReadableSpan:
    attributes = span.attributes or {}
    if not any(key in CONTENT_ATTRIBUTES for key in attributes):
        return span
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes={k: v for k, v in attributes.items() if k not in CONTENT_ATTRIBUTES},
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class AppProviderForwarder(SpanProcessor):
    """Hands our finished spans (never their content) to the app's global SDK TracerProvider.

    The provider is looked up at each span end, so an app that sets its provider after building
    the middleware is served too; without an SDK provider (the default no-op one) this does nothing.
    """

    def __init__(self, own_provider: Any) -> None:
        self._own_provider = own_provider
        self._failed = False
        # get_tracer_provider() reads the environment on every call while no provider is set (a
        # lookup that fails, the dearest part of a span end here): read once, the global per span.
        self._named_by_environment = OTEL_PYTHON_TRACER_PROVIDER in os.environ

    def _app_processor(self) -> Any:
        """The app's SDK provider's span processor, or None (no SDK provider, or it is ours)."""
        if getattr(trace, "_TRACER_PROVIDER", self) is None and not self._named_by_environment:
            return None
        provider = trace.get_tracer_provider()
        if provider is self._own_provider:
            return None
        # The SDK's provider fans spans out to its processors through this (long-stable) attribute.
        return getattr(provider, "_active_span_processor", None)

    def wants_spans(self) -> bool:
        """Our spans reach the app's provider, if the app has one now (server_span.py, live_span.py)."""
        return self._app_processor() is not None

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        processor = self._app_processor()
        if processor is None:
            return
        try:
            processor.on_end(_without_content(span))
        except Exception:
            if not self._failed:
                self._failed = True
                logger.exception("or_middleware: could not hand a span to the app's tracer provider (logged once)")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def attach(runtime: Any) -> None:
    """Connect a runtime to the app's own provider, if its settings ask for it."""
    if getattr(runtime.settings, "export_to_app_provider", True):
        runtime.tracer_provider.add_span_processor(AppProviderForwarder(runtime.tracer_provider))
