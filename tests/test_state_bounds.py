"""Per-key state is bounded in bytes, whatever clients send (issue 11 item 7).

The rate limiter is driven through a real server with thousands of distinct 8 KB user ids; the
security monitor is fed the GenAI spans such clients produce (it runs on the exporter side).
"""

from __future__ import annotations

import sys
import tracemalloc

import httpx

from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import SecuritySettings
from or_middleware.demo.serving import serve_asgi
from or_middleware.keys import MAX_KEY_CHARS, bounded_key
from or_middleware.ratelimit import RateLimit, UserRateLimiter
from or_middleware.security import SecurityMonitor
from tests.support.generations import genai_span

LONG = 8 * 1024


def _long_id(n: int) -> str:
    return f"{n:08d}" + "u" * (LONG - 8)


def test_thousands_of_8kb_user_ids_keep_a_few_hundred_bytes_each(upstream):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    middleware = LLMTracingMiddleware(app, settings=Settings(destinations=[], user_rate_limit="5/min"))
    users = 2000
    with serve_asgi(middleware) as url, httpx.Client(base_url=url, timeout=30) as client:
        for n in range(users):
            assert client.get("/", headers={"x-user-id": _long_id(n)}).status_code == 200
        # distinct ids stay distinct: the 6th request of one of them is refused
        for _ in range(5):
            client.get("/", headers={"x-user-id": _long_id(7)})
        assert client.get("/", headers={"x-user-id": _long_id(7)}).status_code == 429
        assert client.get("/", headers={"x-user-id": _long_id(8)}).status_code == 200
    kept = middleware._rate_limiter._users  # on 154468c: 2000 keys of 8 KB, 16 MB
    assert len(kept) == users
    assert max(len(key) for key in kept) <= MAX_KEY_CHARS + 17
    assert sum(sys.getsizeof(key) for key in kept) < users * 300


def test_the_rate_limiter_keeps_users_within_its_byte_budget():
    limiter = UserRateLimiter(RateLimit(1000, 3600), max_bytes=4 * 1024 * 1024)
    tracemalloc.start()
    try:
        for n in range(20_000):
            limiter.retry_after(_long_id(n))
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert used < 8 * 1024 * 1024  # 20,000 x 8 KB ids would be 160 MB of keys alone


def test_a_busy_users_windows_do_not_grow_with_the_rate():
    settings = SecuritySettings(model_switch_window_s=600, burst_window_s=600)
    monitor = SecurityMonitor(settings)
    user = "u" * LONG
    for n in range(5000):  # one user, 5000 calls inside one window, a new 1 KB model name each time
        monitor.inspect(genai_span(start_s=1_000 + n * 0.01, user=user, request_model=f"m{n}-" + "x" * 1024,
                                   trace_name="GET /" + "p" * LONG), None)
    [(key, state)] = list(monitor._users._items.items())
    assert len(key) <= MAX_KEY_CHARS + 17
    assert len(state.calls._times) <= settings.burst_requests + 1
    assert len(state.models._last_seen) <= max(settings.model_switch_models + 1, 10)
    assert all(len(model) <= MAX_KEY_CHARS + 17 for model in state.models._last_seen)
    assert monitor.counts["burst"] == 1 and monitor.counts["model_switching"] == 1  # still flagged, once


def test_bounded_keys_keep_distinct_ids_distinct():
    a, b = "x" * 500 + "a", "x" * 500 + "b"
    assert bounded_key(a) != bounded_key(b)
    assert bounded_key("alice") == "alice"
