"""GenAI metrics: semconv client histograms and a cost counter, on a MeterProvider private to the runtime.

Recorded on the analysis thread from each finished GenAI span (never on the request path),
exported by one periodic reader per destination that accepts OTLP metrics. Attributes are
model, provider, operation, server and error type; never user or session ids (cardinality).

A destination preset opts in with ``accepts_metrics = True``. Its metrics go where its traces
go, with ``/v1/traces`` swapped for ``/v1/metrics`` (same headers, protocol and timeout), read
from OtlpDestination-shaped fields (``endpoint``, ``headers``, ``protocol``, ``timeout``,
``metrics_endpoint``); a preset shaped otherwise defines ``otlp_metrics_connection()``
returning a :class:`MetricsConnection` (or gets an entry in :data:`PRESET_CONNECTIONS`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes, server_attributes

from or_middleware import spans as contract
from or_middleware.config import DestinationSettings, Settings, parse_headers
from or_middleware.metrics_latest import (
    CHUNK_BUCKETS,
    CURRENT_TIME_PER_OUTPUT_CHUNK,
    InferenceMetrics,
    time_per_output_chunk,
)
from or_middleware.secrets import safe_url
from or_middleware.semconv_mode import GenAISemconv, genai_semconv
from or_middleware.version import __version__

if TYPE_CHECKING:  # the metrics SDK is imported by build_metrics, only when a destination takes metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader

logger = logging.getLogger(__name__)

TOKEN_USAGE = gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
OPERATION_DURATION = gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
TIME_TO_FIRST_CHUNK = gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
COST = "or_middleware.cost"
SECURITY_SIGNALS = "or_middleware.security.signals"
SECURITY_KIND = "or_middleware.security.kind"

# Bucket boundaries the GenAI semantic conventions specify for these histograms.
TOKEN_BUCKETS: tuple[float, ...] = tuple(4.0**i for i in range(14))  # 1, 4, 16, ... 67108864
SECONDS_BUCKETS: tuple[float, ...] = tuple(round(0.01 * 2**i, 2) for i in range(14))  # 0.01 ... 81.92

# Span attributes copied onto every data point, and the one added for failed calls.
_DIMENSIONS = (
    gen_ai.GEN_AI_OPERATION_NAME,
    gen_ai.GEN_AI_PROVIDER_NAME,
    gen_ai.GEN_AI_REQUEST_MODEL,
    gen_ai.GEN_AI_RESPONSE_MODEL,
    server_attributes.SERVER_ADDRESS,
)
_TRACES_SUFFIX = "/v1/traces"
_METRICS_SUFFIX = "/v1/metrics"


@dataclass(frozen=True)
class MetricsConnection:
    """Where one destination takes OTLP metrics. ``endpoint=None``: the OTEL_EXPORTER_OTLP_* variables."""

    endpoint: str | None
    headers: Mapping[str, str] | None = None
    protocol: str = "http/protobuf"  # http/protobuf | grpc (http/json destinations get http/protobuf)
    timeout: float = 10.0


class GenAIMetrics:
    """The instruments, created once; :meth:`record` reads one finished GenAI span."""

    def __init__(self, meter_provider: MeterProvider, semconv: GenAISemconv | None = None) -> None:
        meter = meter_provider.get_meter(contract.GENAI_SCOPE, __version__)
        self.semconv = semconv or genai_semconv()  # OTEL_SEMCONV_STABILITY_OPT_IN: today's names, the latest, both
        self.latest = InferenceMetrics(meter, SECONDS_BUCKETS, TOKEN_BUCKETS) if self.semconv.latest else None
        self.current = self.semconv.current
        self.time_per_output_chunk = meter.create_histogram(
            CURRENT_TIME_PER_OUTPUT_CHUNK, unit="s", description="Time per output chunk after the first",
            explicit_bucket_boundaries_advisory=CHUNK_BUCKETS,
        ) if self.current else None
        self.token_usage = meter.create_histogram(
            TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            OPERATION_DURATION, unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            TIME_TO_FIRST_CHUNK, unit="s", description="Time to receive the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.cost = meter.create_counter(COST, unit="USD", description="Cost of LLM calls in US dollars")
        self.security_signals = meter.create_counter(
            SECURITY_SIGNALS, unit="{signal}", description="Security signals raised, by kind"
        )

    def record(self, span: ReadableSpan, signal_kinds: Sequence[str] = ()) -> None:
        a = span.attributes or {}
        dims: dict[str, Any] = {key: a[key] for key in _DIMENSIONS if key in a}
        with_error = dict(dims)
        error_type = a.get(error_attributes.ERROR_TYPE)
        if error_type is not None:
            with_error[error_attributes.ERROR_TYPE] = error_type
        if self.latest is not None:
            self.latest.record(span, dims, with_error)
        if self.current:
            self._record_current(span, a, dims, with_error)
        cost = a.get(contract.USAGE_COST)
        if isinstance(cost, int | float) and cost > 0:
            self.cost.add(cost, with_error)
        for kind in signal_kinds:
            self.security_signals.add(1, {SECURITY_KIND: kind})

    def _record_current(self, span: ReadableSpan, a: Mapping[str, Any], dims: dict[str, Any],
                        with_error: dict[str, Any]) -> None:
        if span.start_time is not None and span.end_time is not None:
            self.duration.record((span.end_time - span.start_time) / 1e9, with_error)
        for key, token_type in (
            (gen_ai.GEN_AI_USAGE_INPUT_TOKENS, gen_ai.GenAiTokenTypeValues.INPUT.value),
            (gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, gen_ai.GenAiTokenTypeValues.COMPLETION.value),
        ):
            tokens = a.get(key)
            if isinstance(tokens, int):
                self.token_usage.record(tokens, {**dims, gen_ai.GEN_AI_TOKEN_TYPE: token_type})
        ttfc = a.get(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
        if isinstance(ttfc, int | float):
            self.time_to_first_chunk.record(ttfc, with_error)
        per_chunk = time_per_output_chunk(span)
        if per_chunk is not None and self.time_per_output_chunk is not None:
            self.time_per_output_chunk.record(per_chunk, with_error)


def _swap_signal(traces_url: str | None) -> str | None:
    if traces_url and traces_url.rstrip("/").endswith(_TRACES_SUFFIX):
        return traces_url.rstrip("/")[: -len(_TRACES_SUFFIX)] + _METRICS_SUFFIX
    return None


def _secret(value: Any) -> str:
    reveal = getattr(value, "get_secret_value", None)
    return str(reveal() if callable(reveal) else value)


def _timeout(dest: DestinationSettings) -> float:
    return float(getattr(dest, "timeout", None) or 10.0)


def _grafana(dest: Any) -> MetricsConnection:
    base = dest.endpoint.rstrip("/")
    base = base if base.endswith("/otlp") else base + "/otlp"
    token = base64.b64encode(f"{dest.instance_id}:{_secret(dest.api_token)}".encode()).decode()
    return MetricsConnection(base + _METRICS_SUFFIX, {"authorization": f"Basic {token}"}, timeout=_timeout(dest))


def _signoz(dest: Any) -> MetricsConnection | None:
    headers = {"signoz-ingestion-key": _secret(dest.ingestion_key)} if dest.ingestion_key else None
    url = _swap_signal(dest.endpoint)
    return MetricsConnection(url, headers, timeout=_timeout(dest)) if url else _not_derivable(dest, dest.endpoint)


# Presets whose settings are not OtlpDestination-shaped; the others are read like OtlpDestination.
PRESET_CONNECTIONS: dict[str, Callable[[Any], MetricsConnection | None]] = {
    "grafana": _grafana,
    "signoz": _signoz,
}


def _not_derivable(dest: DestinationSettings, endpoint: str) -> None:
    logger.warning(
        "or_middleware: destination %s sends no metrics: its endpoint %s does not end in %s; "
        "set OR_MIDDLEWARE_%s__METRICS_ENDPOINT",
        dest.name, safe_url(endpoint), _TRACES_SUFFIX, dest.name.upper(),
    )


def metrics_connection(dest: DestinationSettings) -> MetricsConnection | None:
    """Where ``dest`` takes metrics, or None when it cannot be told (a warning says what to set)."""
    own = getattr(dest, "otlp_metrics_connection", None)
    if callable(own):
        connection: MetricsConnection | None = own()
        return connection
    preset = PRESET_CONNECTIONS.get(dest.kind)
    if preset is not None:
        return preset(dest)
    resolve = getattr(dest, "resolved_protocol", None)
    protocol = resolve() if callable(resolve) else getattr(dest, "protocol", None) or "http/protobuf"
    raw_headers = getattr(dest, "headers", None)
    headers = parse_headers(raw_headers) if isinstance(raw_headers, str) else raw_headers
    timeout = _timeout(dest)
    endpoint = getattr(dest, "endpoint", None)
    if protocol == "grpc":  # one host:port serves every signal
        return MetricsConnection(endpoint, headers or None, "grpc", timeout)
    metrics_url = getattr(dest, "metrics_endpoint", None) or _swap_signal(endpoint)
    if endpoint and not metrics_url:
        return _not_derivable(dest, endpoint)
    return MetricsConnection(metrics_url, headers or None, "http/protobuf", timeout)


def metrics_exporter(connection: MetricsConnection, destination: str = "metrics") -> MetricExporter:
    """Our transports, not the SDK's exporters: failures logged as ours, bounded like the traces."""
    from or_middleware.metrics_export import WireMetricExporter, metrics_transport

    headers = dict(connection.headers) if connection.headers else None
    transport = metrics_transport(destination, connection.protocol, connection.endpoint, headers, connection.timeout)
    return WireMetricExporter(destination, transport)


@dataclass
class RuntimeMetrics:
    """The runtime's MeterProvider (never the global one) and its instruments."""

    provider: MeterProvider
    instruments: GenAIMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.instruments = GenAIMetrics(self.provider)

    def force_flush(self, timeout_millis: int) -> bool:
        try:  # the SDK raises when a reader times out or fails: never into the app's force_flush()
            return bool(self.provider.force_flush(timeout_millis))
        except Exception:
            logger.debug("or_middleware: metrics flush did not complete", exc_info=True)
            return False

    def shutdown(self, timeout_millis: int = 30_000) -> None:
        try:
            self.provider.shutdown(timeout_millis=timeout_millis)
        except Exception:
            logger.debug("or_middleware: metrics shutdown did not complete", exc_info=True)


def build_metrics(settings: Settings, resource: Resource) -> RuntimeMetrics | None:
    """One periodic reader per destination that accepts metrics; None when none does.

    The export interval is OpenTelemetry's own ``OTEL_METRIC_EXPORT_INTERVAL`` (ms, default 60000).
    """
    readers: list[MetricReader] = []
    for dest in settings.destination_settings():
        if not (dest.accepts_metrics and dest.metrics):
            continue
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        try:
            connection = metrics_connection(dest)
            if connection is not None:
                readers.append(PeriodicExportingMetricReader(metrics_exporter(connection, dest.name)))
        except Exception:  # metrics are an extra: a bad metrics setup must not stop the traces
            logger.exception("or_middleware: destination %s: metrics exporter could not be built", dest.name)
    if not readers:
        return None
    from opentelemetry.sdk.metrics import MeterProvider

    return RuntimeMetrics(MeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=False))
