"""A plain HTTP receiver on loopback that records every POST (PostHog's ``/batch/`` in tests),
and an OTLP receiver that can be stopped and started again on the same port (outage tests).

    with CaptureReceiver() as rx:                   # rx.url == "http://127.0.0.1:PORT"
        ...post...
        [request] = rx.wait_for_requests()
        request.path, request.headers["content-type"], request.json
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .otlp_receiver import OTLPReceiver, _Handler, _Server


@dataclass
class CapturedRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _CaptureHandler(BaseHTTPRequestHandler):
    server: _CaptureServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        receiver = self.server.receiver
        status = receiver._record(CapturedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        payload = b'{"status": 1}' if status < 300 else b'{"error": "fault"}'
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _CaptureServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: CaptureReceiver


class CaptureReceiver:
    def __init__(self, status: int = 200) -> None:
        self.requests: list[CapturedRequest] = []
        self.status = status
        self._cond = threading.Condition()
        self._server = _CaptureServer(("127.0.0.1", 0), _CaptureHandler)
        self._server.receiver = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def _record(self, request: CapturedRequest) -> int:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
            return self.status

    def wait_for_requests(self, count: int = 1, timeout: float = 10.0) -> list[CapturedRequest]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            if len(self.requests) < count:
                raise AssertionError(f"wanted {count} request(s), got {len(self.requests)}")
            return list(self.requests)

    def __enter__(self) -> CaptureReceiver:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class RestartableOTLPReceiver(OTLPReceiver):
    """An :class:`OTLPReceiver` that keeps what it received across :meth:`stop` / :meth:`start`,
    on the same port: while stopped, connections are refused, as for a destination that is down."""

    def __init__(self) -> None:
        super().__init__()
        self.port = self._server.server_address[1]
        self._server_up: _Server | None = self._server  # bound, not yet serving

    def start(self) -> None:
        if self._server_up is None:
            self._server_up = self._server = _Server(("127.0.0.1", self.port), _Handler)
            self._server.store = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server_up is not None:
            if self._thread.is_alive():
                self._server_up.shutdown()
                self._thread.join(5)
            self._server_up.server_close()
            self._server_up = None

    def __enter__(self) -> RestartableOTLPReceiver:
        self.start()
        return self

    def close(self) -> None:
        self._released.set()
        self.stop()
