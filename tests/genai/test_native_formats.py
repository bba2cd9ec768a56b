"""Gemini / Vertex AI, Cohere v2, Ollama and Groq wire formats on recorded fixtures.

Fixtures follow each provider's documented examples:
- Gemini: https://ai.google.dev/api/generate-content (streamGenerateContent with alt=sse, and
  the JSON array without it), https://ai.google.dev/api/embeddings#method:-models.batchembedcontents,
  errors https://ai.google.dev/gemini-api/docs/troubleshooting; Vertex :predict for text
  embeddings https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api
- Cohere v2: https://docs.cohere.com/reference/chat, https://docs.cohere.com/reference/chat-stream,
  https://docs.cohere.com/reference/embed
- Ollama: https://github.com/ollama/ollama/blob/main/docs/api.md
- Groq: https://console.groq.com/docs/api-reference#chat-create (x_groq.usage on the last chunk)
"""

from __future__ import annotations

import json

import pytest

from or_middleware.genai.record import GenerationRecord
from or_middleware.genai.registry import format_for
from tests.genai.genai_testing import fixture_bytes, observe

GEMINI_STREAM = format_for("openai", "/v1beta/models/gemini-2.5-flash:streamGenerateContent")
GEMINI = format_for("openai", "/v1beta/models/gemini-2.5-flash:generateContent")
VERTEX = "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"
COHERE = format_for("openai", "/v2/chat")
OLLAMA_CHAT = format_for("openai", "/api/chat")
NDJSON = "application/x-ndjson"


def test_paths_pick_formats_and_bind_the_model():
    assert GEMINI.operation == "generate_content" and GEMINI.native_provider == "gcp.gemini"
    vertex = format_for("openai", VERTEX)
    assert vertex.native_provider == "gcp.vertex_ai" and vertex.model == "gemini-2.5-pro"
    assert format_for("openai", "/v1beta/models/text-embedding-004:batchEmbedContents").operation == "embeddings"
    assert format_for("openai", "/v1beta/models/gemini-2.5-flash:countTokens") is None
    assert format_for("openai", "/v1/projects/p/locations/l/endpoints/123:predict") is None
    assert format_for("openai", "/v2/embed").operation == "embeddings"
    assert format_for("openai", "/api/generate").operation == "text_completion"
    assert format_for("openai", "/api/embed").native_provider == "ollama"
    assert format_for("openai", "/api/tags") is None
    assert format_for("openai", "/v2/chat/extra") is None


def gemini_request(stream: bool = True) -> dict:
    return {
        "contents": [{"role": "user", "parts": [{"text": "Tell me a joke"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}]}],
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 100, "topK": 40, "stopSequences": ["END"]},
    }


@pytest.mark.parametrize(("name", "content_type"), [("gemini_stream_text.sse", "text/event-stream"),
                                                     ("gemini_stream_text_array.json-stream", "application/json")])
def test_gemini_stream_both_framings(name, content_type):
    record = observe(GEMINI_STREAM, fixture_bytes(name), content_type=content_type, request=gemini_request())
    assert record.stream and record.request_model == "gemini-2.5-flash"
    assert record.request_params == {"temperature": 0.5, "max_tokens": 100, "top_k": 40, "stop_sequences": ["END"]}
    assert record.response_id == "mBHGaOyQJ6uXz7IP5smJ0Ao" and record.response_model == "gemini-2.5-flash"
    assert record.finish_reasons == ["STOP"]
    # promptTokenCount includes the cached tokens; output = candidates + thoughts
    assert (record.input_tokens, record.output_tokens, record.reasoning_tokens) == (12, 40, 25)
    assert (record.cache_read_tokens, record.total_tokens) == (4, 52)
    assert record.chunk_count == 3 and record.time_to_first_chunk == 1.0  # the first chunk arrives at t=1.0
    assert record.error_type is None and record.completed
    assert record.system_instructions == [{"type": "text", "content": "Be brief."}]
    assert record.input_messages == [{"role": "user", "parts": [{"type": "text", "content": "Tell me a joke"}]}]
    assert record.tool_definitions == [{"type": "function", "name": "get_weather", "parameters": {"type": "OBJECT"}}]
    assert record.output_messages == [{"role": "assistant", "finish_reason": "STOP", "parts": [
        {"type": "text", "content": "Why did the chicken cross the road? To get to the other side."}]}]


def test_gemini_errors_inside_a_200_stream_and_truncation():
    error = observe(GEMINI_STREAM, fixture_bytes("gemini_stream_midstream_error.sse"), request={"contents": []})
    assert error.error_type == "INTERNAL" and error.error_message.startswith("An internal error")
    cut = observe(GEMINI_STREAM, fixture_bytes("gemini_stream_truncated.sse"), request={"contents": []})
    assert cut.error_type == "truncated" and cut.chunk_count == 2 and cut.finish_reasons == []


def test_gemini_function_call_and_thoughts():
    record = observe(GEMINI_STREAM, fixture_bytes("gemini_stream_function_call.sse"), request={"contents": []})
    assert record.output_messages[0]["parts"] == [
        {"type": "tool_call", "id": None, "name": "get_weather", "arguments": {"location": "Boston, MA"}}]
    assert (record.input_tokens, record.output_tokens) == (70, 18)
    whole = observe(GEMINI, fixture_bytes("gemini_generate.json"), content_type="application/json",
                    request={"contents": []})
    assert not whole.stream and whole.finish_reasons == ["STOP"]
    assert (whole.input_tokens, whole.output_tokens, whole.reasoning_tokens, whole.total_tokens) == (9, 62, 40, 71)
    assert [p["type"] for p in whole.output_messages[0]["parts"]] == ["reasoning", "text"]


def test_gemini_prompt_block_and_http_error():
    blocked = observe(GEMINI, fixture_bytes("gemini_prompt_blocked.json"), content_type="application/json",
                      request={"contents": []})
    assert blocked.error_type == "prompt_blocked_safety" and blocked.input_tokens == 7
    limited = observe(GEMINI, fixture_bytes("gemini_error_429.json"), status=429, content_type="application/json")
    assert limited.error_type == "RESOURCE_EXHAUSTED" and "exhausted" in limited.error_message


def test_gemini_and_vertex_embeddings():
    batch = format_for("openai", "/v1beta/models/text-embedding-004:batchEmbedContents")
    record = observe(batch, fixture_bytes("gemini_batch_embed.json"), content_type="application/json",
                     request={"requests": [{"content": {"parts": [{"text": "a"}]}}]})
    assert record.operation == "embeddings" and record.embedding_dimensions == 8 and record.error_type is None
    predict = format_for("openai", "/v1/projects/p/locations/l/publishers/google/models/text-embedding-005:predict")
    record = observe(predict, fixture_bytes("vertex_predict_embeddings.json"), content_type="application/json",
                     request={"instances": [{"content": "a"}]})
    assert (record.embedding_dimensions, record.input_tokens, record.request_model) == (4, 10, "text-embedding-005")


def cohere_request(stream: bool) -> dict:
    return {"model": "command-a-03-2025", "stream": stream, "max_tokens": 50, "p": 0.9, "k": 5,
            "messages": [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "hello"}]}


def test_cohere_stream_records_tokens_not_billed_units():
    record = observe(COHERE, fixture_bytes("cohere_chat_stream_text.sse"), request=cohere_request(True))
    assert record.response_id == "29f14a5a-11de-4cae-9800-25e4747408ea"
    assert record.request_params == {"max_tokens": 50, "top_p": 0.9, "top_k": 5}
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (69, 9, 78)
    assert record.finish_reasons == ["COMPLETE"] and record.completed and record.error_type is None
    assert record.output_messages[0]["parts"] == [{"type": "text", "content": "Hello! How can I help you today?"}]
    assert record.system_instructions == [{"type": "text", "content": "Be nice."}]


def test_cohere_tool_call_stream_and_error_end():
    record = observe(COHERE, fixture_bytes("cohere_chat_stream_tool_call.sse"), request=cohere_request(True))
    assert record.finish_reasons == ["TOOL_CALL"] and record.time_to_first_chunk is not None
    assert record.output_messages[0]["parts"] == [
        {"type": "tool_call", "id": "get_weather_1byjy32y4hvq", "name": "get_weather",
         "arguments": {"location": "Toronto"}}]
    failed = observe(COHERE, fixture_bytes("cohere_chat_stream_error.sse"), request=cohere_request(True))
    assert failed.error_type == "error" and failed.error_message.startswith("internal server error")


def test_cohere_json_error_and_embed():
    record = observe(COHERE, fixture_bytes("cohere_chat.json"), content_type="application/json",
                     request=cohere_request(False))
    assert (record.input_tokens, record.output_tokens, record.finish_reasons) == (71, 20, ["COMPLETE"])
    assert record.response_id == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
    limited = observe(COHERE, fixture_bytes("cohere_error_429.json"), status=429, content_type="application/json")
    assert limited.error_type == "http_429" and "Trial key" in limited.error_message
    embed = format_for("openai", "/v2/embed")
    record = observe(embed, fixture_bytes("cohere_embed.json"), content_type="application/json",
                     request={"model": "embed-v4.0", "texts": ["hello", "goodbye"], "input_type": "search_query"})
    assert (record.input_tokens, record.embedding_dimensions, record.stream) == (2, 4, False)


def test_ollama_streams_are_ndjson_and_the_default():
    record = observe(OLLAMA_CHAT, fixture_bytes("ollama_chat_stream_text.ndjson"), content_type=NDJSON,
                     request={"model": "llama3.2", "messages": [{"role": "user", "content": "why blue?"}],
                              "options": {"temperature": 0.2, "num_predict": 300}})
    assert record.stream  # no "stream": false in the request
    assert record.request_params == {"temperature": 0.2, "max_tokens": 300}
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (26, 282, 308)
    assert record.finish_reasons == ["stop"] and record.response_model == "llama3.2" and record.completed
    assert record.chunk_count == 4 and record.output_messages[0]["parts"] == [
        {"type": "text", "content": "The sky is blue."}]
    generate = format_for("openai", "/api/generate")
    record = observe(generate, fixture_bytes("ollama_generate_stream_thinking.ndjson"), content_type=NDJSON,
                     request={"model": "qwen3", "prompt": "strawberry?", "think": True})
    assert record.finish_reasons == ["length"] and record.output_tokens == 259
    assert [p["type"] for p in record.output_messages[0]["parts"]] == ["reasoning", "text"]


def test_ollama_errors_truncation_tools_embed():
    request = {"model": "llama3.2", "messages": []}
    error = observe(OLLAMA_CHAT, fixture_bytes("ollama_chat_stream_error.ndjson"), content_type=NDJSON, request=request)
    assert error.error_type == "error" and "unexpected EOF" in error.error_message
    cut = observe(OLLAMA_CHAT, fixture_bytes("ollama_chat_stream_truncated.ndjson"), content_type=NDJSON,
                  request=request)
    assert cut.error_type == "truncated"
    tools = observe(OLLAMA_CHAT, fixture_bytes("ollama_chat_tool_calls.json"), content_type="application/json",
                    request={**request, "stream": False})
    assert tools.output_messages[0]["parts"] == [{"type": "tool_call", "id": None, "name": "get_current_weather",
                                                   "arguments": {"format": "celsius", "location": "Paris, FR"}}]
    missing = observe(OLLAMA_CHAT, fixture_bytes("ollama_error_404.json"), status=404, content_type="application/json")
    assert missing.error_type == "http_404" and "not found" in missing.error_message
    embed = observe(format_for("openai", "/api/embed"), fixture_bytes("ollama_embed.json"),
                    content_type="application/json", request={"model": "all-minilm", "input": "x"})
    assert (embed.input_tokens, embed.embedding_dimensions, embed.stream) == (8, 6, False)


def test_groq_stream_usage_in_x_groq():
    chat = format_for("openai", "/openai/v1/chat/completions")
    record = observe(chat, fixture_bytes("groq_chat_stream_x_groq.sse"))
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (18, 556, 574)
    assert record.finish_reasons == ["stop"] and record.error_type is None


@pytest.mark.parametrize("path", ["/v1beta/models/g:streamGenerateContent", "/v2/chat", "/api/chat", "/api/generate"])
@pytest.mark.parametrize("body", [
    b"", b"\xff\xfe garbage", b"[1, 2", b'{"candidates": [{"index": 1e999, "content": {"parts": "x"}}]}',
    b'{"message": {"content": 123}, "done": "yes", "eval_count": 99999999999999999999999999}',
    b'{"type": "message-end", "delta": {"finish_reason": ["a"], "usage": {"tokens": {"input_tokens": -1.5}}}}',
    b"data: {}\n\n" * 50, b"{" * 10000, b'{"usageMetadata": {"promptTokenCount": true}}',
])
@pytest.mark.parametrize("content_type", ["text/event-stream", NDJSON, "application/json", "text/html"])
def test_hostile_bodies_never_raise_and_never_invent_numbers(path, body, content_type):
    fmt = format_for("openai", path)
    record = observe(fmt, [body[i : i + 5] for i in range(0, len(body), 5)], content_type=content_type,
                     request={"model": "m", "messages": [], "contents": [], "prompt": "p"})
    assert isinstance(record, GenerationRecord)
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"):
        value = getattr(record, name)
        assert value is None or (isinstance(value, int) and not isinstance(value, bool)), (name, value)
    json.dumps(record.output_messages)  # whatever was kept is still JSON
