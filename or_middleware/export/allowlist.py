"""What a span may carry to a privacy-mode destination: attributes known to hold no content.

Privacy fails closed: a span leaving for a privacy-mode destination keeps only the attributes
listed here for its kind; anything else (an attribute added by another instrumentation or by
the app on our server span, a new attribute of ours nobody classified) is dropped.

- GenAI spans (ours, scope ``or_middleware``): the span contract minus content (model, provider,
  tokens, cost, timing, finish reasons, ids, user, session, trace name and metadata).
- Server spans (ours, from the OpenTelemetry ASGI/WSGI instrumentation) and any other span:
  HTTP and network semconv attributes (method, route, URL with credentials redacted, status,
  peer, user agent, captured headers that are not credentials).

A new non-content attribute of ours must be added here (tests/test_privacy_boundary.py fails
for an attribute a privacy-mode destination should have received but did not).
"""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from or_middleware import spans as contract
from or_middleware.secrets import is_sensitive_name

# -- GenAI spans -----------------------------------------------------------------------------

GENAI_KEYS: frozenset[str] = frozenset({
    gen_ai.GEN_AI_OPERATION_NAME,
    gen_ai.GEN_AI_PROVIDER_NAME,
    gen_ai.GEN_AI_SYSTEM,
    gen_ai.GEN_AI_OUTPUT_TYPE,
    gen_ai.GEN_AI_CONVERSATION_ID,
    gen_ai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
    "server.address",
    "server.port",
    "error.type",
    "http.response.status_code",
    contract.USER_ID,
    contract.SESSION_ID,
    contract.TRACE_NAME,
    contract.COST_SOURCE,
    contract.CHUNK_COUNT,
    contract.OUTPUT_TOKENS_PER_SECOND,
    contract.STREAM_OUTCOME,
    contract.NATIVE_FINISH_REASONS,
    contract.IS_BYOK,
    contract.LINKAGE,
    contract.PROMPT_SHA256,
    "or_middleware.original_parent_span_id",
    "or_middleware.check",
})
# Semconv request parameters (numbers, stop sequences), response facts (id, model, finish
# reasons, time to first chunk), usage and cost; the app's own trace metadata (OpenRouter
# Broadcast keeps it in privacy mode too).
GENAI_PREFIXES: tuple[str, ...] = ("gen_ai.request.", "gen_ai.response.", "gen_ai.usage.",
                                   contract.TRACE_METADATA_PREFIX)

# -- server spans and others' spans ----------------------------------------------------------

HTTP_KEYS: frozenset[str] = frozenset({
    # stable HTTP / URL / network semconv
    "http.request.method", "http.request.method_original", "http.response.status_code", "http.route",
    "url.scheme", "url.path", "url.query", "url.full", "server.address", "server.port", "client.address",
    "client.port", "network.protocol.name", "network.protocol.version", "network.peer.address",
    "network.peer.port", "user_agent.original", "user_agent.synthetic.type", "error.type",
    "http.request.body.size", "http.response.body.size",
    # the older names the instrumentations still emit by default
    "http.method", "http.scheme", "http.host", "http.server_name", "http.target", "http.url", "http.flavor",
    "http.status_code", "http.user_agent", "http.request_content_length", "http.response_content_length",
    "net.host.name", "net.host.port", "net.peer.ip", "net.peer.port", "net.peer.name",
})
CAPTURED_HEADER_PREFIXES: tuple[str, ...] = ("http.request.header.", "http.response.header.")

# -- events ----------------------------------------------------------------------------------

EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_KEYS: frozenset[str] = frozenset({EXCEPTION_TYPE, "exception.escaped"})
SECURITY_EVENT_PREFIX = "or_middleware.security."


def is_credential_header(key: str) -> bool:
    """A captured header attribute (``http.request.header.authorization``) of a credential header."""
    for prefix in CAPTURED_HEADER_PREFIXES:
        if key.startswith(prefix):
            return is_sensitive_name(key[len(prefix):])
    return False


def genai_attribute_allowed(key: str) -> bool:
    return key in GENAI_KEYS or key.startswith(GENAI_PREFIXES)


def http_attribute_allowed(key: str) -> bool:
    if key in HTTP_KEYS:
        return True
    return key.startswith(CAPTURED_HEADER_PREFIXES) and not is_credential_header(key)


def event_attribute_allowed(event_name: str, key: str) -> bool:
    if event_name == EXCEPTION_EVENT:
        return key in EXCEPTION_KEYS
    if event_name.startswith(SECURITY_EVENT_PREFIX):
        return key.startswith(SECURITY_EVENT_PREFIX) and key not in contract.CONTENT_ATTRIBUTES
    return False


def event_allowed(event_name: str) -> bool:
    """Exception events (reduced to the type) and our security signals; no other event."""
    return event_name == EXCEPTION_EVENT or event_name.startswith(SECURITY_EVENT_PREFIX)
