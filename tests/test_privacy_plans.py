"""The privacy transforms decide once per attribute key set; values are still read on every span."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

from or_middleware.export import privacy
from or_middleware.export.draft import SpanDraft
from or_middleware.export.privacy import CredentialScrubber, PrivacyAllowlist
from or_middleware.spans import GENAI_SCOPE

TOKEN = "sk-proj-canaryCANARYcanary123"


def _span(attributes, scope=GENAI_SCOPE, name="chat gpt-4o-mini"):
    return ReadableSpan(name=name, context=SpanContext(1, 2, False), attributes=attributes, resource=Resource({}),
                        instrumentation_scope=InstrumentationScope(scope))


def _apply(transform, span):
    draft = SpanDraft(span)
    transform(draft)
    return draft.build()


def test_the_same_keys_with_a_secret_in_a_later_span_are_still_scrubbed():
    scrubber = CredentialScrubber()
    keys = {"user.id": "alice", "gen_ai.usage.input_tokens": 3, "http.request.header.authorization": ["x"],
            "gen_ai.operation.name": "chat"}
    first = _apply(scrubber, _span(keys))
    assert "http.request.header.authorization" not in first.attributes and first.attributes["user.id"] == "alice"
    later = _apply(scrubber, _span({**keys, "user.id": f"Bearer {TOKEN}", "gen_ai.usage.input_tokens": TOKEN}))
    assert TOKEN not in str(dict(later.attributes)) and "http.request.header.authorization" not in later.attributes
    assert list(later.attributes) == ["user.id", "gen_ai.usage.input_tokens", "gen_ai.operation.name"]
    unchanged = _span({"user.id": "bob", "gen_ai.operation.name": "chat"})
    assert _apply(scrubber, unchanged) is unchanged  # nothing to change: the very span, no rebuild


def test_a_span_name_is_scrubbed_every_time_also_from_the_cache():
    scrubber = CredentialScrubber()
    for _ in range(3):
        assert TOKEN not in _apply(scrubber, _span({}, name=f"GET /reset/{TOKEN}")).name


def test_the_allowlist_decides_per_kind_and_key_set_and_stays_closed_past_its_memory():
    allow = PrivacyAllowlist()
    attributes = {"gen_ai.input.messages": "[canary]", "gen_ai.usage.input_tokens": 3, "http.route": "/x"}
    for _ in range(2):
        genai = _apply(allow, _span(attributes))
        server = _apply(allow, _span(attributes, scope="or_middleware.server"))
        assert dict(genai.attributes) == {"gen_ai.usage.input_tokens": 3}
        assert dict(server.attributes) == {"http.route": "/x"}
    for n in range(privacy._MAX_PLANS + 10):  # more key sets than it remembers: forgotten, decided again
        span = _apply(allow, _span({f"trace.metadata.k{n}": "v", "gen_ai.input.messages": "[canary]"}))
        assert dict(span.attributes) == {f"trace.metadata.k{n}": "v"}
    assert len(allow._kept) <= privacy._MAX_PLANS
