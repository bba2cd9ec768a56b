"""Side by side in one real Arize Phoenix: the same three calls (a tool call, a stream, a 429),
traced once by us (the ``phoenix`` preset's defaults) and once by OpenInference's own
openinference-instrumentation-openai, each into its own project. Read back through Phoenix's
REST and GraphQL APIs, ours show at least what theirs show where users look first:

- the traces table: one row per request, its root span with the user's input and the answer
  (ours: the request's CHAIN span with its LLM calls nested under it);
- a trace's detail: the LLM span with OpenInference's attributes (theirs are a subset of ours),
  OK where it succeeded, invocation parameters with model and tool_choice, a first-token event on
  the stream, and not many more attributes than theirs;
- the error trace: ERROR, with an ``exception`` event carrying the upstream's message;
- the sessions view: one session, its user, three traces, one with an error, first input and
  last output filled;
- privacy mode: a clear placeholder in Input / Output, not a made-up object.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from openinference.instrumentation import using_attributes
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import PhoenixDestination
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.openinference import FIRST_TOKEN_EVENT, PRIVACY_PLACEHOLDER
from tests.apps import chat_body, fastapi_app
from tests.test_phoenix import phoenix, project_spans  # noqa: F401  (phoenix: the module's real Phoenix)

pytestmark = pytest.mark.phoenix

OURS, THEIRS, OURS_PRIVATE = "compare-ours", "compare-openinference", "compare-ours-private"
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
ERROR_MODEL = "fake/error_429"  # the fake upstream answers 429 with "Fake upstream error 429"


def tool_call(text: str) -> dict:
    return chat_body(text, tools=TOOLS, tool_choice="auto", temperature=0.2)


def run_openinference(phoenix_url: str, base_url: str) -> None:
    provider = TracerProvider(resource=Resource.create({"openinference.project.name": THEIRS}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{phoenix_url}/v1/traces")))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=base_url, api_key="sk-or-v1-test", max_retries=0)
        with using_attributes(session_id="sess-oi", user_id="alice"):
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(**{**chat_body("this fails"), "model": ERROR_MODEL})
            client.chat.completions.create(**tool_call("find the order"))
            for _ in client.chat.completions.create(**chat_body("stream it"), stream=True):
                pass
    finally:
        OpenAIInstrumentor().uninstrument()
        provider.shutdown()


def run_ours(phoenix_url: str, base_url: str, tmp_path) -> None:
    common = {"endpoint": f"{phoenix_url}/v1/traces", "schedule_delay_ms": 20, "spool_dir": str(tmp_path)}
    settings = Settings(
        service_name="shop",
        destinations=[  # the preset's defaults (SPANS=traces, dialect openinference); one privacy off
            PhoenixDestination(project=OURS, privacy_mode=False, filter=only_user("alice"), **common),
            PhoenixDestination(name="phoenix_private", project=OURS_PRIVATE, filter=only_user("bob"), **common),
        ],
        llm_hosts=f"openrouter={base_url}",
    )
    app = fastapi_app(base_url)
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    alice = {"x-user-id": "alice", "x-session-id": "sess-ours"}
    with serve_asgi(app) as url:
        assert httpx.post(f"{url}/ask", json={**chat_body("this fails"), "model": ERROR_MODEL},
                          headers=alice, timeout=30).status_code == 429
        httpx.post(f"{url}/ask", json=tool_call("find the order"), headers=alice, timeout=30).raise_for_status()
        with httpx.stream("POST", f"{url}/relay", json=chat_body("stream it", stream=True), headers=alice,
                          timeout=30) as answer:
            answer.read()
        httpx.post(f"{url}/ask", json=chat_body("private question"), headers={"x-user-id": "bob"},
                   timeout=30).raise_for_status()
        httpx.get(f"{url}/not-llm", timeout=30)  # no LLM call: not a row in Phoenix (SPANS=traces)
        assert or_middleware.force_flush()


def only_user(user: str) -> str:  # Phoenix keeps a span id once: each project gets its own requests
    return json.dumps({"rules": [{"field": "user", "op": "equals", "value": user}]})


def graphql(phoenix_url: str, query: str) -> dict:
    answer = httpx.post(f"{phoenix_url}/graphql", json={"query": query}, timeout=30)
    answer.raise_for_status()
    assert "errors" not in answer.json(), answer.json()
    return answer.json()["data"]


def sessions(phoenix_url: str, project: str) -> list[dict]:
    data = graphql(phoenix_url, """{ projects { edges { node { name sessions(first: 10) { edges { node {
        sessionId userId numTraces numTracesWithError firstInput { value } lastOutput { value } } } } } } } }""")
    [node] = [e["node"] for e in data["projects"]["edges"] if e["node"]["name"] == project]
    return [e["node"] for e in node["sessions"]["edges"]]


def by_trace(spans: list[dict]) -> dict[str, list[dict]]:
    traces: dict[str, list[dict]] = {}
    for span in spans:
        traces.setdefault(span["context"]["trace_id"], []).append(span)
    return traces


def llm_span(spans: list[dict], predicate) -> dict:
    [span] = [s for s in spans if s["span_kind"] == "LLM" and predicate(s)]
    return span


def wait_for(phoenix_url: str, project: str, count: int) -> list[dict]:
    spans = project_spans(phoenix_url, project)
    for _ in range(120):
        if len(spans) >= count:
            return spans
        time.sleep(0.5)
        spans = project_spans(phoenix_url, project)
    raise AssertionError(f"{project}: {len(spans)} spans, wanted {count}")


@pytest.fixture(scope="module")
def compared(phoenix, tmp_path_factory):  # noqa: F811
    """Both sides' calls, once, into the module's Phoenix: (phoenix url, our spans, their spans)."""
    with serve_asgi(create_fake_upstream()) as fake:
        base_url = f"{fake}/api/v1"
        run_openinference(phoenix, base_url)
        run_ours(phoenix, base_url, tmp_path_factory.mktemp("spool"))
    return phoenix, wait_for(phoenix, OURS, 6), wait_for(phoenix, THEIRS, 3)


def test_ours_show_at_least_what_openinference_shows_in_the_same_phoenix(compared):
    phoenix_url, ours, theirs = compared  # three requests each; ours: a root span over each LLM call

    # the traces table: one row per request, and the row says what was asked and answered
    for spans in (ours, theirs):
        traces = by_trace(spans)
        assert len(traces) == 3
        roots = [s for s in spans if s["parent_id"] is None]
        assert len(roots) == 3
        for root in roots:
            a = root["attributes"]
            assert a["user.id"] == "alice" and a["session.id"] in ("sess-ours", "sess-oi")
            assert a["input.value"]
            if root["status_code"] != "ERROR":
                assert a["output.value"] and root["status_code"] == "OK"
    our_roots = [s for s in ours if s["parent_id"] is None]
    assert {r["span_kind"] for r in our_roots} == {"CHAIN"}  # nested: the request over its LLM call
    assert {r["attributes"]["input.value"] for r in our_roots} == {"this fails", "find the order", "stream it"}
    assert "Echo: stream it" in {r["attributes"].get("output.value") for r in our_roots}
    for span in ours:
        if span["span_kind"] == "LLM":
            assert span["parent_id"] in {r["context"]["span_id"] for r in our_roots}

    # a trace's detail: the tool call's LLM span
    def is_tool_call(span: dict) -> bool:
        return "llm.tools.0.tool.json_schema" in span["attributes"]

    mine, reference = llm_span(ours, is_tool_call)["attributes"], llm_span(theirs, is_tool_call)["attributes"]
    missing = set(reference) - set(mine) - {"llm.token_count.prompt_details.audio"}  # no audio tokens here
    assert not missing, missing
    # what we send beyond theirs: llm.provider and llm.cost.* (and metadata, which Phoenix's REST API flattens)
    extra = {key for key in set(mine) - set(reference) if not key.startswith("metadata.")}
    assert extra <= {"llm.provider", "llm.cost.total", "llm.cost.prompt", "llm.cost.completion"}, extra
    assert llm_span(ours, is_tool_call)["status_code"] == llm_span(theirs, is_tool_call)["status_code"] == "OK"
    for attributes in (mine, reference):
        parameters = json.loads(attributes["llm.invocation_parameters"])
        assert parameters["model"] == "openai/gpt-4o-mini" and parameters["tool_choice"] == "auto"
        assert attributes["llm.token_count.total"] > 0
        assert attributes["llm.output_messages.0.message.tool_calls.0.tool_call.function.name"] == "lookup"
    assert mine["metadata.cost_usd"] > 0 and mine["metadata.cost_source"] == "provider"  # where Phoenix shows it

    # the stream: a first-token event, like theirs
    def is_stream(span: dict) -> bool:
        return "stream" in span["attributes"].get("llm.invocation_parameters", "")

    for spans in (ours, theirs):
        assert FIRST_TOKEN_EVENT in {e["name"] for e in llm_span(spans, is_stream)["events"]}

    # the error trace: ERROR with the upstream's message in an exception event, root included
    for spans in (ours, theirs):
        failed = llm_span(spans, lambda s: s["status_code"] == "ERROR")
        [event] = [e for e in failed["events"] if e["name"] == "exception"]
        assert "Fake upstream error 429" in event["attributes"]["exception.message"]
        assert "Fake upstream error 429" in failed["status_message"]
    [failed_root] = [r for r in our_roots if r["status_code"] == "ERROR"]
    assert failed_root["attributes"]["input.value"] == "this fails"

    # the sessions view
    for project, session_id in ((OURS, "sess-ours"), (THEIRS, "sess-oi")):
        [session] = sessions(phoenix_url, project)
        assert session["sessionId"] == session_id and session["userId"] == "alice"
        assert session["numTraces"] == 3 and session["numTracesWithError"] == 1
        assert session["firstInput"]["value"] and session["lastOutput"]["value"]
    [our_session] = sessions(phoenix_url, OURS)
    assert our_session["firstInput"]["value"] == "this fails"
    assert our_session["lastOutput"]["value"] == "Echo: stream it"

    # privacy mode: a clear placeholder, no made-up object, no content
    private = wait_for(phoenix_url, OURS_PRIVATE, 2)
    for span in private:
        a = span["attributes"]
        assert a["input.value"] == PRIVACY_PLACEHOLDER and a["output.value"] == PRIVACY_PLACEHOLDER
        assert "private question" not in json.dumps(span) and "gen-" not in a["output.value"]


def project_ids(phoenix_url: str) -> dict[str, str]:
    data = graphql(phoenix_url, "{ projects { edges { node { id name } } } }")
    return {e["node"]["name"]: e["node"]["id"] for e in data["projects"]["edges"]}


def test_phoenix_ui_shows_our_traces_sessions_and_errors_like_openinference(compared, tmp_path):
    """Headless Chromium (Debian's) on Phoenix's own pages: what a user sees first."""
    sync_api = pytest.importorskip("playwright.sync_api")
    phoenix_url, ours, theirs = compared
    ids = project_ids(phoenix_url)
    traces = {name: by_trace(spans) for name, spans in ((OURS, ours), (THEIRS, theirs))}

    def trace_of(project: str, predicate) -> str:
        return next(t for t, spans in traces[project].items() if any(predicate(s) for s in spans))

    def failed(span: dict) -> bool:
        return span["status_code"] == "ERROR" and span["span_kind"] == "LLM"

    def shown(page, text: str) -> None:  # Phoenix renders slowly on a loaded machine
        page.get_by_text(text, exact=False).first.wait_for(timeout=120_000)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        try:
            for project in (OURS, THEIRS):
                # the traces table: each request's row shows what was asked
                page.goto(f"{phoenix_url}/projects/{ids[project]}")
                shown(page, "find the order")
                page.screenshot(path=str(tmp_path / f"{project}-traces.png"))
                # an error trace, its failed LLM call selected: the upstream's message is shown
                span = next(s for s in (ours if project == OURS else theirs) if failed(s))
                page.goto(f"{phoenix_url}/projects/{ids[project]}/traces/{span['context']['trace_id']}"
                          f"?selectedSpanNodeId={span['id']}")
                shown(page, "Fake upstream error 429")
                page.screenshot(path=str(tmp_path / f"{project}-error.png"))
            # our trace detail: the request's span with the LLM call nested, and the tool call
            tool_trace = trace_of(OURS, lambda s: "llm.tools.0.tool.json_schema" in s["attributes"])
            page.goto(f"{phoenix_url}/projects/{ids[OURS]}/traces/{tool_trace}")
            shown(page, "POST /ask")
            shown(page, "chat openai/gpt-4o-mini")
            page.screenshot(path=str(tmp_path / "ours-trace.png"))
            # the sessions view: our session, with its first input and last output
            page.goto(f"{phoenix_url}/projects/{ids[OURS]}/sessions")
            shown(page, "sess-ours")
            shown(page, "Echo: stream it")
            page.screenshot(path=str(tmp_path / "ours-sessions.png"))
        finally:
            browser.close()
