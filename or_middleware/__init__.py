"""or_middleware: OpenRouter-Broadcast-grade LLM observability for any ASGI or WSGI app.

    from or_middleware import LLMTracingMiddleware
    app.add_middleware(LLMTracingMiddleware)
"""

from or_middleware.asgi import LLMTracingMiddleware
from or_middleware.capture.hook import install as instrument
from or_middleware.capture.hook import uninstall as uninstrument
from or_middleware.config import ConfigError, Settings
from or_middleware.runtime import force_flush, shutdown_all, stats
from or_middleware.version import __version__
from or_middleware.wsgi import LLMTracingWSGIMiddleware

__all__ = [
    "ConfigError",
    "LLMTracingMiddleware",
    "LLMTracingWSGIMiddleware",
    "Settings",
    "__version__",
    "force_flush",
    "instrument",
    "shutdown_all",
    "stats",
    "uninstrument",
]
