"""LLMCall: one outbound LLM request, from detection to the end of its span.

Every method here is called from inside the app's request path, so every one of them
contains its own failures: a bug of ours is logged once and the call goes on untraced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from or_middleware import announce, server_span
from or_middleware import spans as contract
from or_middleware.capture.detection import LLMEndpoint, confirms_shape, versioned_api_path, with_provider
from or_middleware.capture.linkage import BodyLayout, parse_body, plan_linkage, splice_linkage
from or_middleware.capture.live_span import LiveSpan, sampled_span_context
from or_middleware.coexistence import foreign_genai_span
from or_middleware.context import current_identity
from or_middleware.genai.formats import WireFormat
from or_middleware.genai.record import GenerationRecord
from or_middleware.genai.registry import format_for
from or_middleware.genai.response import ResponseObserver
from or_middleware.prompts import PromptFields, prompt_fields
from or_middleware.runtime import TracingRuntime, default_runtime

logger = logging.getLogger(__name__)
_W3C = TraceContextTextMapPropagator()
_logged: set[str] = set()


def log_once(where: str) -> None:
    """Log our own failure with its traceback, once per place, so a bug cannot flood the app's logs."""
    if where not in _logged:
        _logged.add(where)
        logger.exception("or_middleware: internal error in %s (the app is unaffected; logged once)", where)


class CallTarget:
    """The cheap first step: is this request an LLM call, and who traces it?"""

    __slots__ = ("endpoint", "fmt", "runtime", "where")

    def __init__(
        self,
        runtime: TracingRuntime,
        endpoint: LLMEndpoint,
        fmt: WireFormat,
        where: tuple[str, str, int | None, str] | None = None,
    ) -> None:
        self.runtime = runtime
        self.endpoint = endpoint
        self.fmt = fmt
        self.where = where  # (scheme, host, port, path), kept only for OR_MIDDLEWARE_DEBUG lines


def match_request(method: str, scheme: str, host: str, port: int | None, path: str) -> CallTarget | None:
    try:
        if method != "POST":
            return None
        identity = current_identity()
        runtime = identity.runtime if identity is not None else default_runtime()
        if runtime is None:
            if announce.debug_enabled:
                announce.explain(scheme, host, port, path, "no middleware is running in this process")
            return None
        matched = runtime.detector.match(scheme, host, port, path)
        if matched is None:
            if announce.debug_enabled:
                why = (
                    "host not listed and OR_MIDDLEWARE_DETECT=listed; add the base URL to "
                    "OR_MIDDLEWARE_LLM_HOSTS (e.g. vllm=http://gpu:8000/v1) or unset OR_MIDDLEWARE_DETECT"
                    if runtime.detector.detect == "listed"
                    else "not under the base URL of this listed host (OR_MIDDLEWARE_LLM_HOSTS)"
                )
                announce.explain(scheme, host, port, path, why)
            return None
        endpoint, suffix = matched
        fmt = format_for(endpoint.api_kind, suffix)
        if fmt is None:
            if announce.debug_enabled:
                announce.explain(scheme, host, port, path, f"no {endpoint.provider} API format at {suffix or '/'}")
            return None
        if endpoint.by_shape and not versioned_api_path(path):
            return None  # e.g. some REST service's own POST /api/messages: not even its body is read
        if endpoint.by_shape and identity is None:
            # Outside any request the middleware serves (a script, a test client calling this
            # very app's own LLM routes in-process), only listed hosts are traced: otherwise a
            # gateway exercised by an in-process client would count each generation twice.
            if announce.debug_enabled:
                announce.explain(scheme, host, port, path, "made outside a traced request to an unlisted host "
                                 "(add it to OR_MIDDLEWARE_LLM_HOSTS to trace such calls)")
            return None
        native = getattr(fmt, "native_provider", None)
        if endpoint.by_shape and native:  # e.g. Ollama's /api/chat on a host of its own
            endpoint = with_provider(endpoint, native)
        where = None
        if announce.debug_enabled:
            where = (scheme, host, port, path)
            if not endpoint.by_shape:  # a by-shape call is explained once its body is seen
                announce.explain(scheme, host, port, path, None, f"as {endpoint.provider} {fmt.operation}")
        return CallTarget(runtime, endpoint, fmt, where)
    except Exception:
        log_once("detection")
        return None


class LLMCall:
    """The span and record of one LLM call; ends exactly once, whichever way the call ends."""

    def __init__(self, target: CallTarget, host: str, port: int | None) -> None:
        self.target = target
        self.runtime = target.runtime
        self.record = GenerationRecord(
            provider=target.endpoint.provider,
            operation=target.fmt.operation,
            capture_content=self.runtime.capture_content,
            started_at=time.perf_counter(),
        )
        self.host = host
        self.port = port
        self.span: trace.Span | None = None
        # what linkage and traceparent point at: our span, or the span of another
        # instrumentation that already traces this call (OR_MIDDLEWARE_DEDUPLICATE=auto)
        self.linked_span: trace.Span | None = None
        self.observer: ResponseObserver | None = None
        self.generation_id: str | None = None
        self.linkage: str | None = None
        self.prompt: PromptFields | None = None  # in memory only, for the exporter-side analysis
        self._end_lock = threading.Lock()
        self._ended = False
        self._token: object | None = None
        self._encoded = False  # the body bytes we see are Content-Encoded

    # -- request ----------------------------------------------------------------------------

    def start(self, body: bytes | None, body_skipped: str | None) -> bytes | None:
        """Read the request, start the span, link. Returns a new body to send, or None to keep it."""
        record = self.record
        parsed: Any = None
        layout: BodyLayout | None = None
        new_body: bytes | None = None
        try:
            if body:
                try:
                    parsed, layout = parse_body(body)  # json.loads, plus where linkage may insert
                except (ValueError, RecursionError):  # json.loads' errors (nesting past the limit too)
                    parsed = None
                    body_skipped = body_skipped or "skipped_not_json"
            if self.target.endpoint.by_shape and not confirms_shape(self.target.fmt, parsed):
                # An unlisted host's POST on an LLM-looking path that is not an LLM request
                # (or whose body we could not read): not ours, no span, nothing observed.
                self._ended = True
                why = f"body not read ({body_skipped})" if body_skipped else "the body has not this API's shape"
                self._explain(f"unlisted host and {why}")
                return None
            if isinstance(parsed, dict):
                self.target.fmt.read_request(parsed, record)
                self.prompt = prompt_fields(parsed)  # references only: hashed and scanned off the request path
        except Exception:
            log_once("request parsing")
        identity = current_identity()
        if identity is not None:
            record.user = record.user or identity.user
            record.session = record.session or identity.session
            record.trace_name = record.trace_name or identity.trace_name
        settings = self.runtime.settings
        record.trace_name = record.trace_name or settings.trace_name
        name = contract.span_name(record.operation, record.request_model)
        foreign = foreign_genai_span() if settings.deduplicate == "auto" else None
        if foreign is None:
            parent = server_span.llm_parent_context()  # the request's server span, started now if it was pending
            if self.runtime.records_directly():  # only our analysis reads it: no SDK span (capture/live_span.py)
                self.span = _live_span(self.runtime.tracer, name, parent)
            else:
                self.span = self.runtime.tracer.start_span(
                    name, parent, kind=SpanKind.CLIENT, attributes=contract.server_attributes_for(self.host, self.port)
                )
        # Timings (time to first chunk, tokens/s) count from the span's start, not from parsing:
        # taken once the span has its start time, so a first chunk can never precede it (under a
        # busy GIL, starting the span can take milliseconds).
        record.started_at = time.perf_counter()
        self.linked_span = self.span or foreign
        if self.target.endpoint.by_shape:
            self._explain(None, f"as {self.target.endpoint.provider} {record.operation} (request shape, unlisted host)")
        try:
            if self.target.endpoint.openrouter and settings.link_openrouter:
                if body_skipped:
                    self.linkage = body_skipped
                elif isinstance(parsed, dict):
                    context = self.linked_span.get_span_context()  # type: ignore[union-attr]
                    plan = plan_linkage(
                        parsed,
                        trace_id=f"{context.trace_id:032x}",
                        parent_span_id=f"{context.span_id:016x}",
                        generation_name=name,
                        trace_name=record.trace_name,
                        user=record.user,
                        session=record.session,
                    )
                    # spliced into the app's own bytes: nothing else of the body changes
                    self.linkage, new_body = splice_linkage(body or b"", layout, plan)
                else:
                    self.linkage = "skipped_not_object"
        except Exception:
            log_once("linkage")
            new_body = None
        return new_body

    def _explain(self, why_not: str | None, how: str = "") -> None:
        if self.target.where is not None:
            announce.explain(*self.target.where, why_not, how)

    def wants_traceparent(self) -> bool:
        if self._ended:
            return False
        mode = self.runtime.settings.propagate_traceparent
        endpoint = self.target.endpoint
        return mode == "all" or (mode == "gateways" and (endpoint.openrouter or endpoint.gateway))

    def traceparent_headers(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        if self.linked_span is not None:
            _W3C.inject(carrier, context=trace.set_span_in_context(self.linked_span))
        return carrier

    @contextmanager
    def sending(self) -> Iterator[None]:
        """Around the client's own send: our span is current (HTTP client spans nest under it),
        and whatever the send raises is the call's error, re-raised to the app untouched."""
        self.activate()
        try:
            yield
        except BaseException as exc:
            self.on_error(exc)
            raise
        finally:
            self.deactivate()

    def activate(self) -> None:
        """Make our span current while the transport runs, so HTTP client spans nest under it."""
        if self.span is not None:
            self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def deactivate(self) -> None:
        if self._token is not None:
            try:
                otel_context.detach(self._token)  # type: ignore[arg-type]
            except Exception:
                log_once("context detach")
            self._token = None

    # -- response ---------------------------------------------------------------------------

    def on_response(self, status_code: int, headers: Any) -> None:
        if self._ended:  # declined at start: not an LLM call
            return
        try:
            self.generation_id = headers.get("x-generation-id")
            self._encoded = bool(headers.get("content-encoding"))
            self.observer = ResponseObserver(
                self.target.fmt,
                self.record,
                status_code=status_code,
                content_type=headers.get("content-type"),
                content_encoding=headers.get("content-encoding"),
                max_json_bytes=self.runtime.settings.max_response_parse_bytes,
                max_content_chars=self.runtime.settings.max_content_bytes,
            )
        except Exception:
            log_once("response setup")

    def on_chunk(self, chunk: bytes) -> None:
        observer = self.observer
        if observer is not None and chunk:
            try:
                observer.feed(chunk)  # takes the time itself, only when it matters
            except Exception:
                self.observer = None
                log_once("response parsing")

    def chunk_sink(self) -> Callable[[bytes], None]:
        """What a seam's loop calls with each body chunk: ``on_chunk``, or, once the response
        is observed, the observer's own ``feed``, one call less per chunk. The loop guards it
        and calls ``sink_failed`` when it raises (a bug of ours)."""
        observer = self.observer
        return self.on_chunk if observer is None else observer.feed

    def sink_failed(self) -> Callable[[bytes], None]:
        """The chunk sink raised: stop observing (logged once); the sink from now on."""
        self.observer = None
        log_once("response parsing")
        return self.on_chunk

    def on_eof(self) -> None:
        observer = self.observer
        if observer is not None:
            try:
                observer.finish(time.perf_counter())
            except Exception:
                log_once("response finish")
        self.end("completed")

    def on_error(self, exc: BaseException) -> None:
        """The transport or the response stream raised: the app sees the same exception."""
        self.record.set_error(type(exc).__name__)
        self._abandon()
        self.end("error")

    def on_close(self) -> None:
        """The consumer closed the response (break, early exit, cancel, or after the last event).

        A body that had reached its documented end ([DONE], message_stop, ...) is complete,
        however many bytes the consumer left unread after it: SDKs stop at the end marker and
        close. Otherwise the call was abandoned, which is not an error of the call: what was
        learned so far (tokens, partial output) is kept. A consumer that stopped at the model's
        finish reason, before the end (LiteLLM does), saw the whole answer but not what follows
        it (OpenRouter's usage chunk): ``closed_after_finish`` says so."""
        if self._ended:
            return
        record = self.record
        self._settle()  # chunks held for a bulk scan: judged now, the record is current
        observer = self.observer
        last_byte = observer.last_byte if observer is not None else b""
        if not record.completed and record.stream and last_byte in (b"\n", b"\r") and not self._encoded:
            # The consumer stopped after a whole line (a line reader at "data: [DONE]"): the
            # event those lines make is one it read, though its blank line was not yet taken.
            self.on_chunk(b"\r\n" if last_byte == b"\r" else b"\n")
            self._settle()
        if record.completed:
            self.on_eof()
            return
        self._abandon()
        self.end("closed_after_finish" if self.record.finish_reasons else "abandoned")

    def _settle(self) -> None:
        """on_close runs in the app's close() (no guard there): a bug of ours stays here."""
        observer = self.observer
        if observer is not None:
            try:
                observer.settle()
            except Exception:
                log_once("response settle")

    def _abandon(self) -> None:
        observer = self.observer
        if observer is not None and not self._ended:
            try:
                observer.abandon(time.perf_counter())
            except Exception:
                log_once("response abandon")

    # -- end ----------------------------------------------------------------------------------

    def end(self, outcome: str) -> None:
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
        span = self.span
        if span is None:
            return
        description = None
        try:
            record = self.record
            if record.response_id is None and self.generation_id:
                record.response_id = self.generation_id
            description = CallDescription(record, outcome, self.linkage, time.perf_counter(),
                                          self.runtime.settings.max_content_bytes, self.host, self.port)
        except Exception:
            log_once("span attributes")
        if isinstance(span, LiveSpan):
            try:  # described on the analysis thread, off the request path
                span.end()
                self.runtime.analysis.end_live(span, description, self.prompt)
            except Exception:  # runs inside the app's stream iteration: never raise into it
                log_once("span end")
            return
        try:
            if description is not None:
                attributes, status = description.attributes(with_server=False)
                span.set_attributes(attributes)
                if status is not None:
                    span.set_status(status)
        except Exception:
            log_once("span attributes")
        finally:
            try:
                self.runtime.analysis.end_span(span, self.prompt)  # ends it; the prompt stays in memory
            except Exception:  # runs inside the app's stream iteration: never raise into it
                log_once("span end")


class CallDescription:
    """What a finished call's span attributes are made of, taken when it ends; made into the
    attributes at once for an SDK span, or on the analysis thread for a live one."""

    __slots__ = ("ended_at", "host", "linkage", "max_content_bytes", "outcome", "port", "record")

    def __init__(self, record: GenerationRecord, outcome: str, linkage: str | None, ended_at: float,
                 max_content_bytes: int, host: str, port: int | None) -> None:
        self.record, self.outcome, self.linkage, self.ended_at = record, outcome, linkage, ended_at
        self.max_content_bytes, self.host, self.port = max_content_bytes, host, port

    def attributes(self, *, with_server: bool) -> tuple[dict[str, Any], Status | None]:
        """The span's attributes (with ``server.*`` first when the span was started without them)
        and its status (ERROR with the error type, or None)."""
        record = self.record
        if record.cost is None and record.error_type is None:
            _price(record)
        attributes = contract.record_attributes(record, self.max_content_bytes)
        if with_server:
            attributes = {**contract.server_attributes_for(self.host, self.port), **attributes}
        if record.stream:
            attributes[contract.STREAM_OUTCOME] = "error" if record.error_type else self.outcome
            if record.output_tokens and record.time_to_first_chunk is not None:
                generating = self.ended_at - record.started_at - record.time_to_first_chunk
                if generating > 0:
                    attributes[contract.OUTPUT_TOKENS_PER_SECOND] = record.output_tokens / generating
        if self.linkage is not None:
            attributes[contract.LINKAGE] = self.linkage
        if record.error_type is None:
            return attributes, None
        # The cleaned value: a status no exporter can encode (a lone surrogate from an upstream
        # error code) would fail the destination's whole batch.
        return attributes, Status(StatusCode.ERROR, attributes.get(contract.error_attributes.ERROR_TYPE))


def _live_span(tracer: Any, name: str, parent: otel_context.Context | None) -> trace.Span:
    """A live GenAI span with the ids the SDK would give it (a non-recording one when not sampled)."""
    context = sampled_span_context(tracer, parent, name, SpanKind.CLIENT)
    if not context.trace_flags.sampled:
        return trace.NonRecordingSpan(context)
    parent_context = trace.get_current_span(parent).get_span_context()
    return LiveSpan(name, context, parent_context if parent_context.is_valid else None, tracer)


def _price(record: GenerationRecord) -> None:
    try:
        from or_middleware.genai.cost import price

        price(record, record.provider)
    except Exception:
        log_once("pricing")
