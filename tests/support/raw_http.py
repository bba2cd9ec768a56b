"""A loopback HTTP/1.1 server whose answers are scripts writing raw bytes to the socket.

For what a well-behaved framework cannot send: resets mid-stream, stalls, invalid chunk
framing, chunk extensions and trailers, bodies of 100 MB produced on the fly. Each script
gets the parsed request and the connection and writes whatever it likes; the connection is
closed after the script returns (every answer carries ``Connection: close`` unless the script
says otherwise), so scripts never have to think about keep-alive.

    with RawHTTPServer() as server:
        path = server.route(lambda request, conn: send_response(conn, 200, {}, [b"hi"]))
        httpx.post(server.url + path + "/chat/completions", json={...})
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType


@dataclass
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


Script = Callable[[RawRequest, socket.socket], None]


def _read_until(conn: socket.socket, buffer: bytearray, marker: bytes) -> int:
    while (at := buffer.find(marker)) < 0:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("client closed")
        buffer += data
    return at


def _read_exactly(conn: socket.socket, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("client closed")
        buffer += data
    out = bytes(buffer[:size])
    del buffer[:size]
    return out


def read_request(conn: socket.socket) -> RawRequest:
    buffer = bytearray()
    end = _read_until(conn, buffer, b"\r\n\r\n")
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    del buffer[: end + 4]
    method, path, _ = head[0].split(" ", 2)
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            at = _read_until(conn, buffer, b"\r\n")
            size = int(bytes(buffer[:at]).split(b";")[0], 16)
            del buffer[: at + 2]
            if size == 0:
                _read_until(conn, buffer, b"\r\n")  # no trailers from our clients
                break
            body += _read_exactly(conn, buffer, size + 2)[:-2]
        return RawRequest(method, path, headers, bytes(body))
    length = int(headers.get("content-length") or 0)
    return RawRequest(method, path, headers, _read_exactly(conn, buffer, length))


def head_bytes(status: int, headers: dict[str, str], *, reason: str = "X") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes, *, extension: str = "", upper: bool = False, pad: int = 0) -> bytes:
    """One chunk of ``Transfer-Encoding: chunked``, optionally with ``;ext``, upper-case hex or leading zeros."""
    size = f"{len(data):0{pad}x}"
    return (size.upper() if upper else size).encode() + extension.encode() + b"\r\n" + data + b"\r\n"


def send_response(
    conn: socket.socket,
    status: int,
    headers: dict[str, str],
    body: Iterable[bytes],
    *,
    chunked: bool = True,
) -> None:
    """A normal answer: each body piece as its own chunk (or Content-Length when not chunked)."""
    headers = {"connection": "close", **headers}
    if chunked:
        conn.sendall(head_bytes(status, {**headers, "transfer-encoding": "chunked"}))
        for piece in body:
            if piece:
                conn.sendall(chunk(piece))
        conn.sendall(b"0\r\n\r\n")
    else:
        data = b"".join(body)
        conn.sendall(head_bytes(status, {**headers, "content-length": str(len(data))}))
        conn.sendall(data)


def reset(conn: socket.socket) -> None:
    """Close with RST instead of FIN: the peer's next read fails with ECONNRESET."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class RawHTTPServer:
    """Threaded loopback server; ``route(script)`` returns a path prefix that runs ``script``."""

    def __init__(self, *, keep_requests: bool = True) -> None:
        self.keep_requests = keep_requests  # False for long runs: ``received`` would grow without end
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[RawRequest] = []
        self.released = threading.Event()  # set on close: stalled scripts wake up and return
        self._scripts: dict[str, Script] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="raw-http", daemon=True)

    def route(self, script: Script) -> str:
        with self._lock:
            key = f"s{next(self._ids)}"
            self._scripts[key] = script
        return f"/{key}"

    def __enter__(self) -> RawHTTPServer:
        self._accepter.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.released.set()
        self._accepter.join(5)
        self._sock.close()
        for thread in list(self._threads):
            thread.join(5)

    def _accept(self) -> None:
        while not self.released.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), name="raw-http-conn", daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            request = read_request(conn)
            with self._lock:
                if self.keep_requests:
                    self.received.append(request)
                script = self._scripts.get(request.path.split("/", 2)[1])
            if script is None:
                send_response(conn, 404, {"content-type": "text/plain"}, [b"no such script"], chunked=False)
            else:
                script(request, conn)
        except OSError:
            pass  # the client went away: part of several fault scripts
        finally:
            with contextlib.suppress(OSError):
                conn.close()
