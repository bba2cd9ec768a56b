"""The current request's identity, visible to the outbound hook in any task or thread of that request."""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from or_middleware.runtime import TracingRuntime


@dataclass(frozen=True, slots=True)
class RequestIdentity:
    """Who made the inbound request, and which middleware's runtime traces its LLM calls."""

    runtime: TracingRuntime
    user: str | None = None
    session: str | None = None
    trace_name: str | None = None


# contextvars follow asyncio tasks and Starlette's threadpool (anyio copies the context).
_current: ContextVar[RequestIdentity | None] = ContextVar("or_middleware_request", default=None)


def current_identity() -> RequestIdentity | None:
    return _current.get()


def enter(identity: RequestIdentity) -> Token[RequestIdentity | None]:
    return _current.set(identity)


def leave(token: Token[RequestIdentity | None]) -> None:
    _current.reset(token)
