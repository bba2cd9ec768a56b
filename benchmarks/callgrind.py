"""Instructions per request: each worker under ``valgrind --tool=callgrind``.

CPU time on a shared VM moves by several percent between runs; instruction counts do not.
Instrumentation is switched on after start-up and warm-up (``callgrind_control -i on``);
around each workload the counters are zeroed (``-z``), the requests made, the tracer flushed
and the counters dumped (``-d``); the dump's ``summary:`` line divided by the request count is
the figure. All threads of the worker count (export threads included), as with CPU time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.run import Plan, Process, _load, start_worker, stream_path

COUNTS = {"p1": 100, "p2": 30, "p3": 3, "p3c": 3}


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def _summary(directory: Path) -> int:
    """The ``summary:`` of the newest dump (callgrind numbers them ``.1``, ``.2``, ...)."""
    dumps = sorted(directory.glob("cg.out.*"), key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    for line in dumps[-1].read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {dumps[-1]}")


def measure_contender(name: str, upstream_port: int, plan: Plan) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix=f"callgrind-{name}-"))
    prefix = ["valgrind", "-q", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={directory}/cg.out"]
    worker: Process = start_worker(name, upstream_port, prefix=prefix)
    pid = str(worker.proc.pid)
    try:
        for path, n in (("/plain", 10), ("/chat", 5), (stream_path(plan), 1)):
            _load(worker.port, path, n)
        _control("-i", "on", pid)
        for path, n in (("/plain", 5), ("/chat", 3), (stream_path(plan), 1), (stream_path(plan, "/consume"), 1)):
            _load(worker.port, path, n)
        out: dict[str, float] = {}
        consume = stream_path(plan, "/consume")
        workloads = (("p1", "/plain"), ("p2", "/chat"), ("p3", stream_path(plan)), ("p3c", consume))
        for key, path in workloads:
            worker.cpu()  # flush what the warm-up left
            _control("-z", pid)
            _load(worker.port, path, COUNTS[key])
            worker.cpu()  # flush: export work is counted too
            _control("-d", pid)
            out[key] = _summary(directory) / COUNTS[key]
        print(f"callgrind {name}: " + ", ".join(f"{k} {v:,.0f}" for k, v in out.items()), file=sys.stderr)
        return out
    finally:
        worker.close()
        shutil.rmtree(directory, ignore_errors=True)


def run_callgrind(contenders: list[str], upstream_port: int, plan: Plan) -> dict[str, Any]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind / callgrind_control not found: --callgrind skipped", file=sys.stderr)
        return {}
    return {name: measure_contender(name, upstream_port, plan) for name in contenders}
