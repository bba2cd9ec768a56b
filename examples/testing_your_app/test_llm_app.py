"""Testing an LLM app's calls without a network or a key: ``fake_llm`` is a local fake OpenRouter,
``capllm`` holds every LLM call the app made during the test (or_middleware's pytest plugin).

    pytest examples/testing_your_app
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from llm_app import create_app


def test_summary_calls_gpt_4o_once_for_the_user(capllm, fake_llm):
    client = TestClient(create_app(fake_llm.openrouter_base_url))

    answer = client.get("/summary", params={"text": "OpenTelemetry traces requests"}, headers={"x-user-id": "alice"})

    assert answer.status_code == 200
    call = capllm.one(model="openai/gpt-4o")  # exactly one call to that model
    assert call.user == "alice"
    assert call.route == "GET /summary"
    assert call.total_tokens is not None and call.total_tokens < 50
    assert call.metadata == {"feature": "summary"}
    assert call.input_messages[-1]["parts"][0]["content"] == "OpenTelemetry traces requests"
    assert len(fake_llm.received) == 1


def test_a_streamed_story_is_one_call_with_a_time_to_first_chunk(capllm, fake_llm):
    client = TestClient(create_app(fake_llm.openrouter_base_url))

    assert client.get("/story", params={"topic": "a fox"}).text == "Echo: a fox"

    [call] = capllm.wait_for(1)  # a stream's call ends when the stream does
    assert call.stream and call.request_model == "anthropic/claude-sonnet-4.5"
    assert call.attributes["gen_ai.response.time_to_first_chunk"] >= 0


def test_an_upstream_error_is_recorded_and_answered_502(capllm, fake_llm):
    client = TestClient(create_app(fake_llm.openrouter_base_url))

    answer = client.get("/summary", params={"text": "hi", "model": "fake/error_503"})  # the fake's scenario switch

    assert answer.status_code == 502
    call = capllm.one(route="GET /summary")
    assert call.status == "error" and call.error_type == "503"
    assert capllm.total_cost == 0
