"""The vendor presets of issue 14 (datadog, newrelic, sentry, opik, weave, elastic, honeycomb,
dynatrace, otel-collector, webhook) after a real request through a real app (uvicorn, httpx, the
fake upstream), each against a receiver that refuses what the vendor's intake refuses: another
path (404), a missing or different auth header (401), another encoding (415). The expectations
are the vendors' documented ones (cited beside each preset in or_middleware/export/vendors.py).

What a local receiver cannot prove: that the vendor's cloud accepts the key, the region or the
workspace of a real account (README, destinations table)."""

from __future__ import annotations

import json

import pytest

import or_middleware
from or_middleware import Settings
from or_middleware.config import ConfigError
from or_middleware.export.destinations import wire_target
from or_middleware.export.vendors import (
    DatadogDestination,
    DynatraceDestination,
    ElasticDestination,
    HoneycombDestination,
    NewRelicDestination,
    OpikDestination,
    OtelCollectorDestination,
    SentryDestination,
    WeaveDestination,
)
from or_middleware.export.webhook import WebhookDestination
from tests.support.vendor_receiver import VendorReceiver
from tests.test_destinations import IDENTITY, common, is_genai, run_app  # noqa: F401  (fixtures' helpers)

PROTOBUF = "application/x-protobuf"


@pytest.fixture
def vendor():
    opened: list[VendorReceiver] = []

    def open_one(path: str, headers: dict[str, str], content_type: str = PROTOBUF) -> VendorReceiver:
        rx = VendorReceiver(path, headers, content_type)
        opened.append(rx.__enter__())
        return rx

    yield open_one
    or_middleware.shutdown_all()
    for rx in opened:
        rx.close()


def test_every_vendor_preset_reaches_its_intake_with_its_auth_and_encoding(upstream, vendor, tmp_path):
    rx = {
        "datadog": vendor("/v1/traces", {"dd-api-key": "dd-canary", "compute_stats": "true"}),
        "newrelic": vendor("/v1/traces", {"api-key": "nr-canary"}),
        "sentry": vendor("/api/4505281256090153/integration/otlp/v1/traces",
                         {"x-sentry-auth": "sentry sentry_key=a785682ddda719b7"}),
        "opik": vendor("/opik/api/v1/private/otel/v1/traces",
                       {"authorization": "opik-canary", "comet-workspace": "acme", "projectname": "shop-llm"}),
        "weave": vendor("/otel/v1/traces", {"wandb-api-key": "wb-canary"}),
        "elastic": vendor("/v1/traces", {"authorization": "ApiKey el-canary"}),
        "honeycomb": vendor("/v1/traces", {"x-honeycomb-team": "hc-canary"}),
        "dynatrace": vendor("/api/v2/otlp/v1/traces", {"authorization": "Api-Token dt0c01.canary"}),
        "otel_collector": vendor("/v1/traces", {}),
        "webhook": vendor("/hooks/otel", {"authorization": "Bearer wh-canary", "x-team": "llm"},
                          "application/json"),
    }
    sentry_port = rx["sentry"].url.rsplit(":", 1)[1]
    run_app(upstream, [
        DatadogDestination(api_key="dd-canary", endpoint=rx["datadog"].url, **common(tmp_path)),
        NewRelicDestination(api_key="nr-canary", endpoint=rx["newrelic"].url, **common(tmp_path)),
        SentryDestination(dsn=f"http://a785682ddda719b7@127.0.0.1:{sentry_port}/4505281256090153",
                          **common(tmp_path)),
        OpikDestination(api_key="opik-canary", workspace="acme", project="shop-llm",
                        endpoint=rx["opik"].url + "/opik/api/v1/private/otel", **common(tmp_path)),
        WeaveDestination(api_key="wb-canary", entity="acme", project="shop", endpoint=rx["weave"].url,
                         **common(tmp_path)),
        ElasticDestination(endpoint=rx["elastic"].url, api_key="el-canary", **common(tmp_path)),
        HoneycombDestination(api_key="hc-canary", endpoint=rx["honeycomb"].url, **common(tmp_path)),
        DynatraceDestination(endpoint=rx["dynatrace"].url + "/api/v2/otlp", api_token="dt0c01.canary",
                             **common(tmp_path)),
        OtelCollectorDestination(endpoint=rx["otel_collector"].traces_url, **common(tmp_path)),
        WebhookDestination(url=rx["webhook"].url + "/hooks/otel",
                           headers='{"Authorization": "Bearer wh-canary", "X-Team": "llm"}', **common(tmp_path)),
    ])
    for name, receiver in rx.items():
        receiver.wait_for_spans(is_genai, count=2)
        refused = [r.error for r in receiver.requests if r.error]
        assert not refused, (name, refused)
        for span in receiver.spans:
            assert span.resource["service.name"] == "shop", name
    for name in ("datadog", "newrelic", "sentry", "elastic", "honeycomb", "dynatrace", "otel_collector", "webhook"):
        assert any(s.kind == "SERVER" for s in rx[name].spans), name  # trace backends: the whole trace
    for name in ("opik", "weave"):  # LLM platforms: the LLM calls
        assert all(is_genai(s) for s in rx[name].spans), name
    weave = rx["weave"].spans[0].resource
    assert weave["wandb.entity"] == "acme" and weave["wandb.project"] == "shop"
    assert rx["webhook"].requests[0].method == "POST"
    json.loads(rx["webhook"].requests[0].body)  # OTLP/JSON, as Broadcast's webhook sends it


def test_destinations_by_env_including_otel_collector_and_a_webhook_that_puts(upstream, vendor, tmp_path,
                                                                              monkeypatch):
    collector = vendor("/v1/traces", {})
    hook = vendor("/in", {"x-token": "t0k"}, "application/json")
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "otel-collector,webhook")
    monkeypatch.setenv("OR_MIDDLEWARE_OTEL_COLLECTOR__ENDPOINT", collector.traces_url)
    monkeypatch.setenv("OR_MIDDLEWARE_OTEL_COLLECTOR__SCHEDULE_DELAY_MS", "20")
    monkeypatch.setenv("OR_MIDDLEWARE_WEBHOOK__URL", hook.url + "/in")
    monkeypatch.setenv("OR_MIDDLEWARE_WEBHOOK__METHOD", "PUT")
    monkeypatch.setenv("OR_MIDDLEWARE_WEBHOOK__HEADERS", "x-token=t0k")
    monkeypatch.setenv("OR_MIDDLEWARE_WEBHOOK__SCHEDULE_DELAY_MS", "20")
    monkeypatch.setenv("OR_MIDDLEWARE_SPOOL_DIR", str(tmp_path))
    settings = Settings()
    assert [d.name for d in settings.destination_settings()] == ["otel_collector", "webhook"]
    run_app(upstream, settings.destination_settings())
    collector.wait_for_spans(lambda s: s.kind == "SERVER")
    hook.wait_for_spans(is_genai)
    assert {r.method for r in hook.requests} == {"PUT"}


def test_the_webhook_retries_a_refused_batch(upstream, vendor, tmp_path):
    hook = vendor("/hooks", {"authorization": "Bearer w"}, "application/json")
    hook.respond(status=503, times=1)
    run_app(upstream, [WebhookDestination(url=hook.url + "/hooks", headers="authorization=Bearer w",
                                          max_backoff_s=0.05, **common(tmp_path))])
    hook.wait_for_spans(is_genai, count=2)
    assert len(hook.requests) >= 2  # the batch answered 503 was sent again
    assert len([s for s in hook.spans if is_genai(s)]) == 2  # and delivered once


def test_vendor_urls_follow_site_region_and_dsn():
    settings = Settings(destinations=[])

    def url(dest) -> str:
        return wire_target(dest, settings).url

    assert url(DatadogDestination(api_key="k")) == "https://otlp.datadoghq.com/v1/traces"
    assert url(DatadogDestination(api_key="k", site="datadoghq.eu")) == "https://otlp.datadoghq.eu/v1/traces"
    assert url(NewRelicDestination(api_key="k")) == "https://otlp.nr-data.net/v1/traces"
    assert url(NewRelicDestination(api_key="k", region="eu")) == "https://otlp.eu01.nr-data.net/v1/traces"
    assert url(HoneycombDestination(api_key="k", region="eu")) == "https://api.eu1.honeycomb.io/v1/traces"
    assert url(SentryDestination(dsn="https://abc@o4504765715316736.ingest.sentry.io/4505281256090153")) == \
        "https://o4504765715316736.ingest.sentry.io/api/4505281256090153/integration/otlp/v1/traces"
    assert url(SentryDestination(dsn="https://abc@sentry.example.com:9000/sentry/7")) == \
        "https://sentry.example.com:9000/sentry/api/7/integration/otlp/v1/traces"
    assert url(OpikDestination(api_key="k", workspace="w")) == \
        "https://www.comet.com/opik/api/v1/private/otel/v1/traces"
    assert url(OpikDestination(endpoint="http://opik.internal:5173/api/v1/private/otel")) == \
        "http://opik.internal:5173/api/v1/private/otel/v1/traces"
    assert url(WeaveDestination(api_key="k", entity="e", project="p")) == "https://trace.wandb.ai/otel/v1/traces"
    assert url(DynatraceDestination(endpoint="https://abc123.live.dynatrace.com/api/v2/otlp", api_token="t")) == \
        "https://abc123.live.dynatrace.com/api/v2/otlp/v1/traces"
    assert wire_target(OpikDestination(endpoint="http://o:5173/api/v1/private/otel"), settings).headers == \
        {"projectname": "or-middleware-app"}  # self-hosted: no key, no workspace


@pytest.mark.parametrize(("dsn", "why"), [
    ("o0.ingest.sentry.io/42", "scheme"),
    ("https://o0.ingest.sentry.io/42", "public key"),
    ("https://SECRETKEY0001@o0.ingest.sentry.io/", "project id"),
    ("https://SECRETKEY0001@o0.ingest.sentry.io/proj", "project id"),
    ("https://SECRETKEY0001@o0.ingest.sentry.io/42?x=1", "query"),
    ("ftp://SECRETKEY0001@o0.ingest.sentry.io/42", "scheme"),
])
def test_a_wrong_dsn_stops_start_up_naming_the_variable_not_the_key(monkeypatch, dsn, why):
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "sentry")
    monkeypatch.setenv("OR_MIDDLEWARE_SENTRY__DSN", dsn)
    with pytest.raises(ConfigError) as raised:
        Settings()
    message = str(raised.value)
    assert "OR_MIDDLEWARE_SENTRY__DSN" in message and why in message and "\n" not in message
    assert "SECRETKEY0001" not in message


@pytest.mark.parametrize(("env", "variable", "hint"), [
    ({"DESTINATIONS": "datadog"}, "OR_MIDDLEWARE_DATADOG__API_KEY", "needs"),
    ({"DESTINATIONS": "datadog", "DATADOG__API_KEY": "k", "DATADOG__SITE": "https://datadoghq.com"},
     "OR_MIDDLEWARE_DATADOG__SITE", "expected a Datadog site"),
    ({"DESTINATIONS": "newrelic", "NEWRELIC__API_KEY": "k", "NEWRELIC__REGION": "mars"},
     "OR_MIDDLEWARE_NEWRELIC__REGION", "mars"),
    ({"DESTINATIONS": "opik"}, "OR_MIDDLEWARE_OPIK__WORKSPACE", "needs"),
    ({"DESTINATIONS": "weave", "WEAVE__API_KEY": "k"}, "OR_MIDDLEWARE_WEAVE__ENTITY", "needs"),
    ({"DESTINATIONS": "elastic", "ELASTIC__API_KEY": "k"}, "OR_MIDDLEWARE_ELASTIC__ENDPOINT", "needs"),
    ({"DESTINATIONS": "dynatrace", "DYNATRACE__ENDPOINT": "dt.example", "DYNATRACE__API_TOKEN": "t"},
     "OR_MIDDLEWARE_DYNATRACE__ENDPOINT", "expected an http"),
    ({"DESTINATIONS": "webhook"}, "OR_MIDDLEWARE_WEBHOOK__URL", "needs"),
    ({"DESTINATIONS": "webhook", "WEBHOOK__URL": "http://hooks.example.com/x"}, "OR_MIDDLEWARE_WEBHOOK__URL",
     "https://"),
    ({"DESTINATIONS": "webhook", "WEBHOOK__URL": "https://h.example/x", "WEBHOOK__HEADERS": "Bearer tok-SECRET99"},
     "OR_MIDDLEWARE_WEBHOOK__HEADERS", "key=value"),
    ({"DESTINATIONS": "webhook", "WEBHOOK__URL": "https://h.example/x", "WEBHOOK__HEADERS": '{"a": 1}'},
     "OR_MIDDLEWARE_WEBHOOK__HEADERS", "string values"),
    ({"DESTINATIONS": "webhook", "WEBHOOK__URL": "https://h.example/x", "WEBHOOK__METHOD": "GET"},
     "OR_MIDDLEWARE_WEBHOOK__METHOD", "GET"),
])
def test_a_missing_or_wrong_vendor_field_stops_start_up_in_one_line(monkeypatch, env, variable, hint):
    for key, value in env.items():
        monkeypatch.setenv(f"OR_MIDDLEWARE_{key}", value)
    with pytest.raises(ConfigError) as raised:
        Settings()
    message = str(raised.value)
    assert variable in message and hint in message and "\n" not in message, message
    assert "SECRET99" not in message


@pytest.mark.parametrize("headers", ['{"X-Ok": "a\\r\\nInjected: 1"}', '{"Bad Name": "v"}', "x-token=a%0d%0ab"])
def test_webhook_headers_that_would_break_the_request_stop_start_up(monkeypatch, headers):
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "webhook")
    monkeypatch.setenv("OR_MIDDLEWARE_WEBHOOK__URL", "https://hooks.example.com/x")
    monkeypatch.setenv("OR_MIDDLEWARE_WEBHOOK__HEADERS", headers)
    with pytest.raises(ConfigError) as raised:
        Settings()
    assert "OR_MIDDLEWARE_WEBHOOK__HEADERS" in str(raised.value) and "control character" in str(raised.value)
