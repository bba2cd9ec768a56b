"""Which outbound requests are LLM API calls, and who serves them.

Three steps, cheapest first, none of which reads the body:
1. the origin (scheme, host, port) of a listed host: ``OR_MIDDLEWARE_LLM_HOSTS`` entries and
   the built-in table below, longest base path first;
2. a host name pattern of a provider whose hosts are per account (Azure OpenAI, Vertex AI, ...);
3. with ``OR_MIDDLEWARE_DETECT=auto`` (the default) any other host: the endpoint is marked
   ``by_shape`` and the request is traced only when its path is a known LLM API path (the
   caller's format lookup) *and* its JSON body has that API's shape (checked once the body is
   in hand, see :func:`confirms_shape`).

Provider names are the OpenTelemetry GenAI ``gen_ai.provider.name`` values where semconv has
one (openai, azure.ai.openai, anthropic, gcp.gemini, gcp.vertex_ai, aws.bedrock, mistral_ai,
groq, deepseek, x_ai, perplexity, cohere, ibm.watsonx.ai), else the provider's own lowercase
name (openrouter, together, fireworks, ollama); an unknown host is named by its server address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from or_middleware.config import LLMHost

ApiKind = Literal["openai", "anthropic"]
DetectMode = Literal["auto", "listed"]

_DEFAULT_PORTS = {"http": 80, "https": 443}

# (gen_ai.provider.name, base URL). Base paths matter only where the host serves other things
# under other paths (openrouter.ai is also a web site); elsewhere the whole origin is the API and
# the path's end picks the format.
BUILTIN_HOSTS: tuple[tuple[str, str], ...] = (
    ("openrouter", "https://openrouter.ai/api/v1"),
    ("openrouter", "https://eu.openrouter.ai/api/v1"),
    ("openai", "https://api.openai.com/v1"),
    ("anthropic", "https://api.anthropic.com/v1"),
    ("gcp.gemini", "https://generativelanguage.googleapis.com"),
    ("mistral_ai", "https://api.mistral.ai"),
    ("groq", "https://api.groq.com"),
    ("deepseek", "https://api.deepseek.com"),
    ("x_ai", "https://api.x.ai"),
    ("perplexity", "https://api.perplexity.ai"),
    ("cohere", "https://api.cohere.com"),
    ("cohere", "https://api.cohere.ai"),
    ("together", "https://api.together.xyz"),
    ("fireworks", "https://api.fireworks.ai"),
    # Ollama's default address (its native /api/* and its OpenAI-compatible /v1/*)
    ("ollama", "http://localhost:11434"),
    ("ollama", "http://127.0.0.1:11434"),
)

# Host name endings of providers whose API hosts are per resource, region or account.
BUILTIN_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),  # aiplatform. and {region}-aiplatform.
    (".amazonaws.com", "aws.bedrock"),  # only bedrock-runtime.* hosts, see _by_host_suffix
    (".ml.cloud.ibm.com", "ibm.watsonx.ai"),
)


@dataclass(frozen=True, slots=True)
class LLMEndpoint:
    """An LLM API base URL and how to treat calls to it."""

    provider: str  # gen_ai.provider.name
    api_kind: ApiKind
    base_path: str
    openrouter: bool  # body linkage and usage.cost
    gateway: bool  # configured by the user (their own gateway): receives traceparent
    by_shape: bool = False  # an unlisted host: traced only if the body has the API's shape


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


def _named(provider: str, *, by_shape: bool = False) -> LLMEndpoint:
    return LLMEndpoint(provider, "openai", "", openrouter=False, gateway=False, by_shape=by_shape)


def _by_host_suffix(host: str) -> str | None:
    for suffix, provider in BUILTIN_HOST_SUFFIXES:
        if host.endswith(suffix):
            if provider == "aws.bedrock" and not host.startswith("bedrock-runtime"):
                continue
            return provider
    return None


class EndpointDetector:
    """Maps a request URL to (endpoint, path below the base), longest matching base wins.

    ``detect="listed"`` answers only for listed hosts (LLM_HOSTS, the built-in table and its
    host patterns); ``"auto"`` also for any other host, with ``by_shape`` set.
    """

    def __init__(self, llm_hosts: Iterable[LLMHost] = (), detect: DetectMode = "auto") -> None:
        self.detect = detect
        entries = [_endpoint(p, url, gateway=False) for p, url in BUILTIN_HOSTS]
        # The user's entries first: for the same origin and base path, theirs wins (stable sort).
        entries = [_endpoint(h.provider, h.base_url, gateway=True) for h in llm_hosts] + entries
        self._by_origin: dict[Origin, list[LLMEndpoint]] = {}
        for origin, endpoint in entries:
            self._by_origin.setdefault(origin, []).append(endpoint)
        for endpoints in self._by_origin.values():
            endpoints.sort(key=lambda e: len(e.base_path), reverse=True)
        self._named: dict[str, LLMEndpoint] = {}  # host pattern / unlisted host -> endpoint, bounded

    def match(self, scheme: str, host: str, port: int | None, path: str) -> tuple[LLMEndpoint, str] | None:
        endpoints = self._by_origin.get(_origin(scheme, host, port))
        if endpoints:
            for endpoint in endpoints:
                base = endpoint.base_path
                if path == base or path.startswith(base + "/") or not base:
                    return endpoint, path[len(base) :]
            return None  # a listed origin, but not below any of its APIs
        host = host.lower()
        provider = _by_host_suffix(host)
        if provider is not None:
            return self._cached(host, provider, by_shape=False), path
        if self.detect == "auto":
            return self._cached(host, host, by_shape=True), path
        return None

    def _cached(self, key: str, provider: str, *, by_shape: bool) -> LLMEndpoint:
        endpoint = self._named.get(key)
        if endpoint is None:
            endpoint = _named(provider, by_shape=by_shape)
            if len(self._named) < 1024:  # hosts are few; never let odd traffic grow this
                self._named[key] = endpoint
        return endpoint


def with_provider(endpoint: LLMEndpoint, provider: str) -> LLMEndpoint:
    """The endpoint under another provider name (a native API on an unlisted host)."""
    return replace(endpoint, provider=provider)


def confirms_shape(fmt: Any, body: object) -> bool:
    """Whether a request body has the shape of ``fmt``'s API (``fmt.claims(body)``).

    Only asked for unlisted hosts, after a cheap path match: a POST to some service's
    ``/v1/chat/completions`` whose body is not a chat request is not an LLM call.
    """
    claims = getattr(fmt, "claims", None)
    return isinstance(body, Mapping) and claims is not None and bool(claims(body))


_GENERIC_ENDS = frozenset({"completions", "responses", "embeddings", "messages"})


def versioned_api_path(path: str) -> bool:
    """On an unlisted host, a generic path end (``/messages``, ``/responses``, ...) counts only
    under an API version segment (``/v1/messages``, ``/api/v1/responses``): many REST services
    have a ``/messages`` of their own, and their bodies should not even be read. Specific ends
    (``/chat/completions``, ``:generateContent``, ``/api/chat``, ``/v2/chat``) always count."""
    head, _, last = path.split("?", 1)[0].rstrip("/").rpartition("/")
    if last not in _GENERIC_ENDS:
        return True
    previous = head.rpartition("/")[2]
    if last == "completions" and previous == "chat":
        return True
    return len(previous) >= 2 and previous[0] == "v" and previous[1].isdigit()

