"""Serve an ASGI app with uvicorn on loopback in a background thread (demo, tests, benchmarks)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

STARTUP_TIMEOUT_S = 10.0


@contextlib.contextmanager
def serve_asgi(app: Any, *, lifespan: str = "on", graceful_timeout: float = 2.0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port); yields ``http://127.0.0.1:PORT``.

    ``lifespan="on"`` runs startup/shutdown (so flush-on-shutdown is exercised);
    streams still open at exit are cut after ``graceful_timeout`` seconds.
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout,
    )
    server = uvicorn.Server(config)
    # uvicorn installs signal handlers only on the main thread, so a worker thread is safe.
    thread = threading.Thread(target=server.run, name="serve_asgi", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start (see its log above, e.g. a lifespan failure)")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(graceful_timeout + 10)
