"""OTLP/HTTP destinations on loopback for P4 (export never blocks): a healthy one and two broken ones.

- ``ok``: reads each request and answers ``200`` (an empty protobuf body) at once: P4's baseline,
  so the three variants differ only in how the destination behaves (same exporter, same encoding).
- ``blackhole``: accepts connections and never reads or answers.
- ``slow``: reads each request and answers ``200`` after 2 seconds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

SLOW_SECONDS = 2.0


def _read_request(conn: socket.socket) -> bool:
    """Read one HTTP request (headers + Content-Length body); False when the peer closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def _answer(conn: socket.socket, stop: threading.Event, delay_s: float) -> None:
    with conn:
        try:
            while not stop.is_set() and _read_request(conn):
                if delay_s:
                    time.sleep(delay_s)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass


@contextlib.contextmanager
def sink_for(kind: str) -> Iterator[str]:
    """Yields the OTLP traces URL of a broken destination of ``kind``."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if kind == "blackhole":
                held.append(conn)  # never read, never answered, closed at the end
            else:
                delay_s = SLOW_SECONDS if kind == "slow" else 0.0
                threading.Thread(target=_answer, args=(conn, stop, delay_s), daemon=True).start()

    thread = threading.Thread(target=accept, name=f"sink-{kind}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1/traces"
    finally:
        stop.set()
        thread.join(2)
        listener.close()
        for conn in held:
            conn.close()
