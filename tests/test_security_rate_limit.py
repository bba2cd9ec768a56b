"""OR_MIDDLEWARE_USER_RATE_LIMIT: off unless set; when set, a user over it gets 429 + Retry-After and no LLM call."""

from __future__ import annotations

import httpx
import pytest

import or_middleware
from or_middleware import ConfigError, LLMTracingMiddleware, LLMTracingWSGIMiddleware, Settings
from or_middleware.demo.serving import serve_asgi
from or_middleware.ratelimit import RateLimit, UserRateLimiter
from tests.apps import chat_body, fastapi_app, flask_app
from tests.conftest import make_settings, otlp
from tests.support.servers import serve_wsgi


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("text", "limit"), [
    ("60/min", RateLimit(60, 60)), ("1000/hour", RateLimit(1000, 3600)), ("10/30s", RateLimit(10, 30)),
    ("5 / day", RateLimit(5, 86400)), ("2/1.5h", RateLimit(2, 5400)), ("3/seconds", RateLimit(3, 1)),
])
def test_rate_limit_spellings(text, limit):
    assert RateLimit.parse(text) == limit


def test_a_bad_rate_limit_stops_start_up_naming_the_variable(monkeypatch):
    monkeypatch.setenv("OR_MIDDLEWARE_USER_RATE_LIMIT", "sixty a minute")
    with pytest.raises(ConfigError, match=r"OR_MIDDLEWARE_USER_RATE_LIMIT.*60/min"):
        Settings()
    monkeypatch.setenv("OR_MIDDLEWARE_USER_RATE_LIMIT", "0/min")
    with pytest.raises(ConfigError, match="positive"):
        Settings()


def test_at_most_n_in_any_window_and_retry_after_is_exact():
    clock = Clock()
    limiter = UserRateLimiter(RateLimit(3, 60), clock=clock)
    for at in (0, 10, 20):
        clock.now = 1000 + at
        assert limiter.retry_after("alice") is None
    clock.now = 1030
    assert limiter.retry_after("alice") == pytest.approx(30)  # the call at +0 leaves the window at +60
    assert limiter.retry_after("bob") is None  # per user
    assert limiter.retry_after(None) is None  # no user id: never limited
    clock.now = 1060
    assert limiter.retry_after("alice") is None  # +0 has left; +10, +20, +60 are in
    clock.now = 1065
    assert limiter.retry_after("alice") == pytest.approx(5)  # a refused call is not counted


def test_asgi_answers_429_with_retry_after_before_the_llm_call(upstream, receiver, monkeypatch):
    monkeypatch.setenv("OR_MIDDLEWARE_USER_RATE_LIMIT", "3/min")
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver)))
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        alice = [client.post("/ask", json=chat_body(f"q{n}"), headers={"x-user-id": "alice"}) for n in range(4)]
        bob = client.post("/ask", json=chat_body("q"), headers={"x-user-id": "bob"})
        anonymous = [client.post("/ask", json=chat_body("q")) for _ in range(5)]
        assert or_middleware.force_flush()
    assert [r.status_code for r in alice] == [200, 200, 200, 429]
    refused = alice[3]
    assert 55 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == 429 and "3 per 60s" in refused.json()["error"]["message"]
    assert bob.status_code == 200 and all(r.status_code == 200 for r in anonymous)
    sent = [r.json["messages"][0]["content"] for r in upstream.received]
    assert sent.count("q3") == 0 and len(sent) == 3 + 1 + 5  # the refused request never reached the LLM
    refused_server_span = receiver.wait_for_spans(lambda s: s.kind == "SERVER" and 429 in (
        s.attributes.get("http.response.status_code"), s.attributes.get("http.status_code")))
    assert len(refused_server_span) == 1  # visible in traces as the request it was


def test_wsgi_answers_429_too(upstream):
    app = flask_app(upstream.openrouter)
    settings = make_settings(upstream, user_rate_limit="2/min")
    app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app, settings=settings)
    with serve_wsgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        statuses = [client.post("/ask", json=chat_body("w"), headers={"x-user-id": "carol"}) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert int(statuses[2].headers["retry-after"]) >= 1
    assert len(upstream.received) == 2


def test_without_the_setting_nothing_is_limited(upstream):
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream))
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        statuses = {client.post("/ask", json=chat_body("x"), headers={"x-user-id": "dan"}).status_code
                    for _ in range(80)}
    assert statuses == {200}
