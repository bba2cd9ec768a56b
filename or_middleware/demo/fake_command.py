"""``or-middleware fake-upstream``: the fake LLM API of the demo as a server for your own tests.

One server answers every wire format it knows at once (OpenRouter under ``/api/v1``, OpenAI
under ``/v1``, Anthropic at ``/v1/messages``, and whatever else the fake serves); ``--provider``
only picks which base URL is printed. The switches set defaults for every request; a request
can still pick its own with the ``x-fake-*`` headers or a model named ``<anything>/<scenario>``
(see :mod:`or_middleware.demo.fake_upstream`).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from typing import Any

DESCRIPTION = """\
Serve a fake LLM API on loopback: real JSON and SSE wire formats, deterministic answers
("Echo: <your last message>", one token per word), no key, no network. Point your app or
your tests at it to see traces, or to test error handling, without spending a cent.

Every request is answered in the format of its path (OpenRouter under /api/v1, OpenAI under
/v1, Anthropic at /v1/messages, ...); --provider picks the base URL printed at start-up.
Scenarios apply to every request; a single request can choose its own with the header
x-fake-scenario: NAME[,NAME] or a model named like "any/NAME" (e.g. "fake/error_429").

scenarios:
  error_<status>    answer that HTTP status with the provider's error JSON (429/503 with Retry-After)
  midstream_error   streams: half the answer, then the format's error event; others: 502
  truncated         streams stop halfway with no final event; JSON bodies are cut in half
  slow              100 ms between stream events (--chunk-delay-ms sets it)
  gzip              gzip-encoded bodies and streams
  invalid_json      a 200 whose body (or one stream event) is not JSON
  reasoning         reasoning tokens and reasoning deltas
  cache             cached prompt tokens in the usage"""

EPILOG = """\
examples:
  or-middleware fake-upstream                          # OpenRouter-style API on http://127.0.0.1:8766/api/v1
  or-middleware fake-upstream --provider anthropic --port 9000
  or-middleware fake-upstream --error 429 --retry-after 2   # every call is rate limited
  or-middleware fake-upstream --first-chunk-delay-ms 3000   # a slow time to first token
  or-middleware fake-upstream --scenario midstream_error    # streams fail halfway"""

SDK_HINTS = {  # provider -> (environment variable its SDK reads, path the SDK adds itself)
    "openrouter": ("OPENAI_BASE_URL", ""),
    "openai": ("OPENAI_BASE_URL", ""),
    "anthropic": ("ANTHROPIC_BASE_URL", "/v1"),
}


def provider_bases() -> dict[str, str]:
    """provider -> base path of its routes in the fake (the common directory of its paths)."""
    from or_middleware.demo.fake_upstream import ROUTES

    paths: dict[str, list[str]] = {}
    for path, route in ROUTES.items():
        flavour = route[0] if isinstance(route, tuple) else str(route)
        paths.setdefault(flavour, []).append(path.rsplit("/", 1)[0] if path.count("/") > 1 else path)
    bases = {}
    for flavour, dirs in paths.items():
        common = dirs[0]
        for other in dirs[1:]:
            while not (other + "/").startswith(common + "/"):
                common = common.rsplit("/", 1)[0]
        bases[flavour] = common
    return bases


def defaults_of(args: argparse.Namespace) -> dict[str, str]:
    scenarios = [s.strip() for item in args.scenario for s in item.split(",") if s.strip()]
    if args.error:
        scenarios.append(f"error_{args.error}")
    headers = {}
    if scenarios:
        headers["x-fake-scenario"] = ",".join(scenarios)
    for option, header in (("chunk_delay_ms", "x-fake-chunk-delay-ms"), ("retry_after", "x-fake-retry-after"),
                           ("first_chunk_delay_ms", "x-fake-first-chunk-delay-ms"), ("chunks", "x-fake-chunks")):
        value = getattr(args, option)
        if value is not None:
            headers[header] = str(value)
    return headers


def banner(origin: str, provider: str, bases: dict[str, str], defaults: dict[str, str]) -> str:
    """What is printed at start-up: a comment, then the lines to export (a shell can source it)."""
    base = origin + bases[provider]
    variable, sdk_adds = SDK_HINTS.get(provider, ("LLM_BASE_URL", ""))
    sdk_base = base.removesuffix(sdk_adds) if sdk_adds else base
    served = ", ".join(f"{name} at {path}" for name, path in sorted(bases.items()))
    lines = [f"# fake LLM API on {origin} ({served}); Ctrl-C stops it"]
    if defaults:
        lines.append("# every request: " + ", ".join(f"{k}: {v}" for k, v in defaults.items()))
    lines.append(f"export {variable}={sdk_base}")
    lines.append(f"export OR_MIDDLEWARE_LLM_HOSTS={provider}={base}")
    return "\n".join(lines)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as exc:
        print(f"or-middleware fake-upstream needs the demo extra: pip install 'or-middleware[demo]' ({exc})",
              file=sys.stderr)
        return 2
    from or_middleware.demo.fake_upstream import create_fake_upstream

    bases = provider_bases()
    if args.provider not in bases:
        print(f"--provider {args.provider}: the fake serves {', '.join(sorted(bases))}", file=sys.stderr)
        return 2
    defaults = defaults_of(args)
    port = args.port or _free_port(args.host)
    host = f"[{args.host}]" if ":" in args.host else args.host
    origin = f"http://{host}:{port}"
    app = create_fake_upstream(defaults, keep=1000)  # a long-running fake keeps only recent requests
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_level="warning",
                                           access_log=False))

    def announce_when_listening() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if server.started:
            print(banner(origin, args.provider, bases, defaults), flush=True)

    threading.Thread(target=announce_when_listening, daemon=True).start()
    server.run()
    return 0 if server.started else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8766,
                        help="port to listen on; 0 picks a free one (default: 8766, beside the ui's 8765)")
    parser.add_argument("--provider", default="openrouter", metavar="NAME",
                        help="whose base URL to print: " + ", ".join(sorted(provider_bases())) +
                        " (default: openrouter; every format is served either way)")
    parser.add_argument("--scenario", action="append", default=[], metavar="NAME[,NAME]",
                        help="a scenario (above) for every request; repeatable")
    parser.add_argument("--error", type=int, metavar="STATUS", help="answer every call with this HTTP status")
    parser.add_argument("--retry-after", type=int, metavar="SECONDS",
                        help="Retry-After of 429 and 503 answers (default: 1)")
    parser.add_argument("--first-chunk-delay-ms", type=int, metavar="MS", help="wait before a stream's first event")
    parser.add_argument("--chunk-delay-ms", type=int, metavar="MS", help="wait before every stream event")
    parser.add_argument("--chunks", type=int, metavar="N", help="stream N content chunks (the answer is padded)")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "fake-upstream", help="serve a fake OpenRouter/OpenAI/Anthropic API for offline tries and tests",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="or-middleware fake-upstream", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
