"""Presets for the OTLP backends OpenRouter Broadcast also serves: each one's settings (the
``OR_MIDDLEWARE_<NAME>__*`` variables) beside the :class:`WireTarget` it maps to.

Every endpoint, header and required field comes from the vendor's documentation, cited beside
the preset. All send OTLP/HTTP protobuf (the one encoding every one of them takes). Each preset
has ``ENDPOINT`` to point it elsewhere (a proxy, a region not listed, a local receiver in tests).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, model_validator

from or_middleware.config import ConfigError, OtlpDestination, RemoteDestination, SpanScope, register_preset
from or_middleware.export.wire import WireTarget, secret, timeout_of, with_path

if TYPE_CHECKING:
    from or_middleware.config import Settings

_HOST_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")


def _target(url: str, headers: dict[str, str], dest: RemoteDestination,
            resource: dict[str, str] | None = None) -> WireTarget:
    return WireTarget(url, "http/protobuf", headers, resource or {}, timeout=timeout_of(dest))


# -- Datadog -------------------------------------------------------------------------------------
# https://docs.datadoghq.com/opentelemetry/setup/otlp_ingest/traces/ : POST https://otlp.<site>/v1/traces,
# http/protobuf, header dd-api-key; "compute_stats=true" makes Datadog compute trace metrics.


class DatadogDestination(RemoteDestination):
    """Datadog's OTLP traces intake (agentless): ``dd-api-key`` header, per-site endpoint."""

    kind: ClassVar[str] = "datadog"
    default_spans: ClassVar[SpanScope] = "all"
    required: ClassVar[tuple[str, ...]] = ("api_key",)
    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)

    api_key: SecretStr | None = None
    site: str = "datadoghq.com"  # us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, ap1.datadoghq.com, ...
    endpoint: str | None = None  # None: https://otlp.<SITE>/v1/traces
    compute_stats: bool = True  # APM trace metrics for these spans

    @model_validator(mode="after")
    def _valid_site(self) -> DatadogDestination:
        if not _HOST_NAME.fullmatch(self.site):
            raise ConfigError(f"{self.env_name('site')}={self.site!r}: expected a Datadog site such as "
                              "datadoghq.com, us3.datadoghq.com or datadoghq.eu")
        return self


def datadog_target(dest: DatadogDestination, settings: Settings) -> WireTarget:
    headers = {"dd-api-key": secret(dest.api_key)}
    if dest.compute_stats:
        headers["compute_stats"] = "true"
    return _target(with_path(dest.endpoint or f"https://otlp.{dest.site}", "/v1/traces"), headers, dest)


# -- New Relic -----------------------------------------------------------------------------------
# https://docs.newrelic.com/docs/opentelemetry/best-practices/opentelemetry-otlp/ : the license key in
# the api-key header; OTLP/HTTP protobuf recommended; one endpoint per region.

NEWRELIC_ENDPOINTS = {
    "us": "https://otlp.nr-data.net",
    "eu": "https://otlp.eu01.nr-data.net",
    "fedramp": "https://gov-otlp.nr-data.net",
}


class NewRelicDestination(RemoteDestination):
    """New Relic's native OTLP endpoint: ``api-key`` header (an Ingest - License key)."""

    kind: ClassVar[str] = "newrelic"
    default_spans: ClassVar[SpanScope] = "all"
    required: ClassVar[tuple[str, ...]] = ("api_key",)
    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)

    api_key: SecretStr | None = None
    region: Literal["us", "eu", "fedramp"] = "us"
    endpoint: str | None = None  # None: the region's endpoint; /v1/traces is appended


def newrelic_target(dest: NewRelicDestination, settings: Settings) -> WireTarget:
    base = dest.endpoint or NEWRELIC_ENDPOINTS[dest.region]
    return _target(with_path(base, "/v1/traces"), {"api-key": secret(dest.api_key)}, dest)


# -- Sentry --------------------------------------------------------------------------------------
# https://docs.sentry.io/concepts/otlp/direct/traces/ : OTLP traces URL and the header
# "x-sentry-auth: sentry sentry_key=<public key>", both shown under Client Keys (DSN); the URL is
# <scheme>://<host>/api/<project id>/integration/otlp/v1/traces (getsentry/sentry projectkey.py).


class SentryDsn:
    """``https://<public key>@<host>[/<path>]/<project id>``, as Sentry shows it."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn.strip())
        path, _, project_id = parts.path.rstrip("/").rpartition("/")
        problem = (
            "the scheme must be http or https" if parts.scheme not in ("http", "https")
            else "the public key before @ is missing" if not parts.username
            else "the host is missing" if not parts.hostname
            else "the project id at the end of the path must be a number" if not project_id.isdigit()
            else "it has a query or fragment" if parts.query or parts.fragment
            else ""
        )
        if problem:
            raise ValueError(problem)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        self.public_key = parts.username or ""
        self.traces_url = f"{parts.scheme}://{netloc}{path}/api/{project_id}/integration/otlp/v1/traces"


class SentryDestination(RemoteDestination):
    """Sentry's OTLP ingestion: endpoint and ``x-sentry-auth`` derived from the project's DSN."""

    kind: ClassVar[str] = "sentry"
    default_spans: ClassVar[SpanScope] = "all"
    required: ClassVar[tuple[str, ...]] = ("dsn",)
    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)

    dsn: SecretStr | None = None  # Project settings > Client Keys (DSN)
    endpoint: str | None = None  # None: derived from the DSN

    @model_validator(mode="after")
    def _valid_dsn(self) -> SentryDestination:
        if self.dsn is not None:
            try:
                SentryDsn(self.dsn.get_secret_value())
            except ValueError as exc:  # the DSN holds the key: the message names the variable, not the value
                raise ConfigError(f"{self.env_name('dsn')}: expected a Sentry DSN like "
                                  f"https://<public key>@o0.ingest.sentry.io/<project id> ({exc})") from None
        return self


def sentry_target(dest: SentryDestination, settings: Settings) -> WireTarget:
    dsn = SentryDsn(secret(dest.dsn))
    return _target(dest.endpoint or dsn.traces_url, {"x-sentry-auth": f"sentry sentry_key={dsn.public_key}"}, dest)


# -- Opik (Comet) --------------------------------------------------------------------------------
# https://www.comet.com/docs/opik/integrations/opentelemetry : endpoint .../api/v1/private/otel,
# headers Authorization=<api key>, projectName=<project>, Comet-Workspace=<workspace>; a
# self-hosted Opik needs neither key nor workspace.

OPIK_CLOUD = "https://www.comet.com/opik/api/v1/private/otel"


class OpikDestination(RemoteDestination):
    """Comet Opik's OTLP endpoint: ``Authorization`` key, ``Comet-Workspace`` and ``projectName`` headers."""

    kind: ClassVar[str] = "opik"
    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)

    api_key: SecretStr | None = None  # Comet cloud; not needed by a self-hosted Opik
    workspace: str | None = None  # Comet cloud workspace
    project: str | None = None  # None: the service name
    endpoint: str = OPIK_CLOUD  # a self-hosted Opik: http://<host>:5173/api/v1/private/otel

    @model_validator(mode="after")
    def _cloud_needs_key(self) -> OpikDestination:
        if urlsplit(self.endpoint).hostname == urlsplit(OPIK_CLOUD).hostname:
            missing = [self.env_name(f) for f in ("api_key", "workspace") if not getattr(self, f)]
            if missing:
                raise ConfigError(f"destination {self.name or self.kind!r} needs {', '.join(missing)} "
                                  f"(Comet cloud; a self-hosted Opik needs {self.env_name('endpoint')} instead)")
        return self


def opik_target(dest: OpikDestination, settings: Settings) -> WireTarget:
    headers = {"projectname": dest.project or settings.resolved_service_name}
    if dest.api_key:
        headers["authorization"] = secret(dest.api_key)
    if dest.workspace:
        headers["comet-workspace"] = dest.workspace
    return _target(with_path(dest.endpoint, "/v1/traces"), headers, dest)


# -- W&B Weave -----------------------------------------------------------------------------------
# https://docs.wandb.ai/weave/guides/tracking/otel : POST https://trace.wandb.ai/otel/v1/traces,
# application/x-protobuf, header wandb-api-key, resource attributes wandb.entity and wandb.project.


class WeaveDestination(RemoteDestination):
    """W&B Weave's OTLP endpoint: ``wandb-api-key`` header, entity and project as resource attributes."""

    kind: ClassVar[str] = "weave"
    required: ClassVar[tuple[str, ...]] = ("api_key", "entity", "project")
    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)

    api_key: SecretStr | None = None
    entity: str | None = None  # the W&B team or user name
    project: str | None = None
    endpoint: str = "https://trace.wandb.ai/otel/v1/traces"  # dedicated: https://<sub>.wandb.io/traces/otel/v1/traces


def weave_target(dest: WeaveDestination, settings: Settings) -> WireTarget:
    resource = {"wandb.entity": dest.entity or "", "wandb.project": dest.project or ""}
    return _target(with_path(dest.endpoint, "/otel/v1/traces"), {"wandb-api-key": secret(dest.api_key)}, dest,
                   resource)


# -- Elastic -------------------------------------------------------------------------------------
# https://www.elastic.co/docs/reference/opentelemetry/motlp/managed-otlp-endpoint : the Elastic
# Cloud Managed OTLP Endpoint of the project, header "Authorization: ApiKey <key>".


class ElasticDestination(RemoteDestination):
    """Elastic Cloud's Managed OTLP Endpoint: ``Authorization: ApiKey``."""

    kind: ClassVar[str] = "elastic"
    default_spans: ClassVar[SpanScope] = "all"
    required: ClassVar[tuple[str, ...]] = ("endpoint", "api_key")
    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)

    endpoint: str | None = None  # https://<project>.ingest.<region>.elastic.cloud:443; /v1/traces is appended
    api_key: SecretStr | None = None


def elastic_target(dest: ElasticDestination, settings: Settings) -> WireTarget:
    return _target(with_path(dest.endpoint or "", "/v1/traces"), {"authorization": f"ApiKey {secret(dest.api_key)}"},
                   dest)


# -- Honeycomb -----------------------------------------------------------------------------------
# https://docs.honeycomb.io/send-data/opentelemetry/ : https://api.honeycomb.io (EU:
# https://api.eu1.honeycomb.io), /v1/traces, header x-honeycomb-team; x-honeycomb-dataset only
# for Honeycomb Classic.

HONEYCOMB_ENDPOINTS = {"us": "https://api.honeycomb.io", "eu": "https://api.eu1.honeycomb.io"}


class HoneycombDestination(RemoteDestination):
    """Honeycomb's OTLP endpoint: ``x-honeycomb-team`` header (an ingest API key)."""

    kind: ClassVar[str] = "honeycomb"
    default_spans: ClassVar[SpanScope] = "all"
    required: ClassVar[tuple[str, ...]] = ("api_key",)
    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)

    api_key: SecretStr | None = None
    region: Literal["us", "eu"] = "us"
    dataset: str | None = None  # Honeycomb Classic only
    endpoint: str | None = None  # None: the region's endpoint; /v1/traces is appended


def honeycomb_target(dest: HoneycombDestination, settings: Settings) -> WireTarget:
    headers = {"x-honeycomb-team": secret(dest.api_key)}
    if dest.dataset:
        headers["x-honeycomb-dataset"] = dest.dataset
    return _target(with_path(dest.endpoint or HONEYCOMB_ENDPOINTS[dest.region], "/v1/traces"), headers, dest)


# -- Dynatrace -----------------------------------------------------------------------------------
# https://docs.dynatrace.com/docs/shortlink/api-otlp-traces : POST
# https://<environment-id>.live.dynatrace.com/api/v2/otlp/v1/traces, application/x-protobuf only,
# an access token with the openTelemetryTrace.ingest scope as "Authorization: Api-Token <token>".


class DynatraceDestination(RemoteDestination):
    """Dynatrace's OTLP API: ``Authorization: Api-Token``."""

    kind: ClassVar[str] = "dynatrace"
    default_spans: ClassVar[SpanScope] = "all"
    required: ClassVar[tuple[str, ...]] = ("endpoint", "api_token")
    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)

    endpoint: str | None = None  # https://<environment-id>.live.dynatrace.com/api/v2/otlp; /v1/traces is appended
    api_token: SecretStr | None = None  # scope openTelemetryTrace.ingest


def dynatrace_target(dest: DynatraceDestination, settings: Settings) -> WireTarget:
    headers = {"authorization": f"Api-Token {secret(dest.api_token)}"}
    return _target(with_path(dest.endpoint or "", "/v1/traces"), headers, dest)


# -- OpenTelemetry Collector ---------------------------------------------------------------------


class OtelCollectorDestination(OtlpDestination):
    """Broadcast's ``otel-collector``: the ``otlp`` preset under its own name.

    ``OR_MIDDLEWARE_DESTINATIONS=otel-collector`` (or ``otel_collector``) reads
    ``OR_MIDDLEWARE_OTEL_COLLECTOR__*``: shells cannot set a variable with ``-`` in its name.
    """

    kind: ClassVar[str] = "otel_collector"


VENDOR_PRESETS = (DatadogDestination, NewRelicDestination, SentryDestination, OpikDestination, WeaveDestination,
                  ElasticDestination, HoneycombDestination, DynatraceDestination, OtelCollectorDestination)
for _preset in VENDOR_PRESETS:
    register_preset(_preset)

VENDOR_TARGETS = {
    "datadog": datadog_target,
    "newrelic": newrelic_target,
    "sentry": sentry_target,
    "opik": opik_target,
    "weave": weave_target,
    "elastic": elastic_target,
    "honeycomb": honeycomb_target,
    "dynatrace": dynatrace_target,
}
