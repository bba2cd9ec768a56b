"""Fuzzing the OpenRouter body rewrite (LLMCall.start): the new body is strict JSON, every key the
app set comes back unchanged, and a body we cannot rewrite safely is sent as it was.

Runs LLMCall.start itself (not only link_openrouter_body) so the JSON decoding and encoding
around the merge are fuzzed too; the request is never sent.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

from or_middleware import LLMTracingMiddleware, Settings, context
from or_middleware.capture.call import LLMCall, match_request
from or_middleware.capture.linkage import MAX_SESSION_CHARS, MAX_USER_CHARS, link_openrouter_body
from or_middleware.runtime import default_runtime
from tests.reliability.fuzz_inputs import json_objects, json_values

HOST = "openrouter.test"
LINK_KEYS = {"trace_id", "parent_span_id", "trace_name", "generation_name"}


def strict_loads(data: bytes) -> Any:
    """RFC 8259 JSON: no NaN / Infinity, which Python writes but OpenRouter's parser rejects."""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(data, parse_constant=refuse)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True, ensure_ascii=True)


def start_call(body: bytes, *, link: bool = True) -> tuple[LLMCall, bytes | None]:
    target = match_request("POST", "https", HOST, None, "/api/v1/chat/completions")
    assert target is not None
    call = LLMCall(target, HOST, None)
    try:
        return call, call.start(body, None)
    finally:
        call.end("completed")  # a started span must end; nothing is exported (console-free runtime)


def _runtime() -> None:
    """One runtime per test (Hypothesis runs the body many times; the suite's autouse fixture
    shuts every runtime down after each test). No destinations: nothing is exported."""
    if match_request("POST", "https", HOST, None, "/api/v1/chat/completions") is None:
        LLMTracingMiddleware(Starlette(), settings=Settings(destinations=[], llm_hosts=f"openrouter=https://{HOST}/api/v1"))


app_bodies = st.one_of(
    json_objects(),
    # the shapes linkage cares about: trace objects with and without our keys, user/session set or not
    st.fixed_dictionaries(
        {"model": st.text(max_size=8), "messages": json_values(10)},
        optional={
            "trace": st.one_of(
                json_values(10), st.dictionaries(st.sampled_from([*sorted(LINK_KEYS), "x"]), json_values(4), max_size=4)
            ),
            "user": json_values(3),
            "session_id": json_values(3),
        },
    ),
)


@given(body=app_bodies, identity=st.tuples(st.none() | st.text(max_size=300), st.none() | st.text(max_size=300)))
def test_fuzz_linkage_keeps_every_app_key_and_writes_strict_json(body, identity):
    _runtime()
    runtime = default_runtime()
    assert runtime is not None and context.current_identity() is None
    token = context.enter(context.RequestIdentity(runtime, identity[0], identity[1], "POST /fuzz"))
    try:
        raw = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
        call, new_body = start_call(raw)
    finally:
        context.leave(token)
    if new_body is None:
        return  # sent as the app wrote it: always safe
    assert call.linkage == "linked"
    sent = strict_loads(new_body) if _is_strict(raw) else json.loads(new_body)
    assert isinstance(sent, dict)
    for key, value in body.items():  # the app's own keys, unchanged
        if key == "trace" and value is None:
            continue  # `"trace": null` (SDKs write unset optional fields so) counts as absent
        if key == "trace" and isinstance(value, dict):
            for inner, inner_value in value.items():
                assert canonical(sent["trace"][inner]) == canonical(inner_value)
        else:
            assert canonical(sent[key]) == canonical(value), key
    added = set(sent) - set(body)
    assert added <= {"trace", "user", "session_id"}
    if "user" in added:
        assert sent["user"] == identity[0][:MAX_USER_CHARS]
    if "session_id" in added:
        assert sent["session_id"] == identity[1][:MAX_SESSION_CHARS]
    trace = sent["trace"]
    assert set(trace) - set(body.get("trace") or {}) <= LINK_KEYS


def _wire(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def _is_strict(raw: bytes) -> bool:
    try:
        strict_loads(raw)
    except ValueError:
        return False
    return True


# Valid JSON that Python reads into values it would write back as non-JSON or differently.
AWKWARD_BODIES = [
    b'{"model":"m","temperature":1e400}',  # json.loads -> inf -> json.dumps -> Infinity
    b'{"model":"m","x":-1E999,"messages":[]}',
    b'{"model":"m","user":"\\ud83d"}',  # a lone surrogate escape: valid JSON text
    b'{"model":"m","n":1.00000000000000000001}',
    b'\xef\xbb\xbf{"model":"m"}',  # UTF-8 BOM
    b'{"model":"m","a":1,"a":2}',
    b'[' * 100_000 + b']' * 100_000,  # deeper than the recursion limit
]


@given(
    raw=st.one_of(st.binary(max_size=200), json_values().map(_wire), st.sampled_from(AWKWARD_BODIES)),
    identity=st.none() | st.text(max_size=3),
)
def test_fuzz_any_request_body_starts_a_call_without_raising(raw, identity):
    _runtime()
    runtime = default_runtime()
    assert runtime is not None
    token = context.enter(context.RequestIdentity(runtime, identity, identity, None))
    try:
        call, new_body = start_call(raw)
    finally:
        context.leave(token)
    assert call.span is not None
    if new_body is not None:
        sent = strict_loads(new_body) if _is_strict(raw) else json.loads(new_body)
        assert isinstance(sent, dict)
        assert canonical({k: v for k, v in sent.items() if k not in ("trace", "user", "session_id")}) == canonical(
            {k: v for k, v in json.loads(raw).items() if k not in ("trace", "user", "session_id")}
        )


@given(body=json_objects(), trace_id=st.text("0123456789abcdef", min_size=32, max_size=32))
def test_fuzz_link_openrouter_body_only_adds(body, trace_id):
    before = canonical(body)
    original = json.loads(before)
    outcome = link_openrouter_body(
        body, trace_id=trace_id, parent_span_id="0" * 16, generation_name="chat m",
        trace_name="POST /x", user="u", session="s",
    )
    assert outcome in ("linked", "kept", "skipped_trace_not_object")
    if outcome == "skipped_trace_not_object":
        assert canonical(body) == before
        return
    for key, value in original.items():
        if key == "trace":
            for inner, inner_value in value.items():
                assert canonical(body["trace"][inner]) == canonical(inner_value)
        else:
            assert canonical(body[key]) == canonical(value)
