"""Django in one file, served as WSGI and as ASGI: an async and a sync view and a background
thread, each calling an LLM through the openai SDK.

    OPENROUTER_API_KEY=sk-or-v1-... gunicorn examples.django_app:application --bind 127.0.0.1:8000
    OPENROUTER_API_KEY=sk-or-v1-... uvicorn examples.django_app:asgi_application --port 8000

In a regular project the same two lines go into ``wsgi.py`` / ``asgi.py``:

    application = LLMTracingWSGIMiddleware(get_wsgi_application())    # wsgi.py
    application = LLMTracingMiddleware(get_asgi_application())         # asgi.py

Nothing goes into ``settings.MIDDLEWARE``: wrapping the application outside Django's own
middleware means the server span covers everything Django does, and LLM calls made by any
view, middleware or signal handler of the request belong to it.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import threading

import django
import openai
from django.conf import settings as django_settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

from or_middleware import LLMTracingMiddleware, LLMTracingWSGIMiddleware, Settings

MODEL = os.environ.get("LLM_MODEL", "openai/gpt-4o-mini")

if not django_settings.configured:
    django_settings.configure(
        DEBUG=False,
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
    )
    django.setup()


def _llm_base_url() -> str:
    return os.environ.get("LLM_BASE_URL", "https://openrouter.ai/api/v1")


def _api_key() -> str:
    return os.environ.get("OPENROUTER_API_KEY", "sk-or-v1-unset")


async def ask(request: HttpRequest) -> JsonResponse:
    question = json.loads(request.body)["question"]
    async with openai.AsyncOpenAI(base_url=_llm_base_url(), api_key=_api_key()) as client:
        completion = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])
    return JsonResponse({"answer": completion.choices[0].message.content, "id": completion.id})


def ask_sync(request: HttpRequest) -> JsonResponse:
    question = json.loads(request.body)["question"]
    with openai.OpenAI(base_url=_llm_base_url(), api_key=_api_key()) as client:
        completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])
    return JsonResponse({"answer": completion.choices[0].message.content, "id": completion.id})


def ask_later(request: HttpRequest) -> JsonResponse:
    question = json.loads(request.body)["question"]

    def summarise() -> None:  # runs after the response is sent; still in the request's trace
        with openai.OpenAI(base_url=_llm_base_url(), api_key=_api_key()) as client:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"summarise: {question}"}]
            )

    threading.Thread(target=contextvars.copy_context().run, args=(summarise,), daemon=True).start()
    return JsonResponse({"queued": True}, status=202)


urlpatterns = [path("ask", ask), path("ask-sync", ask_sync), path("ask-later", ask_later)]


def create_wsgi_app(settings: Settings | None = None) -> LLMTracingWSGIMiddleware:
    from django.core.wsgi import get_wsgi_application

    return LLMTracingWSGIMiddleware(get_wsgi_application(), settings=settings)


def create_asgi_app(settings: Settings | None = None) -> LLMTracingMiddleware:
    from django.core.asgi import get_asgi_application

    return LLMTracingMiddleware(get_asgi_application(), settings=settings)


@functools.cache
def _from_env(kind: str) -> LLMTracingWSGIMiddleware | LLMTracingMiddleware:
    return create_wsgi_app() if kind == "wsgi" else create_asgi_app()


def __getattr__(name: str) -> LLMTracingWSGIMiddleware | LLMTracingMiddleware:
    # `gunicorn examples.django_app:application` / `uvicorn examples.django_app:asgi_application`
    if name == "application":
        return _from_env("wsgi")
    if name == "asgi_application":
        return _from_env("asgi")
    raise AttributeError(name)
