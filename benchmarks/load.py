"""A small HTTP/1.1 load generator on asyncio streams (keep-alive, chunked bodies).

Deliberately minimal and cheap, so that the client costs little CPU on a 2-core machine
and every contender is driven by exactly the same bytes. Only what uvicorn sends is
handled: ``Content-Length`` or ``Transfer-Encoding: chunked`` bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    body_bytes: int
    ttfb: float  # seconds from the first byte sent to the first body byte received
    total: float  # seconds from the first byte sent to the last body byte received


class Connection:
    """One keep-alive connection; requests on it are sequential."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        if self._writer is None:
            await self._open()
        assert self._reader is not None and self._writer is not None
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}\r\n".encode()
        reader = self._reader
        started = time.perf_counter()
        self._writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length: int | None = None
        chunked = False
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and "close" in value.lower():
                close = True
        ttfb = 0.0
        size = 0
        if chunked:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                n = int(size_line.split(b";", 1)[0], 16)
                if n == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data = await reader.readexactly(n + 2)
                if not ttfb:
                    ttfb = time.perf_counter() - started
                size += len(data) - 2
        elif length:
            await reader.readexactly(length)
            ttfb = time.perf_counter() - started
            size = length
        total = time.perf_counter() - started
        if close:
            await self.close()
        return Reply(status, size, ttfb or total, total)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def run_requests(
    host: str,
    port: int,
    path: str,
    count: int,
    *,
    concurrency: int = 1,
    headers: dict[str, str] | None = None,
) -> tuple[list[Reply], float]:
    """``count`` GETs of ``path`` over ``concurrency`` keep-alive connections; (replies, wall seconds)."""
    replies: list[Reply] = []
    remaining = count

    async def client() -> None:
        nonlocal remaining
        conn = Connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                reply = await conn.get(path, headers)
                if reply.status != 200:
                    raise RuntimeError(f"GET {path} answered {reply.status}")
                replies.append(reply)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(min(concurrency, count))))
    return replies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; ``values`` need not be sorted."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
