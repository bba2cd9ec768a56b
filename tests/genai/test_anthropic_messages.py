from __future__ import annotations

import json

import pytest

from or_middleware.genai.anthropic_messages import AnthropicMessagesFormat
from or_middleware.genai.record import GenerationRecord
from tests.genai.genai_testing import fixture_bytes, observe, per_event

MESSAGES = AnthropicMessagesFormat()


def anthropic(body: bytes | list[bytes], **options: object) -> GenerationRecord:
    return observe(MESSAGES, body, provider="anthropic", **options)


def test_request() -> None:
    record = GenerationRecord(provider="anthropic", capture_content=True)
    MESSAGES.read_request(json.loads(fixture_bytes("anthropic_request.json")), record)
    assert record.request_model == "claude-sonnet-4-20250514"
    assert record.stream is True
    assert record.user == "user-7"
    assert record.request_params == {
        "max_tokens": 1024,
        "temperature": 0.3,
        "top_k": 5,
        "stop_sequences": ["\n\nHuman:"],
    }
    assert record.system_instructions == [{"type": "text", "content": "You are a weather assistant."}]
    assert record.input_messages == [
        {"role": "user", "parts": [{"type": "text", "content": "What's the weather in SF?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Checking."},
                {
                    "type": "tool_call",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "arguments": {"location": "San Francisco, CA"},
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {"type": "tool_call_response", "id": "toolu_01", "response": "15 C, foggy"},
                {"type": "blob", "modality": "image", "mime_type": "image/jpeg", "content": "/9j/4AAQ"},
            ],
        },
    ]
    assert record.tool_definitions == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Get the weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        }
    ]


def test_string_system_prompt() -> None:
    record = GenerationRecord(provider="anthropic", capture_content=True)
    MESSAGES.read_request({"model": "claude-3-5-haiku-latest", "system": "Be terse.", "messages": []}, record)
    assert record.system_instructions == [{"type": "text", "content": "Be terse."}]


def test_non_streamed_message_adds_cache_tokens_to_input() -> None:
    record = anthropic(fixture_bytes("anthropic_message.json"), content_type="application/json")
    assert record.error_type is None and record.completed
    assert record.response_id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert record.response_model == "claude-sonnet-4-20250514"
    assert record.finish_reasons == ["tool_use"]
    # semconv input tokens include cached ones; Anthropic reports them apart.
    assert record.input_tokens == 100 + 2000 + 50000
    assert record.cache_read_tokens == 50000
    assert record.cache_creation_tokens == 2000
    assert record.output_tokens == 60
    assert record.total_tokens == 52160
    assert record.output_messages == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "Weather needed."},
                {"type": "text", "content": "I'll check the weather."},
                {
                    "type": "tool_call",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "get_weather",
                    "arguments": {"location": "San Francisco, CA"},
                },
            ],
            "finish_reason": "tool_use",
        }
    ]


def test_stream_text_with_cache_usage_and_ping() -> None:
    record = anthropic(per_event(fixture_bytes("anthropic_stream_text.sse")))
    assert record.completed and record.error_type is None
    assert record.response_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert record.time_to_first_chunk == pytest.approx(4.0)  # text_delta is event 3; ping is not output
    assert record.chunk_count == 7  # the ping is not counted
    assert record.finish_reasons == ["end_turn"]
    assert record.input_tokens == 25 + 1200 + 3000
    assert record.cache_read_tokens == 3000
    assert record.cache_creation_tokens == 1200
    assert record.output_tokens == 15  # message_delta's cumulative count replaces message_start's 1
    assert record.total_tokens == 4240
    assert record.output_messages == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello, wörld — ☀️!"}], "finish_reason": "end_turn"}
    ]


def test_stream_tool_use_input_json_reassembled() -> None:
    record = anthropic(per_event(fixture_bytes("anthropic_stream_tool_use.sse")))
    assert record.finish_reasons == ["tool_use"]
    assert record.input_tokens == 472
    assert record.cache_read_tokens is None
    assert record.output_tokens == 89
    assert record.output_messages[0]["parts"] == [
        {"type": "text", "content": "Okay, let me check the weather for San Francisco, CA:"},
        {
            "type": "tool_call",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "arguments": {"location": "San Francisco, CA", "unit": "fahrenheit"},
        },
    ]


def test_stream_thinking() -> None:
    record = anthropic(per_event(fixture_bytes("anthropic_stream_thinking.sse")))
    assert record.time_to_first_chunk == pytest.approx(3.0)  # the thinking_delta, event 2
    assert record.output_messages[0]["parts"] == [
        {"type": "reasoning", "content": "27 * 453 = 12231"},
        {"type": "text", "content": "27 * 453 = 12,231"},
    ]


def test_stream_error_event() -> None:
    record = anthropic(fixture_bytes("anthropic_stream_error.sse"))
    assert record.status_code == 200
    assert record.error_type == "overloaded_error"
    assert record.error_message == "Overloaded"
    assert not record.completed
    assert record.output_messages[0]["parts"] == [{"type": "text", "content": "Sure"}]


def test_stream_truncated() -> None:
    record = anthropic(fixture_bytes("anthropic_stream_truncated.sse"), capture=False)
    assert record.error_type == "truncated"
    assert record.input_tokens == 8
    assert record.output_messages is None


def test_error_body() -> None:
    record = anthropic(fixture_bytes("anthropic_error_529.json"), status=529, content_type="application/json")
    assert record.error_type == "overloaded_error"
    assert record.error_message == "Overloaded"


def test_error_shape_under_200() -> None:
    record = anthropic(fixture_bytes("anthropic_error_529.json"), content_type="application/json")
    assert record.error_type == "overloaded_error"
