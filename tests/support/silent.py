"""Ports that accept connections and never answer a byte: a hung server, a blackholed peer.

    with silent_ports(3) as ports:
        ...  # connect to 127.0.0.1:<port>: the connection is accepted, nothing ever comes back
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def silent_ports(count: int = 1) -> Iterator[list[int]]:
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept(listener: socket.socket) -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # accepted, never answered
            except TimeoutError:
                continue
            except OSError:  # closed at the end
                return

    for listener in listeners:
        threading.Thread(target=accept, args=(listener,), daemon=True).start()
    try:
        yield [listener.getsockname()[1] for listener in listeners]
    finally:
        stop.set()
        for conn in [*held, *listeners]:
            conn.close()
