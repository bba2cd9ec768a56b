"""``or-middleware check``: is every configured destination reachable and does it take our credentials?

For each destination in ``OR_MIDDLEWARE_DESTINATIONS`` it does what OpenRouter Broadcast's "Test
Connection" does: one empty OTLP payload with ``X-Test-Connection: true`` to the exact URL, with
the exact auth headers the middleware would use; a 2xx or a 400 passes (PostHog: an empty batch;
the local store: opened for writing). It prints OK or the reason: DNS, connect, TLS, timeout, auth
rejected, or the HTTP status with the destination's own message. ``--span`` sends one small test
span instead, through the same privacy and dialect as the middleware's. Exit status 1 when any
destination failed, 2 when the configuration itself is invalid. ``--dry-run`` validates the
configuration and shows what each destination would receive and where, sending nothing.
No credential is printed: header values and secret settings are masked wherever they appear (also
when a destination echoes them back), and URLs go through the shared ``safe_url``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from pydantic import SecretStr

from or_middleware import spans as contract
from or_middleware.announce import destination_target
from or_middleware.config import ConfigError, DestinationSettings, LocalDestination, RemoteDestination, Settings
from or_middleware.export.destinations import (
    build_preparation,
    build_sink,
    spool_directory,
    store_target,
    wire_target,
)
from or_middleware.export.probe import try_connection
from or_middleware.export.stats import PipelineStats
from or_middleware.export.transports import SendResult
from or_middleware.export.wire import WireTarget, basic
from or_middleware.secrets import redact_known, safe_url
from or_middleware.version import __version__

CHECK_ATTRIBUTE = "or_middleware.check"  # marks the test span, so it can be found and ignored


# Header values known to carry no credential; every other header value is masked in the output.
PLAIN_HEADERS = frozenset({"langsmith-project", "projectname", "comet-workspace", "x-bt-parent", "arize-space-id",
                           "x-langfuse-ingestion-version", "compute_stats", "x-honeycomb-dataset"})


def _secrets_of(dest: DestinationSettings, target: WireTarget | None) -> list[str]:
    """Every value that must not be printed: header values and the destination's secret fields."""
    headers = target.headers.items() if target is not None else ()
    values = [value for name, value in headers if name not in PLAIN_HEADERS]
    if target is not None:  # the URL's own user:password@ (sent as Basic auth) and query values
        parts = urlsplit(target.url)
        if parts.password:
            values += [parts.password, basic(unquote(parts.username or ""), unquote(parts.password))]
        values += [value for _, value in parse_qsl(parts.query)]
    for name in type(dest).model_fields:
        value = getattr(dest, name, None)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
    if isinstance(dest, LocalDestination) and dest.is_postgres and urlsplit(dest.url or "").password:
        password = urlsplit(dest.url or "").password or ""
        values += [password, unquote(password)]  # the store's URL: its password, never its user name
    for value in list(values):  # "Bearer k", "sentry sentry_key=k": the bare key too (not the
        values.append(value.split()[-1].split("=")[-1] if value.strip() else value)  # scheme: a word)
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def masked(text: str, secrets: list[str]) -> str:
    return redact_known(text, secrets)  # the literal values, URL-encoded too, then the secret patterns


def check_span(service_name: str) -> ReadableSpan:
    """A small, content-free GenAI span, recognisable as a connection test."""
    ids = RandomIdGenerator()
    now = time.time_ns()
    context = SpanContext(ids.generate_trace_id(), ids.generate_span_id(), is_remote=False,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(
        name="chat or-middleware-check",
        context=context,
        resource=Resource.create({"service.name": service_name}),
        attributes={
            gen_ai.GEN_AI_OPERATION_NAME: "chat",
            gen_ai.GEN_AI_PROVIDER_NAME: "or-middleware",
            gen_ai.GEN_AI_REQUEST_MODEL: "or-middleware-check",
            gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 0,
            gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 0,
            contract.USAGE_COST: 0.0,
            CHECK_ATTRIBUTE: True,
        },
        kind=SpanKind.CLIENT,
        start_time=now - 1_000_000,
        end_time=now,
        instrumentation_scope=InstrumentationScope(contract.GENAI_SCOPE, __version__),
    )


def _summary(dest: DestinationSettings, settings: Settings, target: WireTarget | None) -> str:
    parts = [
        f"privacy={'on' if settings.privacy_for(dest) else 'off'}",
        f"redact_pii={'on' if settings.redacts_pii_for(dest) else 'off'}",
        f"spans={dest.span_scope}",
        f"sample_rate={dest.sample_rate:g}",
        f"dialect={dest.resolved_dialect}",
        f"filter={len(dest.filter.rules) if dest.filter else 0} rule(s)",
    ]
    if target is not None:
        parts.insert(0, f"{target.protocol} -> {safe_url(target.url)}")
        if target.headers:
            parts.append("headers=" + ",".join(sorted(target.headers)))  # names only: values are secrets
        if target.resource:
            parts.append("resource=" + ",".join(f"{k}={v}" for k, v in target.resource.items()))
        if isinstance(dest, RemoteDestination):
            spool = f"{spool_directory(dest, settings, target)} (max {dest.spool_max_mb:g} MB)" \
                if dest.spool_max_mb > 0 else "off"
            parts.append(f"spool={spool}")
    elif isinstance(dest, LocalDestination) and dest.is_postgres:
        store = store_target(dest)
        parts.insert(0, f"postgresql -> {store.url}")
        spool = f"{spool_directory(dest, settings, store)} (max {dest.spool_max_mb:g} MB)" \
            if dest.spool_max_mb > 0 else "off"
        parts.append(f"spool={spool}")
    else:
        parts.insert(0, f"in-process -> {destination_target(dest, settings)}")  # the store's absolute path
    return "  ".join(parts)


def _send_span(dest: DestinationSettings, settings: Settings, target: WireTarget | None) -> SendResult:
    preparation = build_preparation(dest, settings, target)
    sink = build_sink(dest, settings, target, PipelineStats(), lambda count, why: None, spool=False)
    try:
        return sink.probe([preparation.transform(check_span(settings.resolved_service_name))])
    finally:
        sink.close()


def _check_one(dest: DestinationSettings, settings: Settings, *, dry_run: bool, send_span: bool) -> tuple[bool, str]:
    target = wire_target(dest, settings)
    where = safe_url(target.url) if target is not None else destination_target(dest, settings)
    if dry_run:
        build_sink(dest, settings, target, PipelineStats(), lambda count, why: None, spool=False).close()
        return True, _summary(dest, settings, target)
    started = time.perf_counter()
    result = _send_span(dest, settings, target) if send_span else try_connection(dest, target)
    took_ms = (time.perf_counter() - started) * 1000
    if not result.delivered:
        return False, f"{where}: {result.reason}"
    status = f"HTTP {result.status}, " if result.status else ""
    note = f" {result.reason}" if target is None and result.reason else ""
    return True, f"{where}{note} ({status}{took_ms:.0f} ms)"


def run_check(settings: Settings, *, dry_run: bool, out: TextIO, send_span: bool = False) -> int:
    failures = 0
    for dest in settings.destination_settings():
        target = None
        try:
            target = wire_target(dest, settings)
            ok, detail = _check_one(dest, settings, dry_run=dry_run, send_span=send_span)
        except Exception as exc:  # a certificate file that does not exist, ...
            ok, detail = False, f"cannot set up: {type(exc).__name__}: {exc}"
        failures += not ok
        line = f"{'OK' if ok else 'FAIL':<5} {dest.name:<18} {detail}"
        out.write(masked(line, _secrets_of(dest, target)) + "\n")
    return 1 if failures else 0


def _handle(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    if not settings.destination_settings():
        sys.stderr.write("no destinations configured (OR_MIDDLEWARE_DESTINATIONS is empty)\n")
        return 2
    return run_check(settings, dry_run=args.dry_run, out=sys.stdout, send_span=args.span)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="test the connection to every configured destination (or --dry-run: validate the configuration)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the configuration and show each destination's target; send nothing")
    parser.add_argument("--span", action="store_true",
                        help="send one small test span (through privacy and the dialect) instead of an empty payload")
    parser.set_defaults(handler=_handle)
