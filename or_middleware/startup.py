"""What building either middleware does once: settings, runtime, coexistence, the hook."""

from __future__ import annotations

from dataclasses import dataclass

from or_middleware import coexistence
from or_middleware.capture import hook
from or_middleware.config import Settings
from or_middleware.ratelimit import UserRateLimiter
from or_middleware.runtime import TracingRuntime


@dataclass(frozen=True, slots=True)
class Tracing:
    settings: Settings
    runtime: TracingRuntime
    rate_limiter: UserRateLimiter | None  # off unless OR_MIDDLEWARE_USER_RATE_LIMIT is set


def start_tracing(settings: Settings | None) -> Tracing:
    """Read the settings (env when None; a bad value raises ConfigError here, at start-up), build
    the runtime, hand our spans to the app's own provider if it has one, install the hook."""
    settings = settings if settings is not None else Settings()
    runtime = TracingRuntime(settings)
    coexistence.attach(runtime)
    limit = settings.user_rate_limit
    hook.install(by_middleware=True)
    return Tracing(settings, runtime, UserRateLimiter(limit) if limit is not None else None)
