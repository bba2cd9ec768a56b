"""Per-destination selection: deterministic sampling that keeps sessions and traces whole,
Broadcast-style FILTER rules, and their validation at start-up."""

from __future__ import annotations

from collections import defaultdict

import httpx
import pytest

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import ConfigError, OtlpDestination
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.filters import FilterRules, parse_filter_rules
from or_middleware.export.selection import sampled, sampling_key
from tests.apps import chat_body, fastapi_app
from tests.support.otlp_receiver import OTLPReceiver


def is_genai(span) -> bool:
    return span.scope == "or_middleware"


def serve(upstream, destinations):
    app = fastapi_app(upstream.openrouter)
    settings = Settings(destinations=destinations, llm_hosts=f"openrouter={upstream.openrouter}")
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    return serve_asgi(app)


def dest(receiver: OTLPReceiver, name: str, tmp_path, **options) -> OtlpDestination:
    return OtlpDestination(name=name, endpoint=receiver.traces_url, schedule_delay_ms=20, spool_dir=str(tmp_path),
                           metrics=False, **options)


def test_sampling_keeps_or_drops_whole_sessions_and_traces(upstream, tmp_path):
    sessions = [f"sess-{i}" for i in range(16)]
    with OTLPReceiver() as half, OTLPReceiver() as quarter, OTLPReceiver() as everything:
        destinations = [dest(half, "otlp_half", tmp_path, sample_rate=0.5, spans="all"),
                        dest(quarter, "otlp_quarter", tmp_path, sample_rate=0.25, spans="all"),
                        dest(everything, "otlp", tmp_path, spans="all")]
        with serve(upstream, destinations) as url, httpx.Client(base_url=url, timeout=30) as client:
            for round_ in range(2):
                for session in sessions:
                    client.post("/ask", json=chat_body(f"{session} {round_}"),
                                headers={"x-session-id": session}).raise_for_status()
            for i in range(6):  # no session: sampled per trace
                client.post("/ask", json=chat_body(f"anonymous {i}")).raise_for_status()
            assert or_middleware.force_flush()
        total = everything.wait_for_spans(count=2 * (2 * len(sessions) + 6))
        time_for_stragglers = half.wait_for_spans(count=1), quarter.wait_for_spans(count=1)
        assert time_for_stragglers

    server_of = {s.span_id: s for s in total if s.kind == "SERVER"}

    def kept_sessions(receiver: OTLPReceiver) -> set[str]:
        by_session: dict[str, list] = defaultdict(list)
        span_ids = {s.span_id for s in receiver.spans}
        for span in receiver.spans:
            if is_genai(span):
                assert span.parent_span_id in span_ids  # its server span came along: the trace is whole
                by_session[span.attributes.get("session.id", "-")].append(span)
        for session, spans in by_session.items():
            if session != "-":
                assert len(spans) == 2, session  # both rounds of a session, never one of them
        servers = [s for s in receiver.spans if s.kind == "SERVER"]
        assert len(servers) == sum(len(v) for v in by_session.values())  # no orphan server spans
        return set(by_session) - {"-"}

    half_kept, quarter_kept = kept_sessions(half), kept_sessions(quarter)
    assert 2 <= len(half_kept) <= 14 and quarter_kept < half_kept  # a lower rate keeps a subset
    assert half_kept == {s for s in sessions if sampled(sampling_key(s, 0), 0.5)}  # same decision everywhere
    stats = or_middleware.stats()
    assert stats["otlp_half"]["sampled_out"] + stats["otlp_half"]["exported"] == len(total)
    assert stats["otlp"]["sampled_out"] == 0
    assert len(server_of) == 2 * len(sessions) + 6


def test_filter_rules_choose_the_generations_a_destination_gets(upstream, tmp_path):
    alice_and_paid = '{"logic": "and", "rules": [{"field": "user", "op": "equals", "value": "alice"},' \
                     ' {"field": "total_cost", "op": "gt", "value": 0}]}'
    claude_or_errors = {"logic": "or", "rules": [{"field": "model", "op": "starts_with", "value": "anthropic/"},
                                                 {"field": "status", "op": "equals", "value": "error"}]}
    anonymous_big = {"rules": [{"field": "user_id", "op": "not_exists"},
                               {"field": "prompt_tokens", "op": "gte", "value": 4},
                               {"field": "finish_reason", "op": "regex", "value": "^st"}]}
    calls = [("alice", "openai/gpt-4o-mini", "hi"), ("bob", "openai/gpt-4o-mini", "hi"),
             ("bob", "anthropic/claude-sonnet-4", "hi"), ("alice", "fake/error_429", "hi"),
             (None, "openai/gpt-4o", "one two three four five"), (None, "openai/gpt-4o", "short")]
    with OTLPReceiver() as first, OTLPReceiver() as second, OTLPReceiver() as third:
        destinations = [dest(first, "otlp_alice", tmp_path, filter=alice_and_paid, spans="genai"),
                        dest(second, "otlp_claude", tmp_path, filter=claude_or_errors, spans="all"),
                        dest(third, "otlp_anon", tmp_path, filter=anonymous_big, spans="genai")]
        with serve(upstream, destinations) as url, httpx.Client(base_url=url, timeout=30) as client:
            for user, model, text in calls:
                headers = {"x-user-id": user} if user else {}
                client.post("/ask", json=chat_body(text, model=model), headers=headers)
            assert or_middleware.force_flush()
        got_first = [(s.attributes.get("user.id"), s.attributes["gen_ai.request.model"]) for s in first.spans]
        got_second = [(s.attributes.get("user.id"), s.attributes["gen_ai.request.model"])
                      for s in second.spans if is_genai(s)]
        got_third = [s.attributes["gen_ai.request.model"] for s in third.spans]
        second_servers = [s for s in second.spans if s.kind == "SERVER"]
    assert got_first == [("alice", "openai/gpt-4o-mini")]  # not the failed call: it cost nothing
    assert sorted(got_second) == [("alice", "fake/error_429"), ("bob", "anthropic/claude-sonnet-4")]
    assert len(second_servers) == 2  # the server spans of the kept generations only
    assert got_third == ["openai/gpt-4o"]
    assert or_middleware.stats()["otlp_alice"]["filtered"] == 5


@pytest.mark.parametrize(("value", "message"), [
    ("{not json", "OR_MIDDLEWARE_OTLP__FILTER='{not json': Value error, not JSON"),
    ('{"rules": [{"field": "model", "op": "bigger", "value": 1}]}', "rule 1 op: Input should be 'equals'"),
    ('{"rules": [{"field": "colour", "op": "equals", "value": "red"}]}', "rule 1 field: Input should be 'model'"),
    ('{"rules": [{"field": "user", "op": "exists"}, {"field": "model", "op": "gt", "value": 3}]}',
     "rule 2: op 'gt' needs a numeric field"),
    ('{"rules": [{"field": "total_cost", "op": "lt", "value": "cheap"}]}', "op 'lt' needs a number value"),
    ('{"rules": [{"field": "model", "op": "regex", "value": "(unclosed"}]}', "is not a valid regex"),
    ('{"rules": [{"field": "model", "op": "equals"}]}', "op 'equals' needs a value"),
    ('{"logic": "xor", "rules": []}', "logic: Input should be 'and' or 'or'"),
    ('{"rules": [], "extra": 1}', "extra: Extra inputs are not permitted"),
])
def test_bad_filter_rules_stop_the_app_at_start_up_naming_the_variable_and_rule(monkeypatch, value, message):
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "otlp")
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP__FILTER", value)
    with pytest.raises(ConfigError) as raised:
        Settings()
    assert "OR_MIDDLEWARE_OTLP__FILTER" in str(raised.value)
    assert message in str(raised.value)


def rules(*items: dict, logic: str = "and") -> FilterRules:
    parsed = parse_filter_rules({"logic": logic, "rules": list(items)})
    assert parsed is not None
    return parsed


SPAN = {"gen_ai.request.model": "openai/gpt-4o", "gen_ai.response.model": "openai/gpt-4o-2024-08-06",
        "gen_ai.provider.name": "openrouter", "trace.metadata.openrouter.provider_name": "Azure",
        "user.id": "alice", "gen_ai.response.finish_reasons": ("stop", "length"), "gen_ai.usage.cost": 0.002,
        "gen_ai.usage.total_tokens": 30, "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 20}


@pytest.mark.parametrize(("rule", "expected"), [
    ({"field": "model", "op": "equals", "value": "openai/gpt-4o"}, True),
    ({"field": "model", "op": "not_equals", "value": "openai/gpt-4o"}, False),
    ({"field": "model", "op": "contains", "value": "gpt"}, True),
    ({"field": "model", "op": "not_contains", "value": "claude"}, True),
    ({"field": "model", "op": "ends_with", "value": "-4o"}, True),
    ({"field": "provider", "op": "equals", "value": "openrouter"}, True),
    ({"field": "served_by", "op": "equals", "value": "Azure"}, True),
    ({"field": "finish_reason", "op": "equals", "value": "length"}, True),
    ({"field": "finish_reason", "op": "not_equals", "value": "length"}, False),
    ({"field": "total_cost", "op": "lte", "value": 0.002}, True),
    ({"field": "total_cost", "op": "lt", "value": 0.002}, False),
    ({"field": "total_tokens", "op": "equals", "value": 30}, True),
    ({"field": "completion_tokens", "op": "gt", "value": 19}, True),
    ({"field": "session", "op": "exists"}, False),
    ({"field": "session", "op": "not_equals", "value": "x"}, True),  # absent is not "x"
    ({"field": "session", "op": "equals", "value": "x"}, False),
    ({"field": "status", "op": "equals", "value": "ok"}, True),
    ({"field": "user", "op": "regex", "value": "^al"}, True),
])
def test_each_filter_operator(rule, expected):
    assert rules(rule).matches(SPAN, is_error=False) is expected


def test_filter_logic_and_error_status():
    a = {"field": "user", "op": "equals", "value": "alice"}
    b = {"field": "status", "op": "equals", "value": "error"}
    assert rules(a, b).matches(SPAN, is_error=False) is False
    assert rules(a, b, logic="or").matches(SPAN, is_error=False) is True
    assert rules(a, b).matches(SPAN, is_error=True) is True
    assert rules(b).matches({**SPAN, "error.type": "429"}, is_error=False) is True
    assert rules().matches(SPAN, is_error=False) is True
