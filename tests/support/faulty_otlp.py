"""An OTLP/HTTP receiver that can also misbehave below HTTP: answer garbage bytes, or close the
connection in the middle of its response. Everything else is RestartableOTLPReceiver's
(``respond(status=..., retry_after=..., delay=..., blackhole=..., times=...)``, ``stop()`` /
``start()`` on the same port for a destination that is down).

    with FaultyOTLPReceiver() as rx:
        rx.respond_raw("garbage", times=2)     # the next two requests get bytes that are not HTTP
        rx.respond_raw("close_mid", times=1)   # a status line, half a body, then the socket closes
"""

from __future__ import annotations

import threading
from typing import Literal

from .capture_receiver import RestartableOTLPReceiver
from .otlp_receiver import _Handler, _Server
from .otlp_spans import OTLPRequest

RawFault = Literal["garbage", "close_mid"]


class _FaultyHandler(_Handler):
    def do_POST(self) -> None:
        store = self.server.store
        fault = store._take_raw() if isinstance(store, FaultyOTLPReceiver) else None
        if fault is None:
            super().do_POST()
            return
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        store._record(OTLPRequest(path=self.path, headers=headers, body=body), accepted=False)
        if fault == "garbage":
            self.wfile.write(b"\x00\xff\xfeSPDY/9 NOT HTTP\r\n\x00\x00\r\n\r\n")
        else:
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 64\r\n\r\n"
                             b"\x0a\x02")
        self.wfile.flush()
        self.close_connection = True


class FaultyOTLPReceiver(RestartableOTLPReceiver):
    def __init__(self) -> None:
        super().__init__()
        self._server.RequestHandlerClass = _FaultyHandler
        self._raw: RawFault | None = None
        self._raw_times = 0
        self._raw_lock = threading.Lock()

    def respond_raw(self, fault: RawFault, *, times: int) -> None:
        with self._raw_lock:
            self._raw, self._raw_times = fault, times

    def _take_raw(self) -> RawFault | None:
        with self._raw_lock:
            if self._raw is None or self._raw_times <= 0:
                return None
            self._raw_times -= 1
            return self._raw

    def start(self) -> None:
        if self._server_up is None:
            self._server_up = self._server = _Server(("127.0.0.1", self.port), _FaultyHandler)
            self._server.store = self
        super().start()
