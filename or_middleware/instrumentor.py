"""LLMTracingInstrumentor: the ``opentelemetry_instrumentor`` entry point.

    opentelemetry-instrument uvicorn app:app        # or: opentelemetry-instrument python app.py

installs our outbound hook with no code change: every LLM call the app makes becomes a GenAI
span, a child of whatever span is current (the server span of the framework instrumentation
``opentelemetry-instrument`` loaded), exported to the ``OR_MIDDLEWARE_*`` destinations and also
handed to the app's own provider (see :mod:`or_middleware.coexistence`). The request identity
(user and session headers) needs the middleware; add it to get those too. Disable with
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=or_middleware``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from or_middleware import coexistence
from or_middleware.capture import hook
from or_middleware.config import Settings
from or_middleware.runtime import TracingRuntime


class LLMTracingInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instrument once per process; ``uninstrument()`` restores the clients and stops the exporters."""

    _runtime: TracingRuntime | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # we patch whichever of httpx, httpx2 and requests are installed

    def _instrument(self, **kwargs: Any) -> None:
        settings = kwargs.get("settings")
        runtime = TracingRuntime(settings if isinstance(settings, Settings) else Settings())
        coexistence.attach(runtime)
        self._runtime = runtime
        hook.install()

    def _uninstrument(self, **kwargs: Any) -> None:
        hook.uninstall()
        if self._runtime is not None:
            self._runtime.shutdown()
            self._runtime = None
