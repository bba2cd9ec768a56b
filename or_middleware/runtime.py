"""TracingRuntime: one middleware's private TracerProvider, destination pipelines and LLM endpoints.

We never touch the global TracerProvider: the app's own OpenTelemetry setup (if any) is left
exactly as it is, and our destinations receive only what flows through our provider.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from or_middleware.capture.detection import EndpointDetector
from or_middleware.config import Settings
from or_middleware.export.destinations import build_pipeline
from or_middleware.export.pipeline import DestinationPipeline
from or_middleware.spans import GENAI_SCOPE
from or_middleware.version import __version__

logger = logging.getLogger(__name__)


class TracingRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.capture_content = settings.captures_content
        self.detector = EndpointDetector(settings.llm_hosts)
        resource = Resource.create({"service.name": settings.resolved_service_name})
        self.tracer_provider = TracerProvider(resource=resource)
        self.pipelines: list[DestinationPipeline] = [
            build_pipeline(dest, settings) for dest in settings.destination_settings()
        ]
        for pipeline in self.pipelines:
            self.tracer_provider.add_span_processor(pipeline)
        self.tracer: Tracer = self.tracer_provider.get_tracer(GENAI_SCOPE, __version__)
        _register(self)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.pipelines)

    def shutdown(self) -> None:
        _unregister(self)
        self.tracer_provider.shutdown()

    def stats(self) -> dict[str, dict[str, int]]:
        return {p.name: p.stats.as_dict() for p in self.pipelines}


_lock = threading.Lock()
_runtimes: list[TracingRuntime] = []
_atexit_registered = False


def _register(runtime: TracingRuntime) -> None:
    global _atexit_registered
    with _lock:
        _runtimes.append(runtime)
        if not _atexit_registered:
            atexit.register(shutdown_all)
            _atexit_registered = True


def _unregister(runtime: TracingRuntime) -> None:
    with _lock:
        if runtime in _runtimes:
            _runtimes.remove(runtime)


def default_runtime() -> TracingRuntime | None:
    """The newest runtime: it traces LLM calls made outside any request (startup, jobs)."""
    with _lock:
        return _runtimes[-1] if _runtimes else None


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Export every finished span now; True when all destinations finished in time."""
    with _lock:
        runtimes = list(_runtimes)
    return all(r.force_flush(timeout_millis) for r in runtimes)


def shutdown_all() -> None:
    with _lock:
        runtimes = list(_runtimes)
    for runtime in runtimes:
        try:
            runtime.shutdown()
        except Exception:
            logger.exception("or_middleware: shutdown failed")


def stats() -> dict[str, Any]:
    """Per-destination counts: queued, exported, filtered, failed, dropped, retried, spooled."""
    with _lock:
        runtimes = list(_runtimes)
    merged: dict[str, Any] = {}
    for runtime in runtimes:
        merged.update(runtime.stats())
    return merged
