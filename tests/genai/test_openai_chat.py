from __future__ import annotations

import json

import pytest

from or_middleware.genai.content import TRUNCATION_MARKER
from or_middleware.genai.openai_chat import ChatCompletionsFormat, ChatStreamReader, TextCompletionsFormat
from or_middleware.genai.record import GenerationRecord
from tests.genai.genai_testing import fixture_bytes, observe, per_event

CHAT = ChatCompletionsFormat()
TEXT = TextCompletionsFormat()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_bytes(name))


# --- request -----------------------------------------------------------------------------


def test_request_params_identity_and_trace() -> None:
    record = GenerationRecord(provider="openrouter")
    CHAT.read_request(fixture_json("openrouter_chat_request_trace.json"), record)
    assert record.request_model == "openai/gpt-4o"
    assert record.stream is True
    assert record.request_params == {
        "max_tokens": 512,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.0,
        "seed": 7,
        "stop_sequences": ["END"],
        "choice.count": 2,
    }
    assert record.output_type == "json"
    assert record.user == "user-42"
    assert record.session == "sess-abc"
    assert record.trace_name == "travel-chat"
    # Linkage keys are not metadata; non-string values are JSON.
    assert record.trace_metadata == {"tenant": "acme", "attempt": "3", "flags": '{"beta":true}'}
    # No content unless asked for.
    assert record.input_messages is None
    assert record.system_instructions is None
    assert record.tool_definitions is None


def test_request_content_in_semconv_shape() -> None:
    record = GenerationRecord(provider="openrouter", capture_content=True)
    CHAT.read_request(fixture_json("openrouter_chat_request_trace.json"), record)
    assert record.system_instructions == [
        {"type": "text", "content": "You are a helpful travel agent."},
        {"type": "text", "content": "Answer in French."},
    ]
    assert record.input_messages == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is in this picture?"},
                {"type": "uri", "modality": "image", "uri": "https://example.com/eiffel.jpg"},
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBORw0KGgo="},
            ],
        },
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup_landmark", "arguments": {"q": "eiffel"}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "Eiffel Tower, Paris"}]},
        {"role": "user", "parts": [{"type": "text", "content": "Thanks!"}], "name": "alice"},
    ]
    assert record.tool_definitions == [
        {
            "type": "function",
            "name": "lookup_landmark",
            "description": "Find a landmark",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        }
    ]


def test_request_odd_values_are_ignored_not_raised() -> None:
    record = GenerationRecord(provider="openai", capture_content=True)
    body = {
        "model": 5,
        "stream": "yes",
        "max_tokens": True,
        "temperature": "hot",
        "n": 1,
        "stop": ["a", 3],
        "messages": ["junk", {"role": "user", "content": [{"type": "text", "text": 1}, "x"]}],
        "trace": "not an object",
        "tools": [None, {"type": "web_search"}],
    }
    CHAT.read_request(body, record)
    assert record.request_model is None
    assert record.stream is False
    assert record.request_params == {"stop_sequences": ["a"]}
    assert record.input_messages == [{"role": "user", "parts": []}]
    assert record.tool_definitions == [{"type": "web_search"}]


def test_max_completion_tokens_preferred_over_max_tokens() -> None:
    record = GenerationRecord(provider="openai")
    CHAT.read_request({"model": "m", "max_tokens": 10, "max_completion_tokens": 20}, record)
    assert record.request_params["max_tokens"] == 20


# --- non-streaming responses ---------------------------------------------------------------


def test_tool_call_response() -> None:
    record = observe(CHAT, fixture_bytes("openai_chat_tool_calls.json"), content_type="application/json")
    assert record.error_type is None
    assert record.completed
    assert record.status_code == 200
    assert record.response_id == "chatcmpl-BNtoolsync"
    assert record.response_model == "gpt-4.1-2025-04-14"
    assert record.finish_reasons == ["tool_calls"]
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (82, 18, 100)
    assert record.cache_read_tokens == 0
    assert record.cost is None
    assert record.output_messages == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_abc123",
                    "name": "get_weather",
                    "arguments": {"location": "Boston, MA", "unit": "celsius"},
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_n2_response_ordered_by_index_with_cache_and_reasoning() -> None:
    record = observe(CHAT, fixture_bytes("openai_chat_n2.json"), content_type="application/json")
    assert record.finish_reasons == ["stop", "length"]
    assert record.input_tokens == 2048  # OpenAI's prompt_tokens already include cached ones
    assert record.cache_read_tokens == 1920
    assert record.reasoning_tokens == 640
    assert [m["parts"][0]["content"] for m in record.output_messages or []] == ["First answer.", "Second answer."]


def test_refusal_response() -> None:
    record = observe(CHAT, fixture_bytes("openai_chat_refusal.json"), content_type="application/json")
    assert record.output_messages == [
        {
            "role": "assistant",
            "parts": [{"type": "refusal", "content": "I'm sorry, I can't help with that."}],
            "finish_reason": "stop",
        }
    ]


def test_openrouter_usage_cost_provider_and_native_finish_reason() -> None:
    record = observe(
        CHAT, fixture_bytes("openrouter_chat_usage_cost.json"), content_type="application/json", capture=False
    )
    assert record.response_id == "gen-1747000200-ZyXwVuTsRqPoNmLk"
    assert record.response_model == "anthropic/claude-3.7-sonnet"
    assert record.served_by == "Anthropic"
    assert record.finish_reasons == ["stop"]
    assert record.native_finish_reasons == ["end_turn"]
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (2100, 9, 2109)
    assert record.cache_read_tokens == 2000
    assert record.cache_creation_tokens == 50
    assert record.cost == pytest.approx(0.0012345)
    assert record.cost_source == "provider"
    assert record.input_cost == pytest.approx(0.001099)
    assert record.output_cost == pytest.approx(0.000135)
    assert record.is_byok is False
    assert record.output_messages is None  # content not captured


def test_error_object_in_a_200_body() -> None:
    record = observe(CHAT, fixture_bytes("openrouter_chat_error_in_200.json"), content_type="application/json")
    assert record.error_type == "502"
    assert record.error_message == "Upstream error from Together: Bad gateway"
    assert record.finish_reasons == ["error"]
    assert record.served_by == "Together"


@pytest.mark.parametrize(
    ("name", "status", "error_type", "message_start"),
    [
        ("openai_error_429.json", 429, "rate_limit_exceeded", "Rate limit reached"),
        ("openai_error_404_model.json", 404, "model_not_found", "The model `gpt-9`"),
        ("openrouter_error_402.json", 402, "402", "This request requires more credits"),
        ("openrouter_error_403_moderation.json", 403, "403", "meta-llama/llama-guard requires"),
    ],
)
def test_error_bodies(name: str, status: int, error_type: str, message_start: str) -> None:
    record = observe(CHAT, fixture_bytes(name), status=status, content_type="application/json")
    assert record.status_code == status
    assert record.error_type == error_type
    assert (record.error_message or "").startswith(message_start)
    assert not record.completed


def test_error_message_only_kept_when_capturing_content() -> None:
    record = observe(
        CHAT, fixture_bytes("openai_error_429.json"), status=429, content_type="application/json", capture=False
    )
    assert record.error_type == "rate_limit_exceeded"
    assert record.error_message is None


@pytest.mark.parametrize(
    ("body", "error_type", "message"),
    [
        (
            {"object": "error", "message": "bad", "type": "BadRequestError", "param": None, "code": 400},
            "BadRequestError",
            "bad",
        ),
        ({"detail": "Not authenticated"}, "http_401", "Not authenticated"),
        ({"error": "Invalid key"}, "http_401", "Invalid key"),
        ({"error": {"message": "no type"}}, "http_401", "no type"),
        ([1, 2], "http_401", "[1, 2]"),  # unrecognised: the start of the body is the message
    ],
)
def test_other_error_shapes(body: object, error_type: str, message: str | None) -> None:
    record = observe(CHAT, json.dumps(body).encode(), status=401, content_type="application/json")
    assert record.error_type == error_type
    assert record.error_message == message


# --- streams -------------------------------------------------------------------------------


def test_stream_with_usage_chunk() -> None:
    raw = fixture_bytes("openai_chat_stream_usage.sse")
    record = observe(CHAT, per_event(raw))  # one event per chunk; chunk i arrives at 1 + i
    assert record.stream and record.completed and record.error_type is None
    assert record.response_id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert record.response_model == "gpt-4o-mini-2024-07-18"
    assert record.finish_reasons == ["stop"]
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (1234, 9, 1243)
    assert record.cache_read_tokens == 1024
    assert record.chunk_count == 6  # JSON chunks; [DONE] is not one
    # The role-only first chunk (index 0, t=1.0) is not the first chunk of output; "Hello" (t=2.0) is.
    assert record.time_to_first_chunk == pytest.approx(2.0)
    assert record.output_messages == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello there, café ☕ — hé!"}],
            "finish_reason": "stop",
        }
    ]


def test_stream_without_usage_crlf() -> None:
    record = observe(CHAT, fixture_bytes("openai_chat_stream_no_usage_crlf.sse"))
    assert record.completed and record.error_type is None
    assert record.finish_reasons == ["length"]
    assert record.input_tokens is None and record.output_tokens is None
    assert record.output_messages[0]["parts"] == [{"type": "text", "content": "Bonjour à tous 👋"}]


def test_stream_tool_call_fragments_reassembled() -> None:
    record = observe(CHAT, fixture_bytes("openai_chat_stream_tool_calls.sse"))
    assert record.finish_reasons == ["tool_calls"]
    assert record.output_messages == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_weather_paris",
                    "name": "get_weather",
                    "arguments": {"location": "Paris, France"},
                },
                {
                    "type": "tool_call",
                    "id": "call_weather_rome",
                    "name": "get_weather",
                    "arguments": {"location": "Rome, Italy"},
                },
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert record.output_tokens == 51


def test_stream_tool_call_sets_first_chunk_time() -> None:
    raw = fixture_bytes("openai_chat_stream_tool_calls.sse")
    record = observe(CHAT, per_event(raw), capture=False)
    assert record.time_to_first_chunk == pytest.approx(1.0)  # the first chunk already opens a tool call
    assert record.output_messages is None


def test_stream_n2_choices_by_index() -> None:
    record = observe(CHAT, fixture_bytes("openai_chat_stream_n2.sse"))
    assert record.finish_reasons == ["length", "stop"]  # by choice index, not by arrival
    assert [m["parts"][0]["content"] for m in record.output_messages or []] == ["Red rose", "Blue sky"]
    assert [m["finish_reason"] for m in record.output_messages or []] == ["length", "stop"]


def test_stream_refusal() -> None:
    record = observe(CHAT, fixture_bytes("openai_chat_stream_refusal.sse"))
    assert record.output_messages[0]["parts"] == [{"type": "refusal", "content": "I'm sorry, I can't help with that."}]


def test_openrouter_stream_comments_reasoning_and_cost() -> None:
    raw = fixture_bytes("openrouter_chat_stream_usage.sse")
    record = observe(CHAT, per_event(raw))
    assert record.completed and record.error_type is None
    # Chunks 0-2 are two comments and an empty-content delta; the reasoning delta is chunk 3,
    # which arrives at t = 1 + 3.
    assert record.time_to_first_chunk == pytest.approx(4.0)
    assert record.chunk_count == 5
    assert record.served_by == "Google"
    assert record.finish_reasons == ["stop"]
    assert record.native_finish_reasons == ["STOP"]
    assert record.reasoning_tokens == 48
    assert record.cost == pytest.approx(0.0001488)
    assert record.cost_source == "provider"
    assert record.output_cost == pytest.approx(0.0001425)
    assert record.output_messages == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "The user wants a greeting."},
                {"type": "text", "content": "Hi! How can I help?"},
            ],
            "finish_reason": "stop",
        }
    ]


def test_openrouter_midstream_error_under_200() -> None:
    record = observe(CHAT, fixture_bytes("openrouter_chat_stream_midstream_error.sse"))
    assert record.status_code == 200
    assert record.error_type == "server_error"
    assert record.error_message == "Provider disconnected unexpectedly"
    assert record.finish_reasons == ["error"]
    assert not record.completed
    assert record.output_messages[0]["parts"] == [{"type": "text", "content": "Let me think about"}]


def test_openai_bare_error_chunk() -> None:
    raw = (
        b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4.1","choices":[{"index":0,'
        b'"delta":{"content":"The"},"finish_reason":null}]}\n\n'
        b'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n'
    )
    record = observe(CHAT, raw)
    assert record.error_type == "server_error"


def test_truncated_stream_without_done() -> None:
    record = observe(CHAT, fixture_bytes("openai_chat_stream_truncated.sse"))
    assert record.error_type == "truncated"
    assert not record.completed
    # The last event had no final blank line and still counts.
    assert record.output_messages[0]["parts"] == [{"type": "text", "content": "Once upon a time"}]
    assert record.output_messages[0]["finish_reason"] == ""


def test_stream_content_is_capped_with_marker() -> None:
    record = GenerationRecord(provider="openai", capture_content=True)
    reader = ChatStreamReader(record, max_content_chars=10)
    for piece in ["abcdef", "ghijkl", "mnop"]:
        reader.on_event(None, json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}), 1.0)
    reader.on_event(None, "[DONE]", 2.0)
    reader.on_end()
    assert record.output_messages[0]["parts"] == [{"type": "text", "content": "abcdefghij" + TRUNCATION_MARKER}]


def test_capped_tool_arguments_stay_a_string() -> None:
    record = GenerationRecord(provider="openai", capture_content=True)
    reader = ChatStreamReader(record, max_content_chars=8)
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"key": "value"}'}}
    reader.on_event(None, json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}), 1.0)
    reader.on_end()
    part = record.output_messages[0]["parts"][0]
    assert part["arguments"] == '{"key": ' + TRUNCATION_MARKER


def test_stream_reader_ignores_junk_and_bounds_choices() -> None:
    record = GenerationRecord(provider="openai", capture_content=True)
    reader = ChatStreamReader(record)
    reader.on_event(None, "not json", 1.0)
    reader.on_event(None, "[1, 2]", 1.0)
    for index in range(1000):
        reader.on_event(None, json.dumps({"choices": [{"index": index, "delta": {"content": "x"}}]}), 1.0)
    reader.on_event(None, "[DONE]", 2.0)
    reader.on_end()
    assert record.chunk_count == 1000
    assert len(record.output_messages or []) == 128
    assert record.error_type is None


def test_on_end_is_idempotent_and_events_after_it_ignored() -> None:
    record = GenerationRecord(provider="openai", capture_content=True)
    reader = ChatStreamReader(record)
    reader.on_end()
    reader.on_event(None, "[DONE]", 1.0)
    reader.on_end()
    assert record.error_type == "truncated"
    assert not record.completed


# --- legacy completions ---------------------------------------------------------------------


def test_text_completion_request_and_response() -> None:
    request = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 7, "temperature": 0}
    record = observe(TEXT, fixture_bytes("openai_completions.json"), content_type="application/json", request=request)
    assert record.operation == "text_completion"
    assert record.request_params == {"max_tokens": 7, "temperature": 0.0}
    assert record.input_messages == [{"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}]
    assert record.finish_reasons == ["length"]
    assert (record.input_tokens, record.output_tokens) == (5, 7)
    assert record.output_messages == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "\n\nThis is indeed a test"}],
            "finish_reason": "length",
        }
    ]


def test_text_completion_stream() -> None:
    raw = fixture_bytes("openai_completions_stream.sse")
    record = observe(TEXT, per_event(raw))
    assert record.completed and record.error_type is None
    assert record.time_to_first_chunk == pytest.approx(1.0)
    assert record.finish_reasons == ["stop"]
    assert record.total_tokens == 10
    assert record.output_messages[0]["parts"] == [{"type": "text", "content": "This is a test."}]
