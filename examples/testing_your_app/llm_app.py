"""A small FastAPI app that calls an LLM: what ``test_llm_app.py`` beside it tests with the
``capllm`` and ``fake_llm`` fixtures of or_middleware's pytest plugin.

    OPENROUTER_API_KEY=sk-or-v1-... uvicorn llm_app:app
"""

from __future__ import annotations

import os

import openai
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse

from or_middleware import LLMTracingMiddleware


def create_app(base_url: str | None = None) -> FastAPI:
    llm = openai.OpenAI(
        base_url=base_url or os.environ.get("OPENAI_BASE_URL", "https://openrouter.ai/api/v1"),
        api_key=os.environ.get("OPENROUTER_API_KEY", "sk-or-v1-not-needed-by-the-fake"),
        max_retries=0,
    )
    app = FastAPI()
    app.add_middleware(LLMTracingMiddleware)

    @app.get("/summary")
    def summary(text: str, model: str = "openai/gpt-4o") -> dict[str, str]:
        try:
            answer = llm.chat.completions.create(
                model=model,
                messages=[{"role": "system", "content": "Summarise in one line."}, {"role": "user", "content": text}],
                extra_body={"trace": {"feature": "summary"}},
            )
        except openai.APIStatusError as exc:
            raise HTTPException(502, f"the LLM answered {exc.status_code}") from None
        return {"summary": answer.choices[0].message.content or ""}

    @app.get("/story")
    def story(topic: str) -> StreamingResponse:
        stream = llm.chat.completions.create(
            model="anthropic/claude-sonnet-4.5", stream=True, messages=[{"role": "user", "content": topic}]
        )
        return StreamingResponse((chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices),
                                 media_type="text/plain")

    return app


app = create_app()
