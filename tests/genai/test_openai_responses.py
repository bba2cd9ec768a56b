from __future__ import annotations

import json

import pytest

from or_middleware.genai.openai_responses import ResponsesFormat
from or_middleware.genai.record import GenerationRecord
from tests.genai.genai_testing import fixture_bytes, observe, per_event

RESPONSES = ResponsesFormat()


def test_request() -> None:
    record = GenerationRecord(provider="openai", capture_content=True)
    RESPONSES.read_request(json.loads(fixture_bytes("openai_responses_request.json")), record)
    assert record.request_model == "gpt-4.1"
    assert record.stream is True
    assert record.request_params == {"max_tokens": 300, "temperature": 0.5, "top_p": 0.8}
    assert record.output_type == "json"
    assert record.system_instructions == [
        {"type": "text", "content": "You are a weather bot."},
        {"type": "text", "content": "Use metric units."},
    ]
    assert record.input_messages == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Weather in Oslo? Here is a map:"},
                {"type": "uri", "modality": "image", "uri": "https://example.com/oslo.png"},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_wx_42", "name": "get_weather", "arguments": {"location": "Oslo"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_wx_42", "response": '{"temp_c": 4}'}]},
    ]
    assert record.tool_definitions == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
        {"type": "web_search_preview"},
    ]


def test_string_input() -> None:
    record = GenerationRecord(provider="openai", capture_content=True)
    RESPONSES.read_request({"model": "gpt-4.1", "input": "Hi"}, record)
    assert record.input_messages == [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
    assert record.system_instructions is None


def test_non_streamed_response() -> None:
    record = observe(RESPONSES, fixture_bytes("openai_responses.json"), content_type="application/json")
    assert record.error_type is None and record.completed
    assert record.response_id == "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41"
    assert record.response_model == "gpt-4o-2024-08-06"
    assert record.finish_reasons == ["stop"]
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (328, 52, 380)
    assert record.cache_read_tokens == 256
    assert record.reasoning_tokens == 0
    assert record.output_messages == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Silver moon, quiet sea."}],
            "finish_reason": "stop",
        }
    ]


def test_stream_text() -> None:
    record = observe(RESPONSES, per_event(fixture_bytes("openai_responses_stream_text.sse")))
    assert record.completed and record.error_type is None
    assert record.response_id == "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"
    assert record.time_to_first_chunk == pytest.approx(5.0)  # the first output_text.delta is event 4
    assert record.chunk_count == 10
    assert record.finish_reasons == ["stop"]
    assert (record.input_tokens, record.cache_read_tokens, record.output_tokens) == (1537, 1408, 6)
    assert record.output_messages == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hi there — 🌍!"}], "finish_reason": "stop"}
    ]


def test_stream_function_call_and_reasoning() -> None:
    record = observe(RESPONSES, per_event(fixture_bytes("openai_responses_stream_function_call.sse")))
    assert record.completed and record.error_type is None
    assert record.time_to_first_chunk == pytest.approx(3.0)  # the reasoning summary delta, event 2
    assert record.finish_reasons == ["tool_calls"]
    assert record.reasoning_tokens == 128
    assert record.output_messages == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "Need the weather tool."},
                {"type": "tool_call", "id": "call_wx_42", "name": "get_weather", "arguments": {"location": "Oslo"}},
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_stream_incomplete_is_a_finish_reason_not_an_error() -> None:
    record = observe(RESPONSES, fixture_bytes("openai_responses_stream_incomplete.sse"))
    assert record.completed and record.error_type is None
    assert record.finish_reasons == ["length"]
    assert record.native_finish_reasons == ["max_output_tokens"]
    assert record.output_tokens == 16


def test_stream_failed() -> None:
    record = observe(RESPONSES, fixture_bytes("openai_responses_stream_failed.sse"))
    assert record.error_type == "server_error"
    assert record.error_message == "The model failed to generate a response."
    assert record.finish_reasons == ["error"]
    assert record.output_messages[0]["parts"] == [{"type": "text", "content": "Partial"}]


def test_stream_error_event() -> None:
    record = observe(RESPONSES, fixture_bytes("openai_responses_stream_error_event.sse"))
    assert record.error_type == "rate_limit_exceeded"
    assert not record.completed


def test_stream_truncated_without_terminal_event() -> None:
    raw = fixture_bytes("openai_responses_stream_text.sse")
    record = observe(RESPONSES, raw[: raw.index(b"event: response.completed")])
    assert record.error_type == "truncated"
    assert record.input_tokens is None


def test_error_body() -> None:
    body = b'{"error": {"message": "Invalid input", "type": "invalid_request_error", "param": "input", "code": null}}'
    record = observe(RESPONSES, body, status=400, content_type="application/json")
    assert record.error_type == "invalid_request_error"
