"""From a destination's settings to its running pipeline: where it sends, how, and what it sends.

Each remote preset maps to a :class:`WireTarget` (URL, protocol, auth headers, resource
attributes), from the vendors' documented ingest paths. In-process destinations (console,
local store, and any kind registered in :data:`EXPORTER_FACTORIES`) wrap a SpanExporter.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter

from or_middleware.config import (
    LAZY_PRESETS,
    ArizeDestination,
    BraintrustDestination,
    ConfigError,
    ConsoleDestination,
    DestinationSettings,
    GrafanaDestination,
    LangfuseDestination,
    LangSmithDestination,
    LocalDestination,
    OtlpDestination,
    PhoenixDestination,
    PostHogDestination,
    RemoteDestination,
    Settings,
    SigNozDestination,
    SpooledDestination,
    parse_headers,
)
from or_middleware.export import otlp_env
from or_middleware.export.credentials import CredentialSafeTransport
from or_middleware.export.delivery import WireDelivery
from or_middleware.export.draft import DraftTransform, SpanDraft, is_genai_span
from or_middleware.export.pipeline import DestinationPipeline
from or_middleware.export.preparation import SharedTransforms, SpanPreparation
from or_middleware.export.privacy import ContentRedaction, CredentialScrubber, PrivacyAllowlist, detach_from_parent
from or_middleware.export.redaction import PIIRedactor
from or_middleware.export.selection import SpanSelection
from or_middleware.export.sinks import ExporterSink, SpanSink
from or_middleware.export.spool import DiskSpool
from or_middleware.export.stats import DropCounter, PipelineStats
from or_middleware.export.transports import Transport, ssl_context
from or_middleware.export.wire import DEFAULT_TIMEOUT_S, WireTarget, basic, secret, timeout_of, with_path
from or_middleware.secrets import credential_values
from or_middleware.semconv_mode import LatestAttributeNames, genai_semconv

if TYPE_CHECKING:
    from or_middleware.export.content_events import ContentToEvent
    from or_middleware.export.encoders import SpanEncoding
    from or_middleware.export.grpc_transport import GrpcTransport

# What a destination needs on the wire (encoders, HTTP or gRPC transport, dialects, content
# events) is imported when one is built, so a configuration pays only for what it uses. Building
# happens at start-up on the thread that builds the middleware, never on an exporter thread.

logger = logging.getLogger(__name__)

PROJECT_RESOURCE = "openinference.project.name"

def grafana_target(dest: GrafanaDestination, settings: Settings) -> WireTarget:
    base = (dest.endpoint or "").rstrip("/")
    url = base if base.endswith("/v1/traces") else with_path(base, "/otlp") + "/v1/traces"
    auth = basic(dest.instance_id or "", secret(dest.api_token))
    return WireTarget(url, "http/protobuf", {"authorization": auth}, timeout=timeout_of(dest))


def langsmith_target(dest: LangSmithDestination, settings: Settings) -> WireTarget:
    headers = {"x-api-key": secret(dest.api_key)}
    if dest.project:
        headers["langsmith-project"] = dest.project
    return WireTarget(with_path(dest.endpoint, "/otel/v1/traces"), "http/protobuf", headers, timeout=timeout_of(dest))


def langfuse_target(dest: LangfuseDestination, settings: Settings) -> WireTarget:
    headers = {
        "authorization": basic(dest.public_key or "", secret(dest.secret_key)),
        "x-langfuse-ingestion-version": "4",
    }
    url = with_path(dest.host, "/api/public/otel/v1/traces")
    return WireTarget(url, "http/protobuf", headers, timeout=timeout_of(dest))


def signoz_target(dest: SigNozDestination, settings: Settings) -> WireTarget:
    headers = {"signoz-ingestion-key": secret(dest.ingestion_key)} if dest.ingestion_key else {}
    return WireTarget(dest.endpoint, "http/protobuf", headers, timeout=timeout_of(dest))


def arize_target(dest: ArizeDestination, settings: Settings) -> WireTarget:
    headers = {"authorization": secret(dest.api_key), "arize-space-id": dest.space_id or ""}
    project = dest.project or settings.resolved_service_name
    return WireTarget(with_path(dest.base_url, "/v1/traces"), "http/protobuf", headers,
                      {PROJECT_RESOURCE: project}, timeout=timeout_of(dest))


def phoenix_target(dest: PhoenixDestination, settings: Settings) -> WireTarget:
    headers = {"authorization": f"Bearer {secret(dest.api_key)}"} if dest.api_key else {}
    project = dest.project or settings.resolved_service_name
    return WireTarget(dest.endpoint, "http/protobuf", headers, {PROJECT_RESOURCE: project}, timeout=timeout_of(dest))


def braintrust_target(dest: BraintrustDestination, settings: Settings) -> WireTarget:
    parent = f"project_id:{dest.project_id}" if dest.project_id else f"project_name:{dest.project_name}"
    headers = {"authorization": f"Bearer {secret(dest.api_key)}", "x-bt-parent": parent}
    return WireTarget(with_path(dest.base_url, "/otel/v1/traces"), "http/protobuf", headers, timeout=timeout_of(dest))


def posthog_target(dest: PostHogDestination, settings: Settings) -> WireTarget:
    return WireTarget(with_path(dest.host, "/batch") + "/", "posthog", timeout=timeout_of(dest))


def otlp_target(dest: OtlpDestination, settings: Settings) -> WireTarget:
    protocol = dest.resolved_protocol()
    headers = {**otlp_env.headers(), **parse_headers(dest.headers)}
    compression = dest.compression or otlp_env.compression()
    return WireTarget(
        dest.endpoint or otlp_env.traces_endpoint(protocol),
        protocol,
        headers,
        timeout=dest.timeout or otlp_env.timeout_s() or DEFAULT_TIMEOUT_S,
        compress=compression == "gzip",
        certificate=otlp_env.certificate(),
        client_certificate=otlp_env.client_certificate(),
        insecure=otlp_env.insecure(),
    )


TargetFactory = Callable[[Any, Settings], WireTarget]

TARGET_FACTORIES: dict[str, TargetFactory] = {
    "otlp": otlp_target,
    "grafana": grafana_target,
    "langsmith": langsmith_target,
    "langfuse": langfuse_target,
    "signoz": signoz_target,
    "arize": arize_target,
    "phoenix": phoenix_target,
    "braintrust": braintrust_target,
    "posthog": posthog_target,
    "otel_collector": otlp_target,
}  # and the vendors' own, beside their presets (see vendor_target_factory)


def console_exporter(dest: ConsoleDestination) -> SpanExporter:
    from or_middleware.export.console import ConsoleTreeExporter

    return ConsoleTreeExporter()


def local_exporter(dest: LocalDestination) -> SpanExporter:
    from or_middleware.export.store import LocalStoreExporter

    return LocalStoreExporter(dest.url or "", busy_timeout_ms=dest.busy_timeout_ms, write_retry_s=dest.write_retry_s)


def store_target(dest: LocalDestination) -> WireTarget:
    """A PostgreSQL store as a target: its URL without the password (it names the spool), its timeout."""
    from or_middleware.store.sql import display_url

    return WireTarget(display_url(dest.url or ""), "postgresql", timeout=timeout_of(dest))


def postgres_store_sink(dest: LocalDestination, settings: Settings, stats: PipelineStats,
                        drops: Callable[[int, str], None], *, spool: bool = True) -> SpanSink:
    """The ``local`` destination on PostgreSQL: rows delivered like any remote destination's spans
    (retries, backoff, the spool while the database is down)."""
    from or_middleware.store.postgres_sink import PostgresStoreSink
    from or_middleware.store.postgres_writer import PostgresStoreTransport
    from or_middleware.store.row_batch import StoreRows

    target = store_target(dest)
    url = dest.url or ""
    inner = PostgresStoreTransport(url, timeout=target.timeout, reconnect_s=dest.max_backoff_s)
    return PostgresStoreSink(
        dest.name, StoreRows(), inner,  # its target and reasons never hold the password (without_secrets)
        stats=stats, on_drop=drops, spool=_spool(dest, settings, target) if spool else None,
        max_retries=dest.max_retries, max_backoff_s=dest.max_backoff_s,
    )


ExporterFactory = Callable[[DestinationSettings], SpanExporter]

# In-process destinations by kind (tests and benchmarks may register their own).
EXPORTER_FACTORIES: dict[str, ExporterFactory] = {
    "console": console_exporter,  # type: ignore[dict-item]
    "local": local_exporter,  # type: ignore[dict-item]
}


def vendor_target_factory(kind: str) -> TargetFactory | None:
    """A vendor's target, from the module that defines its preset (imported with it: config.LAZY_PRESETS)."""
    module = LAZY_PRESETS.get(kind)
    if module is None:
        return None
    targets: dict[str, TargetFactory] = importlib.import_module(module).VENDOR_TARGETS
    return targets.get(kind)


def wire_target(dest: DestinationSettings, settings: Settings) -> WireTarget | None:
    factory = TARGET_FACTORIES.get(dest.kind) or vendor_target_factory(dest.kind)
    return factory(dest, settings) if factory is not None else None


def encoding_for(target: WireTarget, dest: DestinationSettings) -> SpanEncoding:
    if target.protocol == "posthog":
        from or_middleware.export.posthog import PostHogEvents

        return PostHogEvents()
    from or_middleware.export.encoders import OtlpJson, OtlpProtobuf

    if target.protocol == "http/json":
        return OtlpJson()
    return OtlpProtobuf()


def grpc_transport_class() -> type[GrpcTransport]:
    """:class:`GrpcTransport`, imported now (start-up); without grpcio, start-up stops with one line."""
    try:
        from or_middleware.export.grpc_transport import GrpcTransport
    except ImportError as exc:
        raise ConfigError(f"invalid configuration: OTLP protocol grpc needs the grpcio package ({exc}): "
                          "pip install grpcio, or set the destination's PROTOCOL (or OTEL_EXPORTER_OTLP_PROTOCOL) "
                          "to http/protobuf") from None
    return GrpcTransport


def transport_for(target: WireTarget, content_type: str) -> Transport:
    if target.protocol == "grpc":
        return grpc_transport_class()(target.url, target.headers, target.timeout, compress=target.compress,
                             insecure=target.insecure, certificate=target.certificate)
    try:
        verify: ssl.SSLContext | bool = ssl_context(target.certificate, *target.client_certificate)
    except (OSError, ssl.SSLError) as exc:  # a file that is there but is no certificate or key
        raise ConfigError(f"invalid configuration: {otlp_env.tls_variables()}: cannot load ({exc})") from None
    from or_middleware.export.http_transport import HttpTransport

    return HttpTransport(target.url, target.headers, content_type, target.timeout,
                         compress=target.compress, verify=verify, method=target.method)


def wire_transport(target: WireTarget, dest: DestinationSettings, content_type: str) -> Transport:
    """The transport a destination sends with: PostHog's key joins each body at send time (never the
    spool), and nothing the transport reports (its target, a failure's reason) holds a credential."""
    transport: Transport = transport_for(target, content_type)
    credentials = credential_values(target.url, target.headers)
    if target.protocol == "posthog":
        from or_middleware.export.posthog import PostHogKeyTransport

        api_key = secret(getattr(dest, "api_key", ""))
        transport = PostHogKeyTransport(transport, api_key)
        credentials.append(api_key)
    return CredentialSafeTransport(transport, credentials)


def default_spool_base() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "or_middleware" / "spool"


def spool_directory(dest: SpooledDestination, settings: Settings, target: WireTarget) -> Path:
    """``<SPOOL_DIR>/<destination>-<hash>``: the hash covers service, URL and protocol, so a batch
    is only ever re-sent to the endpoint (and in the encoding) it was spooled for."""
    base = Path(dest.spool_dir or settings.spool_dir or default_spool_base()).expanduser()
    identity = f"{settings.resolved_service_name}\n{dest.kind}\n{target.url}\n{target.protocol}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return base / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', dest.name)}-{digest}"


def _spool(dest: SpooledDestination, settings: Settings, target: WireTarget) -> DiskSpool | None:
    if dest.spool_max_mb <= 0:
        return None
    directory = spool_directory(dest, settings, target)
    try:
        return DiskSpool(directory, int(dest.spool_max_mb * 1024 * 1024))
    except OSError as exc:
        logger.warning("or_middleware: destination %s has no spool (cannot use %s: %s); spans are "
                       "dropped while it is unreachable", dest.name, directory, exc)
        return None


def content_event_target(dest: DestinationSettings, target: WireTarget | None) -> WireTarget | None:
    """Where ``CONTENT=event`` sends its log records: beside the traces, over OTLP/HTTP protobuf."""
    if not isinstance(dest, RemoteDestination) or dest.content != "event":
        return None
    if target is None or not target.protocol.startswith("http/") or not target.url.rstrip("/").endswith("/v1/traces"):
        raise ConfigError(f"{dest.env_name('content')}=event: needs an OTLP/HTTP destination whose traces URL ends "
                          "in /v1/traces (the log records go to /v1/logs beside it); use attributes here")
    from or_middleware.export.content_events import logs_url

    return replace(target, url=logs_url(target.url), protocol="http/protobuf")


def build_sink(dest: DestinationSettings, settings: Settings, target: WireTarget | None, stats: PipelineStats,
               drops: Callable[[int, str], None], *, spool: bool = True,
               content_events: ContentToEvent | None = None) -> SpanSink:
    if isinstance(dest, LocalDestination) and dest.is_postgres:
        return postgres_store_sink(dest, settings, stats, drops, spool=spool)
    if target is None:
        return ExporterSink(EXPORTER_FACTORIES[dest.kind](dest), stats)
    assert isinstance(dest, RemoteDestination)
    events_target = content_event_target(dest, target)
    if events_target is not None and content_events is not None:
        from or_middleware.export.content_events import ContentEventLogs, ContentEventSink

        logs_stats = PipelineStats()  # the destination's stats count spans; its events are apart
        logs = WireDelivery(f"{dest.name}.content_events", ContentEventLogs(),
                            wire_transport(events_target, dest, ContentEventLogs.content_type), stats=logs_stats,
                            on_drop=DropCounter(f"{dest.name} content events", logs_stats),
                            spool=_spool(dest, settings, events_target) if spool else None,
                            max_retries=dest.max_retries, max_backoff_s=dest.max_backoff_s)
        spans = build_sink(dest, settings, target, stats, drops, spool=spool)
        return ContentEventSink(spans, logs, content_events)
    encoding = encoding_for(target, dest)
    return WireDelivery(
        dest.name,
        encoding,
        wire_transport(target, dest, encoding.content_type),
        stats=stats,
        on_drop=drops,
        spool=_spool(dest, settings, target) if spool else None,
        max_retries=dest.max_retries,
        max_backoff_s=dest.max_backoff_s,
    )


class ResourceAttributes:
    """Adds attributes to every span's resource (``openinference.project.name``); cached per resource."""

    def __init__(self, attributes: dict[str, str]) -> None:
        self._extra = Resource(attributes)
        self._merged: dict[int, tuple[Resource, Resource]] = {}

    def __call__(self, draft: SpanDraft) -> None:
        cached = self._merged.get(id(draft.resource))
        if cached is None or cached[0] is not draft.resource:
            cached = (draft.resource, draft.resource.merge(self._extra))
            if len(self._merged) > 64:
                self._merged.clear()
            self._merged[id(draft.resource)] = cached
        draft.resource = cached[1]


def build_preparation(dest: DestinationSettings, settings: Settings, target: WireTarget | None,
                      content_events: ContentToEvent | None = None,
                      shared: dict[tuple[object, ...], SharedTransforms] | None = None) -> SpanPreparation:
    """The destination's preparation. With ``shared`` (one dict per runtime), destinations whose
    transforms are configured alike and keep no state share them (export/preparation.py)."""
    transforms: list[DraftTransform] = []
    key: list[object] | None = []  # what makes the chain what it is; None: it keeps state, not shared
    if dest.span_scope == "genai":
        transforms.append(detach_from_parent)
        key.append("detach")
    if settings.privacy_for(dest):  # before the dialect: it derives its attributes from allowed ones only
        transforms.append(PrivacyAllowlist())
        key.append("privacy")
    elif settings.redacts_pii_for(dest):
        transforms.append(ContentRedaction(PIIRedactor(settings.pii_patterns, settings.pii_phone_region)))
        key.append(("redact", repr(settings.pii_patterns), settings.pii_phone_region))
    if target is not None and target.resource:
        transforms.append(ResourceAttributes(target.resource))
        key.append(("resource", tuple(sorted(target.resource.items()))))
    semconv = genai_semconv()
    if semconv.latest and target is not None and target.protocol != "posthog":  # OTLP wire destinations
        transforms.append(LatestAttributeNames(semconv))
        key.append(("latest", semconv.current))
    if content_events is not None:  # CONTENT=event: after privacy and PII, before the dialect
        transforms.append(content_events)
        key = None  # collects events for its own destination
    if dest.resolved_dialect != "semconv" and (target is None or target.protocol != "posthog"):
        from or_middleware.export.dialects import DIALECTS, dialect_for

        dialect = dialect_for(dest.resolved_dialect, privacy=settings.privacy_for(dest))
        transforms.append(dialect)
        stateless = dialect is DIALECTS.get(dest.resolved_dialect)  # root-filling ones remember traces
        key = [*key, ("dialect", dest.resolved_dialect)] if key is not None and stateless else None
    transforms.append(CredentialScrubber())
    selection = SpanSelection(dest.filter, dest.sample_rate, llm_traces_only=dest.span_scope == "traces")
    if shared is None or key is None:
        return SpanPreparation(selection, transforms)
    chain = shared.setdefault(tuple(key), SharedTransforms(transforms))
    chain.consumers += 1
    return SpanPreparation(selection, chain)


def _any_span(span: ReadableSpan) -> bool:
    return True


def build_pipeline(dest: DestinationSettings, settings: Settings,
                   shared: dict[tuple[object, ...], SharedTransforms] | None = None) -> DestinationPipeline:
    target = wire_target(dest, settings)
    stats = PipelineStats()
    drops = DropCounter(dest.name, stats)
    content_events = None
    if content_event_target(dest, target) is not None:
        from or_middleware.export.content_events import ContentToEvent

        content_events = ContentToEvent()
    sink = build_sink(dest, settings, target, stats, drops, content_events=content_events)
    pipeline = DestinationPipeline(
        dest.name,
        sink,
        stats=stats,
        drops=drops,
        accepts=is_genai_span if dest.span_scope == "genai" else _any_span,
        preparation=build_preparation(dest, settings, target, content_events, shared),
        max_queue_size=dest.max_queue_size,
        schedule_delay_s=dest.schedule_delay_ms / 1000,
    )
    if sink.due_in() is not None:  # an earlier run left batches in the spool: re-send them now
        pipeline.start()
    return pipeline
