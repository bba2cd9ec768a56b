"""From a destination's settings to its running pipeline: exporter, span scope, privacy."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter

from or_middleware.config import (
    ConfigError,
    ConsoleDestination,
    DestinationSettings,
    LocalDestination,
    OtlpDestination,
    Settings,
    parse_headers,
)
from or_middleware.export.pipeline import DestinationPipeline
from or_middleware.export.privacy import strip_content
from or_middleware.spans import GENAI_SCOPE


def otlp_exporter(dest: OtlpDestination) -> SpanExporter:
    headers = parse_headers(dest.headers) or None
    protocol = dest.resolved_protocol()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        endpoint = dest.endpoint
        insecure = endpoint.startswith("http://") if endpoint else None
        return GrpcExporter(endpoint=endpoint, insecure=insecure, headers=headers, timeout=dest.timeout)
    if protocol == "http/json":
        raise ConfigError(
            f"OR_MIDDLEWARE_{dest.name.upper()}__PROTOCOL=http/json is not available in this version; "
            "use http/protobuf or grpc"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=dest.endpoint, headers=headers, timeout=dest.timeout)


def console_exporter(dest: ConsoleDestination) -> SpanExporter:
    from or_middleware.export.console import ConsoleTreeExporter

    return ConsoleTreeExporter()


def local_exporter(dest: LocalDestination) -> SpanExporter:
    from or_middleware.export.store import LocalStoreExporter

    return LocalStoreExporter(dest.path)


ExporterFactory = Callable[[DestinationSettings], SpanExporter]

EXPORTER_FACTORIES: dict[str, ExporterFactory] = {
    "otlp": otlp_exporter,  # type: ignore[dict-item]
    "console": console_exporter,  # type: ignore[dict-item]
    "local": local_exporter,  # type: ignore[dict-item]
}


def is_genai_span(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and scope.name == GENAI_SCOPE


def _any_span(span: ReadableSpan) -> bool:
    return True


def build_pipeline(dest: DestinationSettings, settings: Settings) -> DestinationPipeline:
    exporter = EXPORTER_FACTORIES[dest.kind](dest)
    private = settings.privacy_for(dest)
    return DestinationPipeline(
        dest.name,
        exporter,
        accepts=is_genai_span if dest.span_scope == "genai" else _any_span,
        transform=strip_content if private else None,
        max_queue_size=dest.max_queue_size,
        schedule_delay_s=dest.schedule_delay_ms / 1000,
    )
