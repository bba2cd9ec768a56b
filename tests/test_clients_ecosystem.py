"""LiteLLM (OpenRouter and OpenAI providers) and LangChain's ChatOpenAI pointed at OpenRouter.

They pin ``openai`` below the version the main venv tests, so they live in a side venv made by
``bash scripts/ecosystem-venv.sh`` (.venv-ecosystem, with or_middleware installed editable).
The client runs there; the fake upstream and the OTLP receiver run here. Skipped when the
side venv is absent.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.real_servers import REPO_ROOT

ECOSYSTEM_PYTHON = REPO_ROOT / ".venv-ecosystem" / "bin" / "python"

CLIENT = """
import json, os, sys
from starlette.applications import Starlette
import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import OtlpDestination

client, openrouter_base, openai_base, traces_url = sys.argv[1:5]
LLMTracingMiddleware(Starlette(), settings=Settings(
    destinations=[OtlpDestination(endpoint=traces_url, schedule_delay_ms=50)],
    llm_hosts=f"openrouter={openrouter_base},openai={openai_base}"))
messages = [{"role": "user", "content": "hello from " + client}]
if client.startswith("litellm"):
    import litellm
    litellm.telemetry = False
    if client == "litellm-openrouter":
        answer = litellm.completion(model="openrouter/openai/gpt-4o-mini", api_base=openrouter_base,
                                    api_key="sk-or-v1-k", messages=messages)
    else:
        answer = litellm.completion(model="openai/gpt-4o-mini", api_base=openai_base, api_key="sk-k",
                                    messages=messages)
    ident = answer.id
else:
    from langchain_openai import ChatOpenAI
    llm = ChatOpenAI(model="openai/gpt-4o-mini", base_url=openrouter_base, api_key="sk-or-v1-k")
    ident = llm.invoke(messages[0]["content"]).response_metadata["id"]
assert or_middleware.force_flush()
print(json.dumps({"id": ident}))
"""


@pytest.mark.skipif(not ECOSYSTEM_PYTHON.exists(), reason="no .venv-ecosystem (bash scripts/ecosystem-venv.sh)")
@pytest.mark.parametrize("client", ["litellm-openrouter", "litellm-openai", "langchain-chatopenai"])
def test_litellm_and_langchain_calls_are_traced(upstream, receiver, client):
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": "/usr/bin:/bin"}  # no cost-map download
    run = subprocess.run([str(ECOSYSTEM_PYTHON), "-c", CLIENT, client, upstream.openrouter, upstream.openai,
                          receiver.traces_url], capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    ident = json.loads(run.stdout.strip().splitlines()[-1])["id"]
    [span] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
    assert span.attributes["gen_ai.response.id"] == ident
    assert span.attributes["gen_ai.request.model"].endswith("gpt-4o-mini")
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
    sent = upstream.received[-1]
    if client == "litellm-openai":
        assert span.attributes["gen_ai.provider.name"] == "openai"
        assert "trace" not in sent.json  # no body fields OpenAI would reject
    else:
        assert span.attributes["gen_ai.provider.name"] == "openrouter"
        assert sent.json["trace"]["parent_span_id"] == span.span_id
