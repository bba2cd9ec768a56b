"""Settings: every option, its type, default and env name, in one place (pydantic-settings).

Top-level options read ``OR_MIDDLEWARE_<FIELD>``; each destination named in
``OR_MIDDLEWARE_DESTINATIONS`` reads ``OR_MIDDLEWARE_<NAME>__<FIELD>``. A second
destination of the same kind is named ``<kind>_<label>`` (``otlp_tempo`` reads
``OR_MIDDLEWARE_OTLP_TEMPO__ENDPOINT``). Bad values fail at start-up with a
:class:`ConfigError` naming the variable, the value and what is accepted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from or_middleware.export.filters import FilterRules, parse_filter_rules
from or_middleware.export.redaction import parse_pii_patterns
from or_middleware.lazy_registry import LazyRegistry
from or_middleware.ratelimit import RateLimit
from or_middleware.secrets import is_sensitive_name, safe_url, scrub_secrets
from or_middleware.variables import unknown_variables

ENV_PREFIX = "OR_MIDDLEWARE_"
_HEADLINE = "invalid configuration: "

Dialect = Literal["semconv", "openinference", "langfuse", "langsmith"]
# genai: the LLM calls only, each the root of its trace; traces: the requests that made an LLM call,
# whole (server span with its LLM calls nested); all: every span, also requests without LLM calls.
SpanScope = Literal["genai", "traces", "all"]


class ConfigError(ValueError):
    """A setting is malformed; the message names the variable (or, for a value given in code, the
    class and field: ``Settings(max_content_bytes=1)``) and the fix."""

    @classmethod
    def from_validation(cls, exc: ValidationError, env_prefix: str, explicit: Collection[str] = (),
                        owner: str = "Settings") -> ConfigError:
        lines = []
        for error in exc.errors(include_url=False):
            nested = error.get("ctx", {}).get("error")
            loc = error["loc"]
            if isinstance(nested, ConfigError):
                line = str(nested).removeprefix(_HEADLINE)
                for field in explicit:  # a value given in code: name the field, not the variable
                    variable = re.escape(env_prefix + field.upper())
                    line = re.sub(rf"\b{variable}\b(?!_)(=(?:'[^']*'|\"[^\"]*\"|[^:\s]*))?",
                                  lambda m, f=field: f"{owner}({f}{m.group(1) or '=...'})", line)
                lines.append(scrub_secrets(line))
                continue
            value = error.get("input")
            if loc and loc[0] in explicit:
                items = "".join(f"[{part}]" for part in loc[1:] if isinstance(part, int))
                shown = _shown(str(loc[0]), value) or "=..."
                lines.append(scrub_secrets(f"{owner}({loc[0]}{items}{shown}): {error['msg']}"))
                continue
            field = "__".join(str(part) for part in loc if not isinstance(part, int)) or "?"
            name = f"{env_prefix}{field.upper()}"
            shown = _shown(field, value)
            lines.append(scrub_secrets(f"{name}{shown}: {error['msg']}"))  # start-up logs keep no keys
        return cls(_HEADLINE + "; ".join(dict.fromkeys(lines)))


def _shown(field: str, value: Any) -> str:
    """``=<value>`` for the error line, without a credential: nothing for credential fields (keys,
    tokens, headers, DSNs), URLs without user info or sensitive query values."""
    last = field.rsplit("__", 1)[-1]
    if isinstance(value, dict) or is_sensitive_name(last) or last.endswith(("headers", "dsn")):
        return ""
    if isinstance(value, str):
        return shown_url(value)
    return f"={value!r}"


def shown_url(value: str | None) -> str:
    """``=<url>`` without user info or sensitive query values; nothing when a user:password@ is
    still there (a value too malformed for ``safe_url`` to take apart, e.g. ``u:pw@host``)."""
    shown = safe_url(value or "")
    return "" if "@" in shown else f"={shown!r}"


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class _ReportingSettings(BaseSettings):
    """BaseSettings whose validation errors name the environment variable."""

    def __init__(self, **values: Any) -> None:
        prefix = values.get("_env_prefix") or self.model_config.get("env_prefix") or ""
        # keyword arguments given in code (a preset loaded from the environment gets only its name)
        explicit = [k for k in values if not k.startswith("_") and not (k == "name" and "_env_prefix" in values)]
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError.from_validation(exc, prefix, explicit, type(self).__name__) from None


class DestinationSettings(_ReportingSettings):
    """What every destination has. Subclasses are the presets (``kind``)."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True, defer_build=True)

    kind: ClassVar[str] = ""
    default_spans: ClassVar[SpanScope] = "genai"
    default_dialect: ClassVar[Dialect] = "semconv"
    required: ClassVar[tuple[str, ...]] = ()
    # The backend also takes OTLP metrics (see or_middleware/metrics.py for where they are sent).
    accepts_metrics: ClassVar[bool] = False

    name: str = ""
    privacy_mode: bool | None = None  # None: the global OR_MIDDLEWARE_PRIVACY_MODE
    redact_pii: bool | None = None  # None: the global OR_MIDDLEWARE_REDACT_PII
    spans: SpanScope | None = None  # None: the preset's default
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    filter: Annotated[FilterRules | None, NoDecode] = None  # JSON rule set, see export/filters.py
    dialect: Dialect | None = None  # None: the preset's default
    max_queue_size: int = Field(2048, ge=1)
    schedule_delay_ms: int = Field(1000, ge=1)
    metrics: bool = True  # false: a destination that accepts metrics gets traces only

    def __init__(self, **values: Any) -> None:
        # Built in code (not from OR_MIDDLEWARE_DESTINATIONS), a destination still reads only its
        # own OR_MIDDLEWARE_<NAME>__* variables, never bare ENDPOINT / HOST / API_KEY ones.
        name = values.get("name") or self.kind
        values.setdefault("_env_prefix", f"{ENV_PREFIX}{name.upper()}__")
        super().__init__(**values)

    @field_validator("filter", mode="before")
    @classmethod
    def _parse_filter(cls, value: Any) -> Any:
        return parse_filter_rules(value)

    @model_validator(mode="after")
    def _check_required(self) -> DestinationSettings:
        missing = [field for field in self.required if not getattr(self, field)]
        if missing:
            prefix = f"{ENV_PREFIX}{(self.name or self.kind).upper()}__"
            names = ", ".join(prefix + field.upper() for field in missing)
            raise ConfigError(f"destination {self.name or self.kind!r} needs {names}")
        return self

    @property
    def span_scope(self) -> SpanScope:
        return self.spans or self.default_spans

    @property
    def resolved_dialect(self) -> Dialect:
        return self.dialect or self.default_dialect

    def env_name(self, field: str) -> str:
        """The variable that sets ``field`` of this destination, for messages."""
        return f"{ENV_PREFIX}{(self.name or self.kind).upper()}__{field.upper()}"


def usable_directory(value: str | None) -> str | None:
    """A directory path we may create: ``~user`` expands, and no existing part of it is a file."""
    if not value:
        return value
    try:
        path = Path(value).expanduser()
    except RuntimeError:
        raise ValueError(f"cannot expand {value.split('/')[0]!r}: no such user") from None
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if os.path.lexists(probe) and not probe.is_dir():
        raise ValueError(f"{probe} exists and is not a directory")
    return value


def _http_url(value: str | None) -> str | None:
    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        raise ValueError("expected an http:// or https:// URL")
    return value


class SpooledDestination(DestinationSettings):
    """A destination that may be down: timeout, retries with backoff, and the on-disk spool.

    A batch the destination cannot take now (unreachable, 429, 5xx, a database restarting) is
    retried ``MAX_RETRIES`` times with exponential backoff (``Retry-After`` honoured), then written
    to the spool and re-sent, oldest first, once the destination answers again. Only a full spool
    drops spans.
    """

    timeout: float | None = Field(None, gt=0)  # seconds; None: 10 (otlp: OTEL_EXPORTER_OTLP_TIMEOUT)
    max_retries: int = Field(3, ge=0)
    max_backoff_s: float = Field(30.0, gt=0)
    spool_dir: str | None = None  # None: OR_MIDDLEWARE_SPOOL_DIR, else the user cache dir
    spool_max_mb: float = Field(64.0, ge=0)  # 0: no spool (spans are dropped when delivery fails)

    @field_validator("spool_dir")
    @classmethod
    def _usable_spool_dir(cls, value: str | None) -> str | None:
        return usable_directory(value)


class RemoteDestination(SpooledDestination):
    """A destination across the network (OTLP, a vendor's API, a webhook)."""

    # event: prompts and completions as OTLP log records gen_ai.client.inference.operation.details
    # (to the logs endpoint beside the traces one), not as span attributes (export/content_events.py)
    content: Literal["attributes", "event"] = "attributes"

    url_fields: ClassVar[tuple[str, ...]] = ()  # fields that must be http(s) URLs

    @model_validator(mode="after")
    def _check_urls(self) -> RemoteDestination:
        for field in self.url_fields:
            value = getattr(self, field)
            try:
                _http_url(value)
            except ValueError as exc:
                raise ConfigError(f"{self.env_name(field)}{shown_url(value)}: {exc}") from None
        return self


def parse_headers(value: str | None) -> dict[str, str]:
    """OTel's header syntax: ``k1=v1,k2=v2`` with URL-encoded values."""
    headers: dict[str, str] = {}
    for index, item in enumerate((value or "").split(","), start=1):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            # never quote the entry: it is likely a credential (a token pasted without its name)
            raise ValueError(f"expected key=value pairs separated by commas; entry {index} has no name or no '=' "
                             "(values are not shown: header values are credentials)")
        headers[unquote(key.strip()).lower()] = unquote(val.strip())
    return headers


class OtlpDestination(RemoteDestination):
    """Any OTLP endpoint. Unset fields fall back to the standard OTEL_EXPORTER_OTLP_* variables."""

    kind: ClassVar[str] = "otlp"
    default_spans: ClassVar[SpanScope] = "all"
    accepts_metrics: ClassVar[bool] = True

    endpoint: str | None = None  # full traces URL (http), or http(s)://host:port (grpc)
    headers: str | None = None
    protocol: Literal["http/protobuf", "http/json", "grpc"] | None = None
    compression: Literal["gzip", "none"] | None = None  # None: OTEL_EXPORTER_OTLP_COMPRESSION
    metrics_endpoint: str | None = None  # None: ENDPOINT with /v1/traces -> /v1/metrics

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: str | None) -> str | None:
        parse_headers(value)
        return value

    @field_validator("endpoint", "metrics_endpoint")
    @classmethod
    def _valid_endpoint(cls, value: str | None) -> str | None:
        return _http_url(value)

    def resolved_protocol(self) -> str:
        return (
            self.protocol
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )


class GrafanaDestination(RemoteDestination):
    """Grafana Cloud's OTLP gateway: Basic auth ``instance_id:api_token``."""

    kind: ClassVar[str] = "grafana"
    default_spans: ClassVar[SpanScope] = "all"
    accepts_metrics: ClassVar[bool] = True
    required: ClassVar[tuple[str, ...]] = ("endpoint", "instance_id", "api_token")

    endpoint: str | None = None  # https://otlp-gateway-<zone>.grafana.net[/otlp]; /otlp/v1/traces is appended
    instance_id: str | None = None
    api_token: SecretStr | None = None

    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)


class LangSmithDestination(RemoteDestination):
    """LangSmith's OTLP endpoint: ``x-api-key`` and ``Langsmith-Project`` headers."""

    kind: ClassVar[str] = "langsmith"
    default_dialect: ClassVar[Dialect] = "langsmith"
    default_spans: ClassVar[SpanScope] = "traces"  # nested: the request's root span over its LLM calls
    required: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key: SecretStr | None = None
    project: str | None = None  # None: LangSmith's default project
    endpoint: str = "https://api.smith.langchain.com"  # /otel/v1/traces is appended

    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)


class LangfuseDestination(RemoteDestination):
    """Langfuse's OTLP endpoint: Basic auth ``public_key:secret_key``, ingestion version 4."""

    kind: ClassVar[str] = "langfuse"
    default_dialect: ClassVar[Dialect] = "langfuse"
    default_spans: ClassVar[SpanScope] = "traces"  # nested: the request's root span over its LLM calls
    required: ClassVar[tuple[str, ...]] = ("public_key", "secret_key")

    public_key: str | None = None
    secret_key: SecretStr | None = None
    host: str = "https://cloud.langfuse.com"  # /api/public/otel/v1/traces is appended

    url_fields: ClassVar[tuple[str, ...]] = ("host",)


class SigNozDestination(RemoteDestination):
    """SigNoz Cloud (``signoz-ingestion-key`` header) or a self-hosted SigNoz collector."""

    kind: ClassVar[str] = "signoz"
    default_spans: ClassVar[SpanScope] = "all"
    accepts_metrics: ClassVar[bool] = True

    ingestion_key: SecretStr | None = None  # not needed by a self-hosted collector
    endpoint: str = "https://ingest.us.signoz.cloud:443/v1/traces"  # the full traces URL

    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)


class ArizeDestination(RemoteDestination):
    """Arize AX: OpenInference spans, ``authorization`` and ``arize-space-id`` headers."""

    kind: ClassVar[str] = "arize"
    default_dialect: ClassVar[Dialect] = "openinference"
    default_spans: ClassVar[SpanScope] = "traces"  # nested: the request's root span over its LLM calls
    required: ClassVar[tuple[str, ...]] = ("api_key", "space_id")

    api_key: SecretStr | None = None
    space_id: str | None = None
    project: str | None = None  # None: the service name
    base_url: str = "https://otlp.arize.com"  # /v1/traces is appended

    url_fields: ClassVar[tuple[str, ...]] = ("base_url",)


class PhoenixDestination(RemoteDestination):
    """A self-hosted Arize Phoenix: OpenInference spans under ``PROJECT``."""

    kind: ClassVar[str] = "phoenix"
    default_dialect: ClassVar[Dialect] = "openinference"
    default_spans: ClassVar[SpanScope] = "traces"  # nested: the request's root span over its LLM calls

    endpoint: str = "http://127.0.0.1:6006/v1/traces"  # the full traces URL
    project: str | None = None  # None: the service name
    api_key: SecretStr | None = None  # only for a Phoenix with authentication on (Bearer)

    url_fields: ClassVar[tuple[str, ...]] = ("endpoint",)


class BraintrustDestination(RemoteDestination):
    """Braintrust's OTLP endpoint: Bearer key, ``x-bt-parent: project_id:<id>`` (or ``project_name:``)."""

    kind: ClassVar[str] = "braintrust"
    required: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key: SecretStr | None = None
    project_id: str | None = None
    project_name: str | None = None  # instead of PROJECT_ID
    base_url: str = "https://api.braintrust.dev"  # /otel/v1/traces is appended

    url_fields: ClassVar[tuple[str, ...]] = ("base_url",)

    @model_validator(mode="after")
    def _needs_a_project(self) -> BraintrustDestination:
        if not (self.project_id or self.project_name):
            raise ConfigError(
                f"destination {self.name or self.kind!r} needs {self.env_name('project_id')} "
                f"(or {self.env_name('project_name')})"
            )
        return self


class PostHogDestination(RemoteDestination):
    """PostHog LLM analytics: ``$ai_generation`` events through the batch capture API (not OTLP)."""

    kind: ClassVar[str] = "posthog"
    required: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key: SecretStr | None = None  # the project API key (phc_...)
    host: str = "https://us.i.posthog.com"  # /batch/ is appended

    url_fields: ClassVar[tuple[str, ...]] = ("host",)


class ConsoleDestination(DestinationSettings):
    """A readable span tree on stderr (demo and debugging)."""

    kind: ClassVar[str] = "console"
    default_spans: ClassVar[SpanScope] = "all"


DEFAULT_STORE = "./or_traces.db"


class LocalDestination(SpooledDestination):
    """The store read by ``or-middleware report``/``ui``: a SQLite file (one machine) or a PostgreSQL
    database (a fleet). ``URL`` is either; ``PATH`` is its older name (both set and different: refused).

    After validation ``url`` and ``path`` hold the same store (a SQLite path or a postgresql:// URL).
    SQLite uses ``BUSY_TIMEOUT_MS``/``WRITE_RETRY_S``; PostgreSQL the spool settings and ``TIMEOUT``
    (connecting, and each batch's transaction, in seconds).
    """

    kind: ClassVar[str] = "local"
    url: str | None = None  # ./or_traces.db, sqlite:///path, or postgresql://user@host/db
    path: str | None = None  # the older name of URL (a SQLite path)
    busy_timeout_ms: int = Field(5000, ge=0)  # how long one write waits for another process's lock
    write_retry_s: float = Field(60.0, ge=0)  # how long a batch is retried before it counts as failed

    @model_validator(mode="after")
    def _one_store(self) -> LocalDestination:
        from or_middleware.store.locations import looks_like_conninfo, store_location_problem

        locations = {}
        for field in ("url", "path"):
            value = getattr(self, field)
            if value is not None:
                location, problem = store_location_problem(value)
                if problem:  # a key=value string may hold password=...: not shown
                    shown = "" if looks_like_conninfo(value) else shown_url(value)
                    raise ConfigError(f"{self.env_name(field)}{shown}: {problem}")
                locations[field] = location
        if len(set(locations.values())) > 1:
            raise ConfigError(f"{self.env_name('url')}{shown_url(self.url)} and {self.env_name('path')}"
                              f"{shown_url(self.path)} name different stores; set only {self.env_name('url')} "
                              f"({self.env_name('path')} is its older name)")
        self.url = self.path = locations.get("url") or locations.get("path") or DEFAULT_STORE
        return self

    @property
    def is_postgres(self) -> bool:
        from or_middleware.store.sql import is_postgres_url

        return is_postgres_url(self.url or "")


# The vendors' presets (export/vendors.py, export/webhook.py) are imported when one is named.
LAZY_PRESETS = {
    **dict.fromkeys(("datadog", "newrelic", "sentry", "opik", "weave", "elastic", "honeycomb", "dynatrace",
                     "otel_collector"), "or_middleware.export.vendors"),
    "webhook": "or_middleware.export.webhook",
}
PRESETS: LazyRegistry[type[DestinationSettings]] = LazyRegistry({
    cls.kind: cls
    for cls in (
        OtlpDestination,
        GrafanaDestination,
        LangSmithDestination,
        LangfuseDestination,
        SigNozDestination,
        ArizeDestination,
        PhoenixDestination,
        BraintrustDestination,
        PostHogDestination,
        ConsoleDestination,
        LocalDestination,
    )
}, LAZY_PRESETS)


def register_preset(cls: type[DestinationSettings]) -> type[DestinationSettings]:
    """Make a destination kind known to ``OR_MIDDLEWARE_DESTINATIONS``."""
    PRESETS[cls.kind] = cls
    return cls


def preset_for_name(name: str) -> type[DestinationSettings]:
    """``otlp`` -> otlp; ``otlp_tempo`` -> otlp (a second instance, labelled)."""
    key = name.lower()
    if key in PRESETS:
        return PRESETS[key]
    for kind in sorted(PRESETS.names(), key=len, reverse=True):
        if key.startswith(kind + "_") and len(key) > len(kind) + 1:
            return PRESETS[kind]
    accepted = ", ".join(sorted(PRESETS.names()))
    raise ConfigError(
        f"{ENV_PREFIX}DESTINATIONS: unknown destination {name!r}; accepted: {accepted} "
        f"(or <kind>_<label> for a second one of a kind, e.g. otlp_backup)"
    )


class SecuritySettings(_ReportingSettings):
    """Thresholds of the security signals (``OR_MIDDLEWARE_SECURITY__<FIELD>``), computed on the exporter side."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}SECURITY__", extra="ignore", validate_default=True)

    enabled: bool = True
    injection: bool = True  # known prompt-injection phrasings in the caller's new turn
    # a prompt longer than FACTOR x the median of the route's last WINDOW prompts (and >= MIN_CHARS)
    prompt_length_factor: float = Field(4.0, gt=1)
    prompt_length_min_chars: int = Field(2000, ge=0)
    prompt_length_window: int = Field(200, ge=1)
    prompt_length_min_samples: int = Field(20, ge=1)
    # more than BURST_REQUESTS calls from one user within BURST_WINDOW_S seconds
    burst_requests: int = Field(30, ge=1)
    burst_window_s: float = Field(10.0, gt=0)
    # more than MODEL_SWITCH_MODELS distinct requested models from one user within the window
    model_switch_models: int = Field(4, ge=1)
    model_switch_window_s: float = Field(600.0, gt=0)
    # a call costing more than FACTOR x the median of the user's last WINDOW calls (and >= MIN_USD)
    cost_spike_factor: float = Field(10.0, gt=1)
    cost_spike_min_usd: float = Field(0.05, ge=0)
    cost_spike_window: int = Field(100, ge=1)
    cost_spike_min_samples: int = Field(10, ge=1)
    max_tracked: int = Field(10_000, ge=1)  # users and routes kept in memory; the least recent go first


class LLMHost(BaseModel):
    """One ``[provider=]base_url`` entry of OR_MIDDLEWARE_LLM_HOSTS."""

    provider: str
    base_url: str


def parse_llm_hosts(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    hosts = []
    for entry in _comma_list(value):
        provider, sep, url = entry.partition("=")
        if not sep:
            provider, url = "", entry
        parts = urlsplit(url.strip())
        try:
            parts.port  # noqa: B018 - raises on a port outside 0-65535 or not a number
        except ValueError:
            raise ValueError(f"entry {entry!r}: the port must be a number from 1 to 65535") from None
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
            raise ValueError(f"entry {entry!r}: expected [provider=]http(s)://host[:port][/path]")
        hosts.append({"provider": provider.strip().lower() or (parts.hostname or "openai"), "base_url": url})
    return hosts


class Settings(_ReportingSettings):
    """All options. ``Settings()`` reads the environment; keyword arguments override it."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    service_name: str | None = None
    destinations: Annotated[list[str | DestinationSettings], NoDecode] = Field(
        default_factory=lambda: ["local"]
    )
    privacy_mode: bool = True
    redact_pii: bool = False
    # extra PII patterns: JSON {"NAME": "regex", ...} -> [NAME], or a JSON list of regexes -> [PII]
    pii_patterns: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    pii_phone_region: str = "US"  # region of phone numbers written without +country code
    spool_dir: str | None = None  # base of every remote destination's spool (default: user cache dir)
    llm_hosts: Annotated[list[LLMHost], NoDecode] = Field(default_factory=list)
    # auto: an LLM API request (known path + the API's body shape) is traced on any host;
    # listed: only calls to LLM_HOSTS entries and the built-in provider hosts.
    detect: Literal["auto", "listed"] = "auto"
    user_header: str = "x-user-id"
    session_header: str = "x-session-id"
    link_openrouter: bool = True
    propagate_traceparent: Literal["gateways", "all", "none"] = "gateways"
    trace_name: str | None = None
    # Shutdown (ASGI lifespan, then exit) sends what is queued within this many seconds in all,
    # whatever the number of destinations; what could not be sent by then is spooled.
    shutdown_budget_s: float = Field(5.0, ge=0)
    max_content_bytes: int = Field(64 * 1024, ge=256)
    max_link_body_bytes: int = Field(4 * 1024 * 1024, ge=0)
    max_response_parse_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # Another instrumentation (OpenLLMetry, OpenInference, Logfire) already traces an LLM call:
    # auto = link to its span and start none of ours; off = ours too, as a child of theirs.
    deduplicate: Literal["auto", "off"] = "auto"
    # The app has its own SDK TracerProvider: also hand it our spans (content stripped), so its
    # backend holds one trace without holes.
    export_to_app_provider: bool = True
    # e.g. 60/min: a user over it is answered 429 + Retry-After before the app runs (off when unset)
    user_rate_limit: Annotated[RateLimit | None, NoDecode] = None
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    # log each outbound POST that looks like an LLM call, traced or why not (or_middleware/announce.py)
    debug: bool = False

    _destination_settings: list[DestinationSettings] = PrivateAttr(default_factory=list)

    def __init__(self, **values: Any) -> None:
        # A misspelled variable would leave a default in force without a word: refuse it first.
        unknown = unknown_variables(os.environ, ENV_PREFIX, Settings, PRESETS, preset_for_name)
        if unknown:  # one line, however many: the first few, and how many more
            more = f"; and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ConfigError(_HEADLINE + "; ".join(unknown[:5]) + more)
        super().__init__(**values)

    @field_validator("destinations", mode="before")
    @classmethod
    def _split_destinations(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("llm_hosts", mode="before")
    @classmethod
    def _split_llm_hosts(cls, value: Any) -> Any:
        return parse_llm_hosts(value)

    @field_validator("pii_patterns", mode="before")
    @classmethod
    def _compile_pii_patterns(cls, value: Any) -> Any:
        return parse_pii_patterns(value)

    @field_validator("user_rate_limit", mode="before")
    @classmethod
    def _parse_rate_limit(cls, value: Any) -> Any:
        if isinstance(value, str):
            return RateLimit.parse(value) if value.strip() else None
        return value

    @field_validator("spool_dir")
    @classmethod
    def _usable_spool_dir(cls, value: str | None) -> str | None:
        return usable_directory(value)

    @field_validator("pii_phone_region")
    @classmethod
    def _region_code(cls, value: str) -> str:
        # The shape only: phonenumbers' region list is loaded (and checked, export/redaction.py) when
        # a destination redacts PII. phonenumbers takes upper case only: "gb" would redact nothing.
        region = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", region):
            raise ValueError("expected a two-letter region code (ISO 3166-1), e.g. US, GB or DE")
        return region

    @field_validator("user_header", "session_header")
    @classmethod
    def _lower_header(cls, value: str) -> str:
        return value.strip().lower()

    @model_validator(mode="after")
    def _load_destinations(self) -> Settings:
        loaded: list[DestinationSettings] = []
        seen: set[str] = set()
        for entry in self.destinations:
            if isinstance(entry, DestinationSettings):
                destination = entry
                if not destination.name:
                    destination.name = destination.kind
            else:
                entry = entry.replace("-", "_")  # otel-collector: a variable name cannot hold "-"
                preset = preset_for_name(entry)
                destination = preset(_env_prefix=f"{ENV_PREFIX}{entry.upper()}__", name=entry.lower())
            if destination.name in seen:
                raise ConfigError(
                    f"{ENV_PREFIX}DESTINATIONS: {destination.name!r} is listed twice; "
                    "name a second one <kind>_<label>"
                )
            seen.add(destination.name)
            loaded.append(destination)
        self._destination_settings = loaded
        return self

    @property
    def resolved_service_name(self) -> str:
        return self.service_name or os.environ.get("OTEL_SERVICE_NAME") or "or-middleware-app"

    def destination_settings(self) -> list[DestinationSettings]:
        return list(self._destination_settings)

    def privacy_for(self, destination: DestinationSettings) -> bool:
        return self.privacy_mode if destination.privacy_mode is None else destination.privacy_mode

    def redacts_pii_for(self, destination: DestinationSettings) -> bool:
        return self.redact_pii if destination.redact_pii is None else destination.redact_pii

    @property
    def captures_content(self) -> bool:
        """Content is read from bodies at all only when some destination may receive it."""
        return any(not self.privacy_for(d) for d in self._destination_settings)
