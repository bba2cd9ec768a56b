"""Run real ASGI/WSGI apps on loopback in a background thread, for tests that need real sockets."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from waitress import wasyncore
from waitress.server import create_server

STARTUP_TIMEOUT = 10.0


@contextlib.contextmanager
def serve_asgi(app: Any, *, lifespan: str = "on", graceful_timeout: float = 2.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (free port); yields ``http://127.0.0.1:PORT``.

    ``lifespan="on"`` runs startup/shutdown (so middleware flush-on-shutdown is exercised);
    streams still open at exit are cut after ``graceful_timeout`` seconds.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan=lifespan, log_level="warning",
                            access_log=False, timeout_graceful_shutdown=graceful_timeout)
    server = uvicorn.Server(config)
    # uvicorn only installs signal handlers on the main thread, so a worker thread is safe.
    thread = threading.Thread(target=server.run, name="serve_asgi", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
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


@contextlib.contextmanager
def serve_wsgi(app: Callable[..., Any], *, threads: int = 8) -> Iterator[str]:
    """Serve ``app`` with waitress on 127.0.0.1 (free port); yields ``http://127.0.0.1:PORT``.

    Streaming works: waitress (send_bytes=1 by default in 3.x) writes each chunk the app yields.
    """
    server: Any = create_server(app, host="127.0.0.1", port=0, threads=threads)
    stop = threading.Event()

    def run() -> None:
        # Our own loop (instead of server.run()) so the serving thread itself closes every
        # socket on exit; closing them from another thread races with select().
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        for dispatcher in list(server._map.values()):
            dispatcher.close()

    thread = threading.Thread(target=run, name="serve_wsgi", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop.set()
        thread.join(5)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
