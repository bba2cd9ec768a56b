"""Bare run versus traced run: make the same call with the hook uninstalled, then installed,
and return what the app saw each time (status, headers, body bytes — or the exception).

Bodies are compared by length and SHA-256 so a 100 MB answer is never held in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Iterable
from typing import Any, Literal

import httpx

import or_middleware

Read = Literal["raw", "bytes", "whole", "lines", "first_chunk_then_close"]
Outcome = tuple[Any, ...]

SSL = ssl.create_default_context()  # one for every client: building one costs ~10 ms


class Digest:
    def __init__(self) -> None:
        self.size = 0
        self._hash = hashlib.sha256()

    def add(self, data: bytes) -> None:
        self.size += len(data)
        self._hash.update(data)

    def result(self) -> tuple[int, str]:
        return self.size, self._hash.hexdigest()


def _lines(lines: Iterable[str], digest: Digest) -> None:
    for line in lines:
        digest.add(line.encode("utf-8", "surrogatepass") + b"\n")


def outcome_sync(client: httpx.Client, url: str, body: bytes, read: Read, headers: dict[str, str]) -> Outcome:
    digest = Digest()
    try:
        with client.stream("POST", url, content=body, headers=headers) as r:
            if read == "raw":
                for piece in r.iter_raw():
                    digest.add(piece)
            elif read == "bytes":
                for piece in r.iter_bytes():
                    digest.add(piece)
            elif read == "whole":
                digest.add(r.read())
            elif read == "lines":
                _lines(r.iter_lines(), digest)
            else:
                digest.add(next(iter(r.iter_raw()), b""))
            return ("ok", r.status_code, r.headers.multi_items(), digest.result())
    except httpx.HTTPError as exc:
        return ("error", type(exc).__name__, str(exc), digest.result())


async def outcome_async(client: httpx.AsyncClient, url: str, body: bytes, read: Read,
                        headers: dict[str, str]) -> Outcome:
    digest = Digest()
    try:
        async with client.stream("POST", url, content=body, headers=headers) as r:
            if read == "raw":
                async for piece in r.aiter_raw():
                    digest.add(piece)
            elif read == "bytes":
                async for piece in r.aiter_bytes():
                    digest.add(piece)
            elif read == "whole":
                digest.add(await r.aread())
            elif read == "lines":
                async for line in r.aiter_lines():
                    digest.add(line.encode("utf-8", "surrogatepass") + b"\n")
            else:
                async for piece in r.aiter_raw():
                    digest.add(piece)
                    break
            return ("ok", r.status_code, r.headers.multi_items(), digest.result())
    except httpx.HTTPError as exc:
        return ("error", type(exc).__name__, str(exc), digest.result())


def call(url: str, body: bytes, *, read: Read = "raw", use_async: bool = False, timeout: float = 30.0,
         headers: dict[str, str] | None = None) -> Outcome:
    """One call the way an app makes it, with whatever hook state is current."""
    headers = {"content-type": "application/json", **(headers or {})}
    if use_async:
        async def go() -> Outcome:
            async with httpx.AsyncClient(verify=SSL, timeout=timeout) as client:
                return await outcome_async(client, url, body, read, headers)

        return asyncio.run(go())
    with httpx.Client(verify=SSL, timeout=timeout) as client:
        return outcome_sync(client, url, body, read, headers)


def bare_then_traced(url: str, body: bytes, **options: Any) -> tuple[Outcome, Outcome]:
    """The same call without the hook, then with it; the hook is left installed."""
    or_middleware.uninstrument()
    try:
        bare = call(url, body, **options)
    finally:
        or_middleware.instrument()
    return bare, call(url, body, **options)
