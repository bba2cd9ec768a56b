"""examples/grafana-dashboard.json asks only for metrics, labels and span attributes we really export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from or_middleware import spans as contract
from or_middleware.genai.record import GenerationRecord
from or_middleware.metrics import SECURITY_KIND, GenAIMetrics
from tests.support.generations import genai_span

DASHBOARD = Path(__file__).parent.parent / "examples" / "grafana-dashboard.json"


def prometheus_names() -> tuple[set[str], set[str]]:
    """Series and label names our instruments become in Prometheus/Mimir (OTLP translation: dots to
    underscores, unit suffix, _total for counters, _bucket/_sum/_count for histograms)."""
    reader = InMemoryMetricReader()
    instruments = GenAIMetrics(MeterProvider(metric_readers=[reader]))
    span = genai_span(request_model="m", response_model="m", input_tokens=1, output_tokens=1, cost=0.1,
                      time_to_first_chunk=0.1, stream=True, error_type="http_500")
    instruments.record(span, ["burst"])
    series, labels = set(), {"le", "job"}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                base = metric.name.replace(".", "_")
                unit = {"s": "_seconds", "USD": "_USD"}.get(metric.unit, "")
                if type(metric.data).__name__ == "Histogram":
                    series |= {f"{base}{unit}_{part}" for part in ("bucket", "sum", "count")}
                else:
                    series.add(f"{base}{unit}_total")
                for point in metric.data.data_points:
                    labels |= {key.replace(".", "_") for key in point.attributes}
    return series, labels


def panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_it_is_an_importable_dashboard():
    dashboard = json.loads(DASHBOARD.read_text())
    assert {i["name"] for i in dashboard["__inputs"]} == {"DS_PROMETHEUS", "DS_TEMPO"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["datasource"]["uid"] in ("${DS_PROMETHEUS}", "${DS_TEMPO}")
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and panel["targets"]
    titles = " ".join(p["title"].lower() for p in panels())
    for needed in ("cost by model", "latency p50 / p95 / p99", "first chunk", "error rate", "tokens", "security"):
        assert needed in titles


def test_metric_panels_use_only_series_and_labels_we_export():
    series, labels = prometheus_names()
    used_series, used_labels = set(), set()
    for panel in panels():
        for target in panel["targets"]:
            expr = target.get("expr")
            if expr is None:
                continue
            used_series |= set(re.findall(r"\b((?:gen_ai|or_middleware)_[a-z_]+)\s*[{\[]", expr))
            for names in re.findall(r"by \(([^)]*)\)", expr):
                used_labels |= {n.strip() for n in names.split(",")}
            used_labels |= set(re.findall(r"(\w+)\s*(?:=~|!=|=)\s*\"", expr)) - {"__name__"}
            # the cost counter is matched by a regex, with or without its unit suffix
            for pattern in re.findall(r'__name__=~"([^"]+)"', expr):
                assert any(re.fullmatch(pattern, s) for s in series), pattern
    used_series = {s for s in used_series if not s.startswith("or_middleware_cost")}
    assert used_series <= series, used_series - series
    assert used_labels <= labels, used_labels - labels
    # every instrument is on the dashboard
    for name in ("gen_ai_client_token_usage", "gen_ai_client_operation_duration_seconds",
                 "gen_ai_client_operation_time_to_first_chunk_seconds", "or_middleware_security_signals_total"):
        assert any(s.startswith(name) for s in used_series)
    assert SECURITY_KIND.replace(".", "_") in used_labels


def test_traceql_panels_use_attributes_of_the_span_contract():
    record = GenerationRecord(provider="openrouter", request_model="m", response_model="m", input_tokens=1,
                              output_tokens=1, cost=0.1, time_to_first_chunk=0.2, stream=True, user="u",
                              error_type="http_500")
    attributes = set(contract.record_attributes(record, 1024))
    queries = [t["query"] for p in panels() for t in p["targets"] if t.get("queryType") == "traceql"]
    assert len(queries) >= 4
    for query in queries:
        for name in re.findall(r"\bspan\.([a-z_.]+[a-z])", query):
            assert name in attributes, name
