"""A realistic store of N generations for the scale benchmark, written straight into the real schema.

Rows have the shape the writer gives them (``or_middleware.store.rows``: the same columns, JSON
metadata and evidence, hex ids, NULL content unless captured) and are spread over 30 days with a
daily rhythm: ~25 models (a few carry most calls), 5,000 users (Zipf-like) of whom 15 % of calls
have none, sessions of a few to a few hundred calls, traces of 1-4 calls (tool loops, retries),
20 routes over 4 services, metadata on 60 % of calls, 3 % errors, 40 % streams, 0.5 % of calls
raising security signals, content captured on 2 %.

The schema comes from the store's own migrations (``open_store`` for SQLite, ``migrate`` for
PostgreSQL); rows go in by bulk ``executemany`` (SQLite) and ``COPY`` (PostgreSQL), in time order
as a fleet's writers append them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterator
from typing import Any

from or_middleware.store.schema import GENERATION_COLUMNS, SECURITY_COLUMNS

DAYS = 30
SEED = 13
# model asked for, model that answered, API, who served it, $ per 1M input / output tokens, weight
MODELS: tuple[tuple[str, str, str, str | None, float, float, float], ...] = (
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", None, 0.15, 0.6, 30),
    ("gpt-4o", "gpt-4o-2024-08-06", "openai", None, 2.5, 10.0, 14),
    ("gpt-4.1", "gpt-4.1-2025-04-14", "openai", None, 2.0, 8.0, 6),
    ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "openai", None, 0.4, 1.6, 6),
    ("o3-mini", "o3-mini-2025-01-31", "openai", None, 1.1, 4.4, 3),
    ("o4-mini", "o4-mini-2025-04-16", "openai", None, 1.1, 4.4, 2),
    ("text-embedding-3-small", "text-embedding-3-small", "openai", None, 0.02, 0.0, 5),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", "anthropic", None, 0.8, 4.0, 8),
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "anthropic", None, 3.0, 15.0, 7),
    ("claude-opus-4-1", "claude-opus-4-1-20250805", "anthropic", None, 15.0, 75.0, 1),
    ("gemini-2.5-flash", "gemini-2.5-flash", "gcp.gemini", None, 0.3, 2.5, 5),
    ("gemini-2.5-pro", "gemini-2.5-pro", "gcp.gemini", None, 1.25, 10.0, 2),
    ("openai/gpt-4o-mini", "openai/gpt-4o-mini", "openai", "OpenAI", 0.15, 0.6, 3),
    ("anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5", "openai", "Anthropic", 3.0, 15.0, 2),
    ("anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5", "openai", "Amazon Bedrock", 3.0, 15.0, 1),
    ("google/gemini-2.5-flash", "google/gemini-2.5-flash", "openai", "Google AI Studio", 0.3, 2.5, 1),
    ("meta-llama/llama-3.3-70b-instruct", "meta-llama/llama-3.3-70b-instruct", "openai", "DeepInfra", 0.13, 0.4, 1),
    ("meta-llama/llama-3.3-70b-instruct", "meta-llama/llama-3.3-70b-instruct", "openai", "Together", 0.88, 0.88, 0.5),
    ("deepseek/deepseek-chat-v3", "deepseek/deepseek-chat-v3", "openai", "DeepSeek", 0.27, 1.1, 1),
    ("mistralai/mistral-small-3.2", "mistralai/mistral-small-3.2", "openai", "Mistral", 0.1, 0.3, 0.5),
    ("qwen/qwen3-235b-a22b", "qwen/qwen3-235b-a22b", "openai", "Fireworks", 0.22, 0.88, 0.5),
    ("mistral-large-latest", "mistral-large-2411", "mistral_ai", None, 2.0, 6.0, 0.5),
    ("command-r-plus", "command-r-plus-08-2024", "cohere", None, 2.5, 10.0, 0.3),
    ("llama3.2", "llama3.2", "ollama", None, 0.0, 0.0, 0.5),
    ("llama-3.1-8b-instant", "llama-3.1-8b-instant", "groq", None, 0.05, 0.08, 0.7),
    ("my-finetune-v3", "my-finetune-v3", "openai", None, -1.0, -1.0, 0.2),  # unpriced: cost unknown
)
REASONING = ("o3-mini", "o4-mini", "gemini-2.5-pro")
SERVICES = {
    "checkout-api": ("POST /v1/checkout/summary", "POST /v1/cart/recommend", "GET /v1/orders/{id}/explain"),
    "support-bot": ("POST /chat", "POST /chat/stream", "POST /tickets/{id}/draft", "POST /tickets/triage",
                    "POST /feedback"),
    "search": ("GET /search", "POST /search/rerank", "POST /embed", "GET /suggest", "POST /answers"),
    "batch-jobs": ("nightly-digest", "classify-backlog", "translate-catalog", "summarize-calls",
                   "extract-invoices", "eval-run", "backfill-embeddings"),
}
TEAMS = ("search", "ads", "support", "growth", "platform", "payments", "risk", "data")
FEATURES = tuple(f"feature-{n:02d}" for n in range(30))
ERRORS = (("RateLimitError", 429), ("APITimeoutError", None), ("InternalServerError", 500),
          ("APIConnectionError", None), ("BadRequestError", 400), ("ServiceUnavailableError", 503))
SIGNALS = ("prompt_injection", "prompt_length", "burst", "model_switching", "cost_spike")
USERS = 5_000
PROMPTS = 50_000


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _times(rng: random.Random, rows: int, end_ns: int) -> list[int]:
    """``rows`` start times over the DAYS before ``end_ns``, busier by day than by night, ascending."""
    span_s = DAYS * 86_400
    times = []
    while len(times) < rows:
        t = rng.random() * span_s
        if rng.random() < 0.55 + 0.45 * math.sin(2 * math.pi * t / 86_400):  # a daily rhythm
            times.append(end_ns - int((span_s - t) * 1e9))
    times.sort()
    return times


def _evidence(rng: random.Random, kind: str, cost: float | None) -> dict[str, Any]:
    if kind == "prompt_injection":
        return {"phrase": rng.choice(("ignore_instructions", "reveal_system_prompt", "developer_mode")),
                "excerpt": "... ignore all previous instructions and ..."}
    if kind == "prompt_length":
        return {"chars": rng.randint(60_000, 400_000), "median_chars": rng.randint(800, 4_000)}
    if kind == "burst":
        return {"requests": rng.randint(60, 400), "window_s": 60}
    if kind == "model_switching":
        return {"models": rng.sample([m[0] for m in MODELS], 4), "window_s": 300}
    return {"cost_usd": cost or 1.0, "baseline_usd": 0.002, "ratio": round((cost or 1.0) / 0.002, 1)}


def rows(count: int, end_ns: int, seed: int = SEED) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """``count`` generation rows (GENERATION_COLUMNS order), oldest first, each with its security rows."""
    rng = random.Random(seed)
    times = _times(rng, count, end_ns)
    model_weights = list(itertools.accumulate(m[6] for m in MODELS))
    users = [f"user-{n:05d}" for n in range(USERS)]
    user_weights = list(itertools.accumulate(1 / (n + 1) ** 0.8 for n in range(USERS)))  # cumulative: O(log n)
    routes = [(service, route) for service, names in SERVICES.items() for route in names]
    sessions: dict[str, list[Any]] = {}  # user -> [session id, calls left]
    index = 0
    while index < count:
        calls = rng.choices((1, 2, 3, 4), (70, 18, 8, 4))[0]
        trace_id, server_span = _hex(rng, 128), _hex(rng, 64)
        service, route = rng.choice(routes)
        user = None if rng.random() < 0.15 else rng.choices(users, cum_weights=user_weights)[0]
        session = None
        if user is not None and service != "batch-jobs" and rng.random() < 0.8:
            current = sessions.get(user)
            if current is None or current[1] <= 0:
                current = sessions[user] = [_hex(rng, 96), int(rng.paretovariate(1.2) * 3)]
            current[1] -= calls
            session = current[0]
        metadata = None
        if rng.random() < 0.6:
            metadata = json.dumps({"env": rng.choices(("prod", "staging"), (9, 1))[0], "feature": rng.choice(FEATURES),
                                   "team": rng.choice(TEAMS)}, sort_keys=True)
        model = rng.choices(MODELS, cum_weights=model_weights)[0]
        for _ in range(calls):
            if index >= count:
                break
            yield _generation(rng, times[index], trace_id, server_span, service, route, user, session, metadata, model)
            index += 1


def _generation(rng: random.Random, start: int, trace_id: str, parent: str, service: str, route: str,
                user: str | None, session: str | None, metadata: str | None,
                model: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    asked, answered, api, served_by, price_in, price_out, _ = model
    embedding = asked.startswith("text-embedding")
    failed = rng.random() < 0.03
    error_type, http_status = rng.choice(ERRORS) if failed else (None, 200)
    stream = not embedding and rng.random() < 0.4
    input_tokens = int(rng.lognormvariate(6.7, 1.1)) + 5
    output_tokens = 0 if embedding else int(rng.lognormvariate(5.3, 0.9)) + 1
    reasoning = int(output_tokens * rng.uniform(0.3, 0.8)) if asked in REASONING else None
    cached = int(input_tokens * rng.uniform(0.2, 0.9)) if rng.random() < 0.25 else 0
    duration = rng.lognormvariate(math.log(0.08 if embedding else 1.4), 0.7) + output_tokens / 400
    if failed:
        input_tokens = output_tokens = cached = reasoning = None  # type: ignore[assignment]
        duration = rng.choice((rng.uniform(0.05, 0.4), 60.0 + rng.random()))  # refused fast, or timed out
    cost = None
    if not failed and price_in >= 0:
        cost = round(((input_tokens - cached) * price_in + cached * price_in / 10
                      + output_tokens * price_out) / 1e6, 9)
    span_id = _hex(rng, 64)
    captured = rng.random() < 0.02
    prompt = rng.randrange(PROMPTS)
    values = {
        "time_unix_nano": start, "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent,
        "service": service, "route": route, "operation": "embeddings" if embedding else "chat",
        "user_id": user, "session_id": session, "request_model": asked,
        "response_model": None if failed else answered, "provider": api, "upstream_provider": served_by,
        "input_tokens": input_tokens, "output_tokens": output_tokens, "cached_tokens": cached or None,
        "cache_creation_tokens": None, "reasoning_tokens": reasoning,
        "total_tokens": None if failed else input_tokens + output_tokens,
        "cost_usd": cost, "cost_source": None if cost is None else ("provider" if served_by else "price_table"),
        "duration_s": duration, "ttfc_s": min(duration, rng.lognormvariate(math.log(0.35), 0.6)) if stream else None,
        "stream": int(stream), "status": "error" if failed else "ok", "error_type": error_type,
        "http_status": http_status, "finish_reason": None if failed or embedding else rng.choices(
            ("stop", "tool_calls", "length"), (85, 12, 3))[0],
        "response_id": None if failed else f"chatcmpl-{_hex(rng, 96)}",
        "prompt_sha256": hashlib.sha256(str(prompt).encode()).hexdigest(), "metadata": metadata,
        "system_instructions": json.dumps([{"type": "text", "content": "You are a helpful assistant."}])
        if captured else None,
        "input_messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"question {prompt}"}]}])
        if captured else None,
        "output_messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "an answer"}],
                                        "finish_reason": "stop"}]) if captured and not failed else None,
        "tool_definitions": None,
        "error_message": f"{error_type}: upstream said no" if captured and failed else None,
    }
    signals = []
    if rng.random() < 0.005:
        for kind in rng.sample(SIGNALS, rng.choice((1, 1, 1, 2))):
            evidence = json.dumps(_evidence(rng, kind, cost), sort_keys=True)
            signals.append((start + int(duration * 1e9), trace_id, span_id, kind, user, route, asked, evidence))
    return tuple(values[c] for c in GENERATION_COLUMNS), signals


# -- writing ----------------------------------------------------------------------------------------

BATCH = 20_000


def _batches(count: int, end_ns: int) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    generations: list[tuple[Any, ...]] = []
    signals: list[tuple[Any, ...]] = []
    for row, found in rows(count, end_ns):
        generations.append(row)
        signals.extend(found)
        if len(generations) >= BATCH:
            yield generations, signals
            generations, signals = [], []
    if generations:
        yield generations, signals


def fill_sqlite(path: str, count: int, end_ns: int) -> None:
    """Create the store at ``path`` through the store's migrations and append ``count`` generations."""
    from or_middleware.store.sqlite import open_store
    from or_middleware.store.sqlite_writer import INSERT_GENERATION, INSERT_SECURITY

    connection = open_store(path)
    try:
        for generations, signals in _batches(count, end_ns):
            connection.execute("BEGIN")
            connection.executemany(INSERT_GENERATION, generations)
            connection.executemany(INSERT_SECURITY, signals)
            connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("ANALYZE")  # what `PRAGMA optimize` does over time on a long-lived store
    finally:
        connection.close()


def fill_postgres(url: str, count: int, end_ns: int) -> None:
    """Create the store in the database ``url`` through the store's migrations and COPY ``count`` generations."""
    import psycopg

    from or_middleware.store.postgres import migrate

    with psycopg.connect(url) as connection:
        migrate(connection, url)
        for generations, signals in _batches(count, end_ns):
            with connection.transaction(), connection.cursor() as cursor:
                with cursor.copy(f"COPY generations ({', '.join(GENERATION_COLUMNS)}) FROM STDIN") as copy:
                    for row in generations:
                        copy.write_row(row)
                with cursor.copy(f"COPY security_events ({', '.join(SECURITY_COLUMNS)}) FROM STDIN") as copy:
                    for row in signals:
                        copy.write_row(row)
        connection.autocommit = True
        # autovacuum does this on its own after enough inserts (PostgreSQL 13+ counts inserts too);
        # done here so the figures do not depend on when it last ran
        connection.execute("VACUUM ANALYZE generations")
        connection.execute("VACUUM ANALYZE security_events")
