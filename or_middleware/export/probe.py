"""Test Connection, as OpenRouter Broadcast does it: one empty payload, no span.

For an OTLP destination: an empty ``ExportTraceServiceRequest`` (protobuf, JSON or gRPC) to the
exact URL with the exact auth headers the middleware would use, plus ``X-Test-Connection: true``;
a 2xx or a 400 (an OTLP server may refuse an empty request, but it answered past auth) passes
(https://openrouter.ai/docs/guides/features/broadcast/webhook). PostHog gets an empty ``/batch/``
with the project key. The local store is opened as the middleware would write it; the console
always passes. One attempt, no retry, nothing spooled.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from pathlib import Path

from or_middleware.config import DestinationSettings, LocalDestination
from or_middleware.export.destinations import encoding_for, wire_transport
from or_middleware.export.transports import SendResult
from or_middleware.export.wire import WireTarget, timeout_of

TEST_CONNECTION_HEADER = "x-test-connection"
EMPTY_OTLP_JSON = b'{"resourceSpans":[]}'


def _empty_payload(target: WireTarget, dest: DestinationSettings) -> tuple[bytes, str]:
    encoding = encoding_for(target, dest)
    if target.protocol == "posthog":
        return encoding.encode([]), encoding.content_type
    if target.protocol == "http/json":
        return EMPTY_OTLP_JSON, encoding.content_type
    return b"", encoding.content_type  # an empty ExportTraceServiceRequest serialises to no bytes


def _passes(result: SendResult, target: WireTarget) -> bool:
    if result.delivered:
        return True
    if target.protocol == "grpc":
        return result.reason.startswith("gRPC INVALID_ARGUMENT")
    return result.status == 400 and target.protocol != "posthog"


def try_connection(dest: DestinationSettings, target: WireTarget | None) -> SendResult:
    """OK (``delivered``) or the reason, for one destination."""
    if target is None:
        return check_local_store(dest) if isinstance(dest, LocalDestination) else SendResult(True, reason="in-process")
    body, content_type = _empty_payload(target, dest)
    probe_target = replace(target, headers={**target.headers, TEST_CONNECTION_HEADER: "true"})
    transport = wire_transport(probe_target, dest, content_type)
    try:
        result = transport.send(body)
    finally:
        transport.close()
    if _passes(result, target):
        return SendResult(True, status=result.status, reason=result.reason)
    return result


def check_local_store(dest: LocalDestination) -> SendResult:
    """The store file opens for writing (or its directory lets it be created); nothing is written."""
    if dest.is_postgres:
        from or_middleware.store.postgres_sink import check_postgres_store

        return check_postgres_store(dest.url or "", timeout=timeout_of(dest))
    path = Path(dest.url or "").expanduser()
    if path.exists():
        try:
            connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=1)
            try:
                connection.execute("PRAGMA schema_version").fetchone()  # fails when it is no database
            finally:
                connection.close()
        except sqlite3.Error as exc:
            return SendResult(False, reason=f"store {path}: cannot open for writing ({exc})")
        return SendResult(True, reason=f"store {path}")
    directory = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in (directory, *directory.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return SendResult(False, reason=f"store {path}: cannot be created ({existing} is not a writable directory)")
    return SendResult(True, reason=f"store {path} (created on first write)")
