"""Property: however the transport cuts a recorded stream into chunks, the record is the same."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from or_middleware.genai.anthropic_messages import AnthropicMessagesFormat
from or_middleware.genai.formats import WireFormat
from or_middleware.genai.openai_chat import ChatCompletionsFormat, TextCompletionsFormat
from or_middleware.genai.openai_responses import ResponsesFormat
from or_middleware.genai.registry import format_for
from tests.genai.genai_testing import FIXTURES, comparable, fixture_bytes
from tests.genai.genai_testing import observe as observe_body

# Fixture file-name prefix -> the format that reads it.
FORMATS: dict[str, WireFormat] = {
    "openai_chat_": ChatCompletionsFormat(),
    "openrouter_chat_": ChatCompletionsFormat(),
    "groq_chat_": ChatCompletionsFormat(),
    "openai_completions": TextCompletionsFormat(),
    "openai_responses_": ResponsesFormat(),
    "anthropic_": AnthropicMessagesFormat(),
    "gemini_stream_": format_for("openai", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
    "cohere_chat_stream": format_for("openai", "/v2/chat"),
    "ollama_chat_stream": format_for("openai", "/api/chat"),
    "ollama_generate_stream": format_for("openai", "/api/generate"),
}
# File extension -> the Content-Type such a stream arrives with.
CONTENT_TYPES = {".sse": "text/event-stream", ".ndjson": "application/x-ndjson", ".json-stream": "application/json"}

STREAMS = sorted(path.name for ext in CONTENT_TYPES for path in FIXTURES.glob(f"*{ext}"))


def observe(fmt: WireFormat, body, **options):  # type: ignore[no-untyped-def]
    """The shared helper, with the Content-Type of the fixture's framing (from ``options["name"]``)."""
    name = options.pop("name")
    content_type = CONTENT_TYPES[name[name.index("."):]]
    return observe_body(fmt, body, content_type=content_type, request=REQUESTS.get(fmt.operation, {}), **options)


# A request that makes the record expect a stream where the Content-Type alone does not say
# so (Gemini's JSON array under application/json).
REQUESTS = {"generate_content": {"contents": []}}


def format_for_fixture(name: str) -> WireFormat:
    for prefix, fmt in FORMATS.items():
        if name.startswith(prefix):
            return fmt
    raise AssertionError(f"no format registered for fixture {name}")


def cut(raw: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({p % (len(raw) + 1) for p in points})
    return [raw[a:b] for a, b in zip([0, *bounds], [*bounds, len(raw)], strict=True)]


def test_every_stream_fixture_has_a_format() -> None:
    for name in STREAMS:
        format_for_fixture(name)
    for prefix in FORMATS:  # and every format is exercised by at least one recorded stream
        assert any(name.startswith(prefix) for name in STREAMS), prefix


@pytest.mark.parametrize("name", STREAMS)
@settings(max_examples=25, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=40))
def test_any_split_yields_the_same_record(name: str, points: list[int]) -> None:
    fmt = format_for_fixture(name)
    raw = fixture_bytes(name)
    whole = comparable(observe(fmt, raw, name=name))
    assert comparable(observe(fmt, cut(raw, points), name=name)) == whole


@pytest.mark.parametrize("name", STREAMS)
@settings(max_examples=6, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=20))
def test_any_split_of_the_gzipped_stream_yields_the_same_record(name: str, points: list[int]) -> None:
    fmt = format_for_fixture(name)
    raw = fixture_bytes(name)
    encoded = gzip.compress(raw)
    whole = comparable(observe(fmt, raw, name=name))
    assert comparable(observe(fmt, cut(encoded, points), content_encoding="gzip", name=name)) == whole


@pytest.mark.parametrize("name", STREAMS)
def test_byte_by_byte_equals_whole_without_content_too(name: str) -> None:
    fmt = format_for_fixture(name)
    raw = fixture_bytes(name)
    whole = observe(fmt, raw, capture=False, name=name)
    split = observe(fmt, [raw[i : i + 1] for i in range(len(raw))], capture=False, name=name)
    assert comparable(split) == comparable(whole)
    assert whole.output_messages is None


CONTENT_FIELDS = ("output_messages", "error_message", "input_messages", "system_instructions", "tool_definitions")


@pytest.mark.parametrize("name", STREAMS)
def test_lazy_decoding_without_content_loses_no_fact(name: str) -> None:
    """Without content capture, routine events are counted but not decoded (issue 15, P3):
    every fact (ids, model, tokens, finish reasons, errors, chunk count) must still match
    the fully decoded record's."""
    fmt = format_for_fixture(name)
    raw = fixture_bytes(name)
    full = comparable(observe(fmt, raw, capture=True, name=name))
    lazy = comparable(observe(fmt, [raw[i : i + 7] for i in range(0, len(raw), 7)], capture=False, name=name))
    for key in (*CONTENT_FIELDS, "capture_content"):
        full.pop(key), lazy.pop(key)
    assert lazy == full
