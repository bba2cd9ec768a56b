"""One contender in its own process: ``python -m benchmarks.worker CONTENDER UPSTREAM_URL``.

Serves the contender's app with uvicorn on 127.0.0.1 (a thread of this process) and answers
commands on stdin, one per line, so that measuring never goes through the traced app:

- ``cpu``     flush the tracer, then ``CPU <process CPU ns> <RSS KiB> <peak RSS KiB>``
- ``resetpeak`` reset the peak RSS (``/proc/self/clear_refs``), then ``OK``
- ``counts``  flush, then ``COUNTS <json: spans exported by scope, pipeline stats>``
- ``quit``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time


def memory_kib() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process."""
    found = {"VmRSS:": 0, "VmHWM:": 0}
    with open("/proc/self/status") as status:
        for line in status:
            name = line.split(maxsplit=1)[0] if line.strip() else ""
            if name in found:
                found[name] = int(line.split()[1])
    return found["VmRSS:"], found["VmHWM:"]


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in (
        "openai",
        "httpx2",
        "fastapi",
        "uvicorn",
        "opentelemetry-sdk",
        "opentelemetry-instrumentation-asgi",
        "opentelemetry-instrumentation-openai",
        "opentelemetry-instrumentation-openai-v2",
        "openinference-instrumentation-openai",
    ):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("contender")
    parser.add_argument("upstream")
    parser.add_argument("--variant", default="healthy")
    parser.add_argument("--sink", default="")
    args = parser.parse_args(argv)

    from benchmarks.contenders import instrument
    from benchmarks.serving import serve

    instrumented = instrument(args.contender, args.upstream, variant=args.variant, sink=args.sink)
    with serve(instrumented.app) as port:
        print(f"READY {port} {json.dumps(versions())}", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "cpu":
                instrumented.flush()
                rss, peak = memory_kib()
                print(f"CPU {time.process_time_ns()} {rss} {peak}", flush=True)
            elif command == "resetpeak":
                with open("/proc/self/clear_refs", "w") as refs:
                    refs.write("5")
                print("OK", flush=True)
            elif command == "counts":
                instrumented.flush()
                print(f"COUNTS {json.dumps(instrumented.counts())}", flush=True)
            elif command == "quit":
                break
            else:
                print(f"ERROR unknown command {command!r}", flush=True)


if __name__ == "__main__":
    main()
