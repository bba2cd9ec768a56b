"""What building either middleware does once: settings, runtime, coexistence, the hook."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from or_middleware import announce, coexistence, context, price_warmup
from or_middleware.capture import hook
from or_middleware.capture.call import log_once
from or_middleware.config import ConfigError, Settings
from or_middleware.ratelimit import UserRateLimiter
from or_middleware.runtime import TracingRuntime

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StartupRefusal:
    """Why the middleware cannot run, in one line naming the variable and the fix."""

    message: str

    @classmethod
    def from_exception(cls, exc: Exception) -> StartupRefusal:
        if isinstance(exc, ConfigError):  # the server prints it (lifespan failure, or the error raised)
            refusal = cls(f"or_middleware: {exc}")
        else:  # a bug of ours at start-up: refuse too (never half-working), with the traceback once
            refusal = cls(f"or_middleware: could not start: {type(exc).__name__}: {exc}")
            logger.error("%s", refusal.message, exc_info=exc)
        return refusal

    def error(self) -> ConfigError:
        return ConfigError(self.message)  # a fresh one each time: no traceback grows across requests

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        """Lifespan: answer ``lifespan.startup.failed`` (the server exits); anything else: raise."""
        if scope["type"] != "lifespan":
            raise self.error()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": self.message})
                return
            if message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


@dataclass(frozen=True, slots=True)
class Tracing:
    settings: Settings
    runtime: TracingRuntime
    rate_limiter: UserRateLimiter | None  # off unless OR_MIDDLEWARE_USER_RATE_LIMIT is set

    def rate_limit_wait(self) -> float | None:
        """Seconds the current request's user must wait (answer 429), or None to let it through.
        A bug of ours neither refuses nor fails the request."""
        limiter = self.rate_limiter
        identity = context.current_identity()
        if limiter is None or identity is None:
            return None
        try:
            return limiter.retry_after(identity.user)
        except Exception:
            log_once("rate limit")
            return None


def start_tracing(settings: Settings | None) -> Tracing:
    """Read the settings (env when None; a bad value raises ConfigError here, at start-up), build
    the runtime, hand our spans to the app's own provider if it has one, install the hook."""
    settings = settings if settings is not None else Settings()
    runtime = TracingRuntime(settings)
    coexistence.attach(runtime)
    limit = settings.user_rate_limit
    hook.install(by_middleware=True)
    announce.announce_startup(settings)  # version, destinations, store path, detected hosts
    price_warmup.warm_up()  # the price table, off the request path (fork-safe: see price_warmup)
    return Tracing(settings, runtime, UserRateLimiter(limit) if limit is not None else None)
