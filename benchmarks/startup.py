"""Start-up cost of each contender: import time and RSS on top of an app that already loaded its stack.

``python -m benchmarks.startup CONTENDER UPSTREAM_URL`` (one fresh process per measurement) imports
the app's own stack first (fastapi, uvicorn, openai: what any such app has loaded anyway), then
times building the app with the contender's instrumentation and reads the RSS growth, and prints
``STARTUP <ms> <added RSS KiB>``. ``run_startup`` runs it for every contender, several times,
and reports medians; "added" is the contender minus ``bare`` (which builds the same app alone).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any


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
    t0 = time.perf_counter()
    instrument(contender, upstream)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    print(f"STARTUP {elapsed_ms:.1f} {_rss_kib() - rss0}", flush=True)


def run_startup(contenders: list[str], upstream_port: int, repeats: int = 5) -> dict[str, Any]:
    from benchmarks.run import HOST, ROOT, _env, python_for

    out: dict[str, Any] = {}
    for name in contenders:
        times, rss = [], []
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
            _, ms, kib = line.split()
            times.append(float(ms))
            rss.append(int(kib))
        if times:
            out[name] = {"ms": statistics.median(times), "rss_kib": statistics.median(rss)}
            print(f"startup {name}: {out[name]}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
