"""More real servers on loopback for the framework and deployment tests: hypercorn in a thread,
and any server command (gunicorn, uvicorn --workers) as a child process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_hypercorn(app: Any) -> Iterator[str]:
    """Serve an ASGI app with hypercorn (HTTP/1.1, and h2c for clients with prior knowledge)."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the listening socket
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    done = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        finally:
            loop.close()
            done.set()

    thread = threading.Thread(target=run, name="serve_hypercorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, alive=thread.is_alive)
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        done.wait(10)


def wait_until_serving(url: str, *, alive: Any = None, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Until something answers HTTP on ``url`` (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url + "/__ready__", timeout=1.0)
            return
        except httpx.TransportError:
            pass
        if (alive is not None and not alive()) or time.monotonic() > deadline:
            raise RuntimeError(f"nothing served {url} within {timeout}s")
        time.sleep(0.05)


@contextlib.contextmanager
def serve_command(argv: Sequence[str], port: int, env: Mapping[str, str]) -> Iterator[str]:
    """Run a server command (listening on ``port``) as a child process, from the repository root.

    Stops it with SIGTERM (the servers' graceful shutdown, which flushes our exporters) and
    fails loudly with its output if it does not start.
    """
    python_path = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(REPO_ROOT)) if p)
    full_env = {**os.environ, **env, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        list(argv), cwd=REPO_ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_serving(url, alive=lambda: process.poll() is None)
        except RuntimeError:
            process.kill()
            output = process.communicate(timeout=10)[0].decode(errors="replace")
            raise RuntimeError(f"{argv[0]} did not start:\n{output[-4000:]}") from None
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if process.stdout is not None:
            process.stdout.close()


def venv_command(name: str) -> str:
    """A console script of the interpreter running the tests (gunicorn, uvicorn, opentelemetry-instrument)."""
    return str(Path(sys.executable).parent / name)
