"""Start-up cost of each contender: import time and RSS on top of an app that already loaded its stack.

``python -m benchmarks.startup CONTENDER UPSTREAM_URL`` (one fresh process per measurement) imports
the app's own stack first (fastapi, uvicorn, openai: what any such app has loaded anyway), then
times building the app with the contender's instrumentation and reads the RSS growth, and prints
``STARTUP <ms> <added RSS KiB> <settled RSS KiB> <CPU ms>``: "settled" is read once the work a contender
starts in the background at build time is done (ours loads the price table on a thread, so that
the first LLM call does not wait for it). ``run_startup`` runs it for every contender, several
times, and reports medians; "added" is the contender minus ``bare`` (which builds the same app alone).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from typing import Any

# Threads a contender starts at build time that end by themselves (their work counts as start-up).
BACKGROUND_START_UP = frozenset({"or_middleware-prices"})


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str]) -> None:
    contender, upstream = argv[0], argv[1]
    import fastapi  # noqa: F401  (the app's own stack, loaded before the contender)
    import openai  # noqa: F401
    import uvicorn  # noqa: F401

    from benchmarks.contenders import instrument

    rss0 = _rss_kib()
    t0, cpu0 = time.perf_counter(), time.process_time()
    instrument(contender, upstream)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    cpu_ms = (time.process_time() - cpu0) * 1000  # all threads; less swayed by a loaded machine than the wall time
    built = _rss_kib() - rss0
    for thread in threading.enumerate():
        if thread.name in BACKGROUND_START_UP:
            thread.join(60)
    print(f"STARTUP {elapsed_ms:.1f} {built} {_rss_kib() - rss0} {cpu_ms:.1f}", flush=True)


def run_startup(contenders: list[str], upstream_port: int, repeats: int = 5) -> dict[str, Any]:
    from benchmarks.run import HOST, ROOT, _env, python_for

    out: dict[str, Any] = {}
    # Our package's bytecode cached, as in any installed package (the peers' is, by pip): with
    # PYTHONDONTWRITEBYTECODE set, every module edited since its last .pyc would be compiled anew.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "or_middleware"), str(ROOT / "benchmarks")],
                   check=False, capture_output=True, cwd=ROOT)
    for name in contenders:
        times, rss, settled, cpu = [], [], [], []
        for _ in range(repeats):
            done = subprocess.run(
                [python_for(name), "-m", "benchmarks.startup", name, f"http://{HOST}:{upstream_port}"],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=_env(),
                timeout=120,
            )
            line = next((x for x in done.stdout.splitlines() if x.startswith("STARTUP")), "")
            if not line:
                print(f"startup {name}: failed: {done.stderr[-500:]}", file=sys.stderr)
                break
            _, ms, kib, settled_kib, cpu_ms = line.split()
            times.append(float(ms))
            cpu.append(float(cpu_ms))
            rss.append(int(kib))
            settled.append(int(settled_kib))
        if times:
            out[name] = {"ms": statistics.median(times), "rss_kib": statistics.median(rss),
                         "settled_rss_kib": statistics.median(settled), "cpu_ms": statistics.median(cpu)}
            print(f"startup {name}: {out[name]}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
