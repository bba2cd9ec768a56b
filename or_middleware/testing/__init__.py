"""Test helpers for apps that use or_middleware: capture the LLM calls your code makes, in memory.

    from or_middleware.testing import capture_llm_calls

    with capture_llm_calls() as captured:
        client.get("/ask")
    assert captured.one(model="openai/gpt-4o").user == "alice"

With pytest the same is the ``capllm`` fixture (and ``fake_llm`` serves a fake LLM API), from the
plugin the package registers (``or_middleware_pytest``; nothing runs unless a test asks for one
of its fixtures).
"""

from or_middleware.testing.capture import CapturedLLMCalls, LLMCall, capture_llm_calls

__all__ = ["CapturedLLMCalls", "LLMCall", "capture_llm_calls"]
