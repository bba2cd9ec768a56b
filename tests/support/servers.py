"""Run real ASGI/WSGI apps on loopback in a background thread, for tests that need real sockets."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from or_middleware.demo.serving import serve_asgi

__all__ = ["serve_asgi", "serve_wsgi"]


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
