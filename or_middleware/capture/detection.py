"""Which outbound requests are LLM API calls: a dictionary lookup by origin, then a path prefix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from or_middleware.config import LLMHost

ApiKind = Literal["openai", "anthropic"]

_DEFAULT_PORTS = {"http": 80, "https": 443}

BUILTIN_HOSTS: tuple[tuple[str, str], ...] = (
    ("openrouter", "https://openrouter.ai/api/v1"),
    ("openrouter", "https://eu.openrouter.ai/api/v1"),
    ("openai", "https://api.openai.com/v1"),
    ("anthropic", "https://api.anthropic.com/v1"),
)


@dataclass(frozen=True, slots=True)
class LLMEndpoint:
    """An LLM API base URL and how to treat calls to it."""

    provider: str  # gen_ai.provider.name
    api_kind: ApiKind
    base_path: str
    openrouter: bool  # body linkage and usage.cost
    gateway: bool  # configured by the user (their own gateway): receives traceparent


Origin = tuple[str, str, int]


def _origin(scheme: str, host: str, port: int | None) -> Origin:
    return (scheme, host.lower(), port or _DEFAULT_PORTS.get(scheme, 0))


def _endpoint(provider: str, base_url: str, gateway: bool) -> tuple[Origin, LLMEndpoint]:
    parts = urlsplit(base_url)
    origin = _origin(parts.scheme, parts.hostname or "", parts.port)
    endpoint = LLMEndpoint(
        provider=provider,
        api_kind="anthropic" if provider == "anthropic" else "openai",
        base_path=parts.path.rstrip("/"),
        openrouter=provider == "openrouter",
        gateway=gateway,
    )
    return origin, endpoint


class EndpointDetector:
    """Maps a request URL to (endpoint, path below the base), longest matching base wins."""

    def __init__(self, llm_hosts: Iterable[LLMHost] = ()) -> None:
        entries = [_endpoint(p, url, gateway=False) for p, url in BUILTIN_HOSTS]
        entries += [_endpoint(h.provider, h.base_url, gateway=True) for h in llm_hosts]
        self._by_origin: dict[Origin, list[LLMEndpoint]] = {}
        for origin, endpoint in entries:
            self._by_origin.setdefault(origin, []).append(endpoint)
        for endpoints in self._by_origin.values():
            endpoints.sort(key=lambda e: len(e.base_path), reverse=True)

    def match(self, scheme: str, host: str, port: int | None, path: str) -> tuple[LLMEndpoint, str] | None:
        endpoints = self._by_origin.get(_origin(scheme, host, port))
        if not endpoints:
            return None
        for endpoint in endpoints:
            base = endpoint.base_path
            if path == base or path.startswith(base + "/") or not base:
                return endpoint, path[len(base) :]
        return None
