"""Overhead benchmark of or_middleware against the bare app, OTel ASGI alone and the peers.

    .venv/bin/python -m benchmarks.run                 # P1-P3 + throughput, all contenders, 5 rounds
    .venv/bin/python -m benchmarks.run --quick         # 1 round, small counts (a minute or two)
    .venv/bin/python -m benchmarks.run --p4 --p5       # also export-never-blocks and big-stream memory
    .venv/bin/python -m benchmarks.run --callgrind     # also instructions per request (valgrind)

Each contender runs in its own process (``benchmarks.worker``), the fake upstream in another,
and this process drives the load over loopback. Contenders alternate (A B C ... A B C ...,
the order rotated each round) and every figure is the median over rounds, so machine drift
cancels. CPU is the worker's process CPU time (all its threads, export threads included,
after a flush) over N requests. The markdown report goes to stdout and to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.contenders import CONTENDERS, P4_SINKS, P4_VARIANTS
from benchmarks.load import percentile, run_requests

ROOT = Path(__file__).resolve().parent.parent
# OR_BENCH_PEERS_VENV: reuse a peers venv, e.g. when benchmarking a `git worktree` snapshot.
PEERS_VENV = Path(os.environ.get("OR_BENCH_PEERS_VENV") or ROOT / "benchmarks" / ".venv-peers")
PEERS_REQUIREMENTS = ROOT / "benchmarks" / "requirements-peers.txt"
# The app's stack: pinned in the peers' venv to the versions of the project's venv.
SHARED_STACK = (
    "openai",
    "httpx2",
    "httpcore2",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "pydantic-core",
    "anyio",
    "jiter",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-asgi",
    "opentelemetry-semantic-conventions",
    "opentelemetry-util-http",
)
HOST = "127.0.0.1"
OURS = "or_middleware"
PEERS = tuple(name for name, (_, peer) in CONTENDERS.items() if peer)


@dataclass
class Plan:
    rounds: int = 5
    p1: int = 2000
    p2: int = 400
    p3: int = 20
    chunks: int = 200
    chunk_delay_ms: int = 1
    throughput: int = 1500
    concurrency: int = 50
    warmup: int = 30
    p4_requests: int = 1500
    p4_spans: int = 100_000
    p5_bytes: int = 100 * 1024 * 1024


QUICK = Plan(
    rounds=1, p1=300, p2=100, p3=5, throughput=400, warmup=10, p4_requests=400, p4_spans=5000, p5_bytes=10 * 1024 * 1024
)


# -- processes ---------------------------------------------------------------------------------


def python_for(contender: str) -> str:
    if CONTENDERS[contender][1]:
        return str(PEERS_VENV / "bin" / "python")
    return sys.executable


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OR_MIDDLEWARE_", "OTEL_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["OTEL_SDK_DISABLED"] = "false"
    return env


class Process:
    """A child speaking our line protocol on stdin/stdout."""

    def __init__(self, argv: list[str], prefix: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*(prefix or []), *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_env()
        )
        line = self._read()
        if not line.startswith("READY"):
            self.close()
            raise RuntimeError(f"{argv}: expected READY, got {line!r}")
        parts = line.split(" ", 2)
        self.port = int(parts[1])
        self.versions: dict[str, str] = json.loads(parts[2]) if len(parts) > 2 else {}

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.proc.wait()}")
        return line.strip()

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def cpu(self) -> tuple[int, int, int]:
        _, ns, rss, peak = self.ask("cpu").split()
        return int(ns), int(rss), int(peak)

    def counts(self) -> dict[str, int]:
        return json.loads(self.ask("counts").split(" ", 1)[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def start_upstream() -> Process:
    return Process([sys.executable, "-m", "benchmarks.upstream"])


def start_worker(
    contender: str, upstream_port: int, *, variant: str = "healthy", sink: str = "", prefix: list[str] | None = None
) -> Process:
    argv = [
        python_for(contender),
        "-m",
        "benchmarks.worker",
        contender,
        f"http://{HOST}:{upstream_port}",
        "--variant",
        variant,
        "--sink",
        sink,
    ]
    return Process(argv, prefix)


def ensure_peers_venv() -> None:
    """Create benchmarks/.venv-peers with the peers and the project venv's versions of the app stack."""
    python = PEERS_VENV / "bin" / "python"
    check = [
        str(python),
        "-c",
        "import opentelemetry.instrumentation.openai, opentelemetry.instrumentation.openai_v2,"
        " openinference.instrumentation.openai, fastapi, uvicorn",
    ]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return
    print(f"creating {PEERS_VENV.relative_to(ROOT)} (the peers, in their own venv) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    from importlib.metadata import PackageNotFoundError, version

    constraints = PEERS_VENV / "constraints.txt"
    pins = []
    for name in SHARED_STACK:
        with contextlib.suppress(PackageNotFoundError):
            pins.append(f"{name}=={version(name)}")
    constraints.write_text("\n".join(pins) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(PEERS_REQUIREMENTS), "-c", str(constraints)], check=True
    )


# -- measuring ---------------------------------------------------------------------------------


def _load(port: int, path: str, count: int, concurrency: int = 1) -> tuple[list[Any], float]:
    return asyncio.run(run_requests(HOST, port, path, count, concurrency=concurrency))


def measure(worker: Process, path: str, count: int, concurrency: int = 1) -> dict[str, float]:
    """CPU per request (µs), latency and TTFB percentiles (ms) and rate of ``count`` GETs."""
    cpu0, _, _ = worker.cpu()
    replies, wall = _load(worker.port, path, count, concurrency)
    cpu1, rss, _ = worker.cpu()
    totals = [r.total * 1000 for r in replies]
    return {
        "cpu_us": (cpu1 - cpu0) / 1000 / count,
        "lat_ms": statistics.median(totals),
        "p99_ms": percentile(totals, 0.99),
        "ttfb_ms": statistics.median(r.ttfb * 1000 for r in replies),
        "rps": count / wall,
        "rss_kib": rss,
    }


def stream_path(plan: Plan, route: str = "/stream") -> str:
    """P3: ``/stream`` relays the stream to the client, ``/consume`` reads it in the handler."""
    return f"{route}?chunks={plan.chunks}&delay_ms={plan.chunk_delay_ms}"


def one_round(contender: str, upstream_port: int, plan: Plan) -> tuple[dict[str, float], dict[str, Any]]:
    worker = start_worker(contender, upstream_port)
    try:
        for path, n in (
            ("/plain", plan.warmup * 3),
            ("/chat", plan.warmup),
            (stream_path(plan), 2),
            (stream_path(plan, "/consume"), 2),
        ):
            _load(worker.port, path, n)
        before = worker.counts()
        p1 = measure(worker, "/plain", plan.p1)
        p2 = measure(worker, "/chat", plan.p2)
        after_p2 = worker.counts()
        p3 = measure(worker, stream_path(plan), plan.p3)
        p3c = measure(worker, stream_path(plan, "/consume"), plan.p3)
        tput = measure(worker, "/chat", plan.throughput, plan.concurrency)
        spans_per_call = {
            scope: round((after_p2.get(scope, 0) - before.get(scope, 0)) / (plan.p1 + plan.p2), 3)
            for scope in after_p2
            if not scope.startswith("stats.")
        }
        metrics = {
            "p1_cpu_us": p1["cpu_us"],
            "p1_lat_ms": p1["lat_ms"],
            "p2_cpu_us": p2["cpu_us"],
            "p2_lat_ms": p2["lat_ms"],
            "p3_cpu_us": p3["cpu_us"],
            "p3_ttfb_ms": p3["ttfb_ms"],
            "p3_lat_ms": p3["lat_ms"],
            "p3c_cpu_us": p3c["cpu_us"],
            "tput_rps": tput["rps"],
            "tput_p99_ms": tput["p99_ms"],
        }
        return metrics, {"versions": worker.versions, "spans_per_request_p1_p2": spans_per_call}
    finally:
        worker.close()


def rotations(names: list[str], rounds: int) -> Iterator[tuple[int, str]]:
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            yield r, name


def run_main(contenders: list[str], upstream_port: int, plan: Plan) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {c: [] for c in contenders}
    info: dict[str, Any] = {}
    for r, name in rotations(contenders, plan.rounds):
        started = time.monotonic()
        metrics, meta = one_round(name, upstream_port, plan)
        samples[name].append(metrics)
        info[name] = meta
        print(
            f"round {r + 1}/{plan.rounds} {name:22s} {time.monotonic() - started:5.1f}s "
            f"P1 {metrics['p1_cpu_us']:7.1f}µs  P2 {metrics['p2_cpu_us']:7.1f}µs  "
            f"P3 {metrics['p3_cpu_us']:8.1f}µs  P3c {metrics['p3c_cpu_us']:8.1f}µs  {metrics['tput_rps']:6.1f} req/s",
            file=sys.stderr,
        )
    medians = {
        name: {key: statistics.median(s[key] for s in runs) for key in runs[0]} for name, runs in samples.items()
    }
    return {"medians": medians, "samples": samples, "info": info}


# -- P4: export never blocks ------------------------------------------------------------------


def run_p4(upstream_port: int, plan: Plan) -> dict[str, Any]:
    from benchmarks.sinks import sink_for

    samples: dict[str, list[dict[str, float]]] = {v: [] for v in P4_VARIANTS}
    stats: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        sinks = {variant: stack.enter_context(sink_for(kind)) if kind else "" for variant, kind in P4_SINKS.items()}
        blackhole = sinks["blackhole"]
        for r, variant in rotations(list(P4_VARIANTS), plan.rounds):
            worker = start_worker(OURS, upstream_port, variant=variant, sink=sinks[variant])
            try:
                _load(worker.port, "/chat", plan.warmup, plan.concurrency)
                m = measure(worker, "/chat", plan.p4_requests, plan.concurrency)
                samples[variant].append(m)
                stats[variant] = worker.counts()
                print(
                    f"P4 round {r + 1} {variant:9s} p99 {m['p99_ms']:6.1f} ms  median {m['lat_ms']:5.1f} ms",
                    file=sys.stderr,
                )
            finally:
                worker.close()
        memory = p4_memory(upstream_port, blackhole, plan)
    medians = {v: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for v, runs in samples.items()}
    return {"medians": medians, "stats": stats, "memory": memory}


def p4_memory(upstream_port: int, sink: str, plan: Plan) -> dict[str, Any]:
    """RSS of a worker whose only destination is blackholed, sampled while it makes ``p4_spans`` spans."""
    worker = start_worker(OURS, upstream_port, variant="blackhole", sink=sink)
    try:
        _load(worker.port, "/plain", plan.warmup * 3, plan.concurrency)
        _, rss0, _ = worker.cpu()
        trajectory = [(0, rss0)]
        step = max(1, plan.p4_spans // 10)
        done = 0
        while done < plan.p4_spans:  # /plain makes one (server) span; the otlp destination takes all spans
            _load(worker.port, "/plain", step, plan.concurrency)
            done += step
            trajectory.append((done, worker.cpu()[1]))
        counts = worker.counts()
    finally:
        worker.close()
    print(f"P4 memory: RSS KiB by spans {trajectory}", file=sys.stderr)
    return {"rss_kib_by_spans": trajectory, "counts": counts}


# -- P5: a 100 MB stream ------------------------------------------------------------------------

SSE_BYTES_PER_CHUNK = 200  # a fake OpenAI chat chunk, measured: ~190-200 bytes of SSE


def run_p5(upstream_port: int, plan: Plan) -> dict[str, Any]:
    chunks = plan.p5_bytes // SSE_BYTES_PER_CHUNK
    out: dict[str, Any] = {}
    for name in ("bare", OURS):
        worker = start_worker(name, upstream_port)
        try:
            _load(worker.port, "/drain?chunks=1000", 3)
            _, rss0, _ = worker.cpu()
            worker.ask("resetpeak")
            _replies, wall = _load(worker.port, f"/drain?chunks={chunks}", 1)
            _, rss1, peak = worker.cpu()
            out[name] = {
                "rss_before_kib": rss0,
                "peak_kib": peak,
                "rss_after_kib": rss1,
                "added_peak_kib": peak - rss0,
                "seconds": wall,
                "chunks": chunks,
            }
            print(f"P5 {name}: {out[name]}", file=sys.stderr)
        finally:
            worker.close()
    return out


# -- the floor: one OTel SDK span --------------------------------------------------------------


def span_floor(n: int = 20_000) -> dict[str, float]:
    """µs of CPU for one OTel SDK span start+end (no-op processor), bare and with 25 attributes."""
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import SpanKind

    provider = TracerProvider()
    provider.add_span_processor(SpanProcessor())
    tracer = provider.get_tracer("floor")
    attributes = {f"gen_ai.attribute.{i}": i for i in range(25)}
    out = {}
    for label, attrs in (("span_us", None), ("span_25_attributes_us", attributes)):
        for _ in range(2000):
            tracer.start_span("x", kind=SpanKind.CLIENT, attributes=attrs).end()
        t0 = time.process_time_ns()
        for _ in range(n):
            span = tracer.start_span("x", kind=SpanKind.CLIENT)
            if attrs:
                span.set_attributes(attrs)
            span.end()
        out[label] = (time.process_time_ns() - t0) / 1000 / n
    return out


# -- report -------------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def report(result: dict[str, Any], plan: Plan, command: str) -> str:
    lines = [f"Command: `{command}`  ", f"Machine: {machine()}  "]
    main = result.get("main")
    if main:
        m = main["medians"]
        versions = next(iter(main["info"].values()))["versions"]
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "  ")
        lines.append(
            f"Plan: {plan.rounds} rounds; P1 {plan.p1} GETs, P2 {plan.p2} chat calls, P3 {plan.p3} streams of "
            f"{plan.chunks} chunks at {plan.chunk_delay_ms} ms, sequential; throughput {plan.throughput} chat calls "
            f"over {plan.concurrency} connections. Medians over rounds."
        )
        lines.append("")
        bare = m.get("bare")
        lines.append(
            "| contender | P1 CPU µs/req | P1 added | P2 CPU µs/call | P2 added | P3 CPU µs/stream "
            "| P3 added µs/chunk | P3 consumed added µs/chunk | P3 TTFB ms | TTFB ratio | req/s @50 | vs bare |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, v in m.items():
            if bare:
                a1 = v["p1_cpu_us"] - bare["p1_cpu_us"]
                a2 = v["p2_cpu_us"] - bare["p2_cpu_us"]
                a3 = (v["p3_cpu_us"] - bare["p3_cpu_us"]) / plan.chunks
                a3c = (v["p3c_cpu_us"] - bare["p3c_cpu_us"]) / plan.chunks
                extra = (
                    f"{a1:+.1f}",
                    f"{a2:+.1f}",
                    f"{a3:+.2f}",
                    f"{a3c:+.2f}",
                    _ratio(v["p3_ttfb_ms"], bare["p3_ttfb_ms"]),
                    _ratio(v["tput_rps"], bare["tput_rps"]),
                )
            else:
                extra = ("", "", "", "", "", "")
            lines.append(
                f"| {name} | {v['p1_cpu_us']:.1f} | {extra[0]} | {v['p2_cpu_us']:.1f} | {extra[1]} | "
                f"{v['p3_cpu_us']:.0f} | {extra[2]} | {extra[3]} | {v['p3_ttfb_ms']:.2f} | {extra[4]} | "
                f"{v['tput_rps']:.0f} | {extra[5]} |"
            )
        lines += ["", *goals(m, plan)]
        lines += ["", "Spans exported per request over P1+P2 (by instrumentation scope):", ""]
        for name, meta in main["info"].items():
            lines.append(f"- {name}: {meta['spans_per_request_p1_p2'] or 'none'}")
    floor = result.get("floor")
    if floor:
        lines += [
            "",
            f"Floor, same run: one OTel SDK span start+end {floor['span_us']:.1f} µs CPU, "
            f"with 25 attributes {floor['span_25_attributes_us']:.1f} µs.",
        ]
    p4 = result.get("p4")
    if p4:
        pm = p4["medians"]
        healthy = pm["healthy"]
        lines += [
            "",
            f"P4 (or_middleware, {plan.p4_requests} chat calls over {plan.concurrency} connections, "
            "OTLP destination state; healthy: the same exporter against a sink that answers at once; "
            "CPU: the worker's CPU time per request, exporter thread included):",
            "",
            "| destination | median ms | p99 ms | p99 ratio | CPU µs/req | CPU ratio | req/s | pipeline stats |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for variant, v in pm.items():
            stats = {k.split(".")[-1]: n for k, n in p4["stats"].get(variant, {}).items() if k.startswith("stats.")}
            lines.append(
                f"| {variant} | {v['lat_ms']:.1f} | {v['p99_ms']:.1f} | {_ratio(v['p99_ms'], healthy['p99_ms'])}"
                f" | {v['cpu_us']:.0f} | {_ratio(v['cpu_us'], healthy['cpu_us'])} | {v['rps']:.0f} | {stats} |"
            )
        traj = p4["memory"]["rss_kib_by_spans"]
        lines += [
            "",
            "RSS (MiB) of a blackholed worker by spans made: "
            + ", ".join(f"{n // 1000}k: {kib / 1024:.0f}" for n, kib in traj),
        ]
    p5 = result.get("p5")
    if p5:
        lines += [
            "",
            "P5 (one streamed chat completion read as raw bytes):",
            "",
            "| contender | chunks | seconds | RSS before MiB | peak MiB | added peak MiB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, v in p5.items():
            lines.append(
                f"| {name} | {v['chunks']} | {v['seconds']:.1f} | {v['rss_before_kib'] / 1024:.1f} | "
                f"{v['peak_kib'] / 1024:.1f} | {v['added_peak_kib'] / 1024:.1f} |"
            )
    cg = result.get("callgrind")
    if cg:
        lines += [
            "",
            "Instructions per request (valgrind callgrind, single run; deterministic):",
            "",
            "| contender | P1 instr/req | P2 instr/call | P3 relayed instr/stream | P3 consumed instr/stream |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, v in cg.items():
            lines.append(f"| {name} | {v['p1']:,.0f} | {v['p2']:,.0f} | {v['p3']:,.0f} | {v.get('p3c', 0):,.0f} |")
        lines += ["", *callgrind_goals(cg, plan)]
    startup = result.get("startup")
    if startup:
        base = startup.get("bare", {"ms": 0.0, "rss_kib": 0})
        lines += [
            "",
            "Start-up on top of an app that already imported fastapi, uvicorn and openai "
            "(fresh process each, median of 5): building the app with the contender; settled: once the "
            "work it started in the background at build time is done (ours: the price table).",
            "",
            "| contender | ms | added ms vs bare | CPU ms | added CPU ms | RSS added MiB | vs bare MiB "
            "| settled vs bare MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, v in startup.items():
            settled = v.get("settled_rss_kib", v["rss_kib"]) - base.get("settled_rss_kib", base["rss_kib"])
            lines.append(
                f"| {name} | {v['ms']:.0f} | {v['ms'] - base['ms']:+.0f} | {v.get('cpu_ms', 0):.0f} | "
                f"{v.get('cpu_ms', 0) - base.get('cpu_ms', 0):+.0f} | {v['rss_kib'] / 1024:.1f} | "
                f"{(v['rss_kib'] - base['rss_kib']) / 1024:+.1f} | {settled / 1024:+.1f} |"
            )
    return "\n".join(lines) + "\n"


def goals(m: dict[str, dict[str, float]], plan: Plan) -> list[str]:
    bare, ours = m.get("bare"), m.get(OURS)
    if not bare or not ours:
        return []
    out = []
    keys = ("p1_cpu_us", "p2_cpu_us", "p3_cpu_us", "p3c_cpu_us")
    added = {name: {k: v[k] - bare[k] for k in keys} for name, v in m.items()}
    if "otel-asgi" in m:
        out.append(
            f"- P1 ours / OTel ASGI added CPU: {_ratio(added[OURS]['p1_cpu_us'], added['otel-asgi']['p1_cpu_us'])}"
            " (goal ≤ 0.5x)"
        )
    peers = [p for p in PEERS if p in m]
    if peers:
        cheapest2 = min(peers, key=lambda p: added[p]["p2_cpu_us"])
        cheapest3 = min(peers, key=lambda p: added[p]["p3_cpu_us"])
        out.append(
            f"- P2 ours / cheapest peer ({cheapest2}) added CPU per call: "
            f"{_ratio(added[OURS]['p2_cpu_us'], added[cheapest2]['p2_cpu_us'])} (goal ≤ 1.0x, stretch 0.5x)"
        )
        out.append(
            f"- P3 relayed ours / cheapest peer ({cheapest3}) added CPU per chunk: "
            f"{_ratio(added[OURS]['p3_cpu_us'], added[cheapest3]['p3_cpu_us'])} (goal ≤ 0.5x)"
        )
        cheapest3c = min(peers, key=lambda p: added[p]["p3c_cpu_us"])
        out.append(
            f"- P3 consumed ours / cheapest peer ({cheapest3c}) added CPU per chunk: "
            f"{_ratio(added[OURS]['p3c_cpu_us'], added[cheapest3c]['p3c_cpu_us'])} (goal ≤ 0.5x)"
        )
    out.append(f"- P3 TTFB ours / bare: {_ratio(ours['p3_ttfb_ms'], bare['p3_ttfb_ms'])} (goal ≤ 1.01)")
    return out


def callgrind_goals(cg: dict[str, dict[str, float]], plan: Plan) -> list[str]:
    """The goals judged on instructions (the deterministic figures): ours vs OTel ASGI and the peers."""
    bare = cg.get("bare")
    if not bare or OURS not in cg:
        return []
    added = {name: {k: v.get(k, 0) - bare.get(k, 0) for k in ("p1", "p2", "p3", "p3c")} for name, v in cg.items()}
    ours = added[OURS]
    out = ["Goals on added instructions (contender minus bare, same run):"]
    if "otel-asgi" in added:
        out.append(f"- P1 ours / OTel ASGI: {_ratio(ours['p1'], added['otel-asgi']['p1'])} (goal ≤ 0.5x)")
    peers = [p for p in PEERS if p in added]
    for key, label, goal in (
        ("p2", "P2", "≤ 1.0x, stretch 0.5x"),
        ("p3", "P3 relayed", "≤ 0.5x"),
        ("p3c", "P3 consumed", "≤ 0.5x"),
    ):
        if peers:
            cheapest = min(peers, key=lambda p: added[p][key])
            out.append(
                f"- {label} ours / cheapest peer ({cheapest}): {_ratio(ours[key], added[cheapest][key])} (goal {goal})"
            )
    return out


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"
    )


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 round, small counts")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--contenders", help=f"comma list (default all): {', '.join(CONTENDERS)}")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers (no separate venv needed)")
    parser.add_argument("--no-main", action="store_true", help="skip P1-P3 and throughput")
    parser.add_argument("--p4", action="store_true", help="export never blocks (blackholed / slow destination)")
    parser.add_argument("--p5", action="store_true", help="memory of a 100 MB stream")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request under valgrind")
    parser.add_argument("--startup", action="store_true", help="import time and RSS of building the instrumented app")
    parser.add_argument("--p1", type=int)
    parser.add_argument("--p2", type=int)
    parser.add_argument("--p3", type=int)
    parser.add_argument("--throughput", type=int)
    parser.add_argument("--p4-requests", type=int, help="chat calls per P4 variant and round")
    parser.add_argument("--p4-spans", type=int, help="spans the P4 memory run makes")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "last-run.md"), help="markdown report file")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "last-run.json"), help="raw results file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    plan = Plan(**vars(QUICK)) if args.quick else Plan()
    for key in ("rounds", "p1", "p2", "p3", "throughput", "p4_requests", "p4_spans"):
        if getattr(args, key) is not None:
            setattr(plan, key, getattr(args, key))
    contenders = args.contenders.split(",") if args.contenders else list(CONTENDERS)
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown:
        raise SystemExit(f"unknown contenders {unknown}; known: {', '.join(CONTENDERS)}")
    if args.no_peers:
        contenders = [c for c in contenders if c not in PEERS]
    if any(c in PEERS for c in contenders):
        ensure_peers_venv()
    result: dict[str, Any] = {"plan": vars(plan)}
    upstream = start_upstream()
    try:
        if not args.no_main:
            result["main"] = run_main(contenders, upstream.port, plan)
            result["floor"] = span_floor()
        if args.p4:
            result["p4"] = run_p4(upstream.port, plan)
        if args.p5:
            result["p5"] = run_p5(upstream.port, plan)
        if args.callgrind:
            from benchmarks.callgrind import run_callgrind

            result["callgrind"] = run_callgrind(contenders, upstream.port, plan)
        if args.startup:
            from benchmarks.startup import run_startup

            result["startup"] = run_startup(contenders, upstream.port)
    finally:
        upstream.close()
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(result, plan, command.strip())
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
