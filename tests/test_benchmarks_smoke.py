"""The benchmark harness still runs: one contender, a handful of requests (no timing asserted)."""

from __future__ import annotations

from benchmarks import run


def test_one_contender_runs_and_reports() -> None:
    plan = run.Plan(rounds=1, p1=5, p2=3, p3=1, chunks=5, throughput=6, concurrency=2, warmup=1)
    upstream = run.start_upstream()
    try:
        result = run.run_main([run.OURS], upstream.port, plan)
    finally:
        upstream.close()
    medians = result["medians"][run.OURS]
    assert medians["p1_cpu_us"] > 0 and medians["p2_cpu_us"] > 0 and medians["tput_rps"] > 0
    spans = result["info"][run.OURS]["spans_per_request_p1_p2"]
    assert spans.get("or_middleware", 0) > 0  # the LLM calls were traced
    text = run.report({"main": result}, plan, "python -m benchmarks.run (smoke)")
    assert "| or_middleware |" in text
