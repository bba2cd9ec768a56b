"""``or-middleware check``: is every configured destination reachable and accepting our spans?

For each destination in ``OR_MIDDLEWARE_DESTINATIONS`` it builds exactly what the middleware
would (target, auth headers, privacy, dialect) and sends one test span, once, no retry, no
spool, then prints OK or the reason: DNS, connect, TLS, timeout, auth rejected, or the HTTP
status with the destination's own message. Exit status 1 when any destination failed, 2 when
the configuration itself is invalid. ``--dry-run`` validates the configuration and shows what
each destination would receive and where, without sending anything.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from or_middleware import spans as contract
from or_middleware.config import ConfigError, DestinationSettings, RemoteDestination, Settings
from or_middleware.export.destinations import (
    WireTarget,
    build_preparation,
    build_sink,
    spool_directory,
    wire_target,
)
from or_middleware.export.stats import PipelineStats
from or_middleware.version import __version__

CHECK_ATTRIBUTE = "or_middleware.check"  # marks the test span, so it can be found and ignored


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
        parts.insert(0, f"{target.protocol} -> {target.url}")
        if target.headers:
            parts.append("headers=" + ",".join(sorted(target.headers)))  # names only: values are secrets
        if target.resource:
            parts.append("resource=" + ",".join(f"{k}={v}" for k, v in target.resource.items()))
        if isinstance(dest, RemoteDestination):
            spool = f"{spool_directory(dest, settings, target)} (max {dest.spool_max_mb:g} MB)" \
                if dest.spool_max_mb > 0 else "off"
            parts.append(f"spool={spool}")
    else:
        parts.insert(0, f"in-process ({dest.kind})")
    return "  ".join(parts)


def run_check(settings: Settings, *, dry_run: bool, out: TextIO) -> int:
    failures = 0
    for dest in settings.destination_settings():
        target = wire_target(dest, settings)
        preparation = build_preparation(dest, settings, target)
        try:
            sink = build_sink(dest, settings, target, PipelineStats(), lambda count, why: None, spool=False)
        except Exception as exc:  # a certificate file that does not exist, ...
            out.write(f"FAIL  {dest.name:<18} cannot set up: {type(exc).__name__}: {exc}\n")
            failures += 1
            continue
        try:
            if dry_run:
                out.write(f"OK    {dest.name:<18} {_summary(dest, settings, target)}\n")
                continue
            started = time.perf_counter()
            result = sink.probe([preparation.transform(check_span(settings.resolved_service_name))])
            took_ms = (time.perf_counter() - started) * 1000
            where = target.url if target is not None else f"in-process ({dest.kind})"
            if result.delivered:
                status = f"HTTP {result.status}, " if result.status else ""
                out.write(f"OK    {dest.name:<18} {where} ({status}{took_ms:.0f} ms)\n")
            else:
                failures += 1
                out.write(f"FAIL  {dest.name:<18} {where}: {result.reason}\n")
        finally:
            sink.close()
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
    return run_check(settings, dry_run=args.dry_run, out=sys.stdout)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="send a test span to every configured destination (or --dry-run: validate the configuration)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the configuration and show each destination's target; send nothing")
    parser.set_defaults(handler=_handle)
