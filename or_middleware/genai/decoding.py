"""Content-Encoding decoders for our parser's private copy of the response bytes.

The app still receives exactly what httpx gives it; these only let us read a body that is
still compressed at the transport seam. Each decoder pushes its output to a sink in slices
of at most ``STEP`` bytes, so the sink can stop a decompression bomb after the first slice
past its budget instead of after the whole expansion.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["STEP", "ContentDecoder", "UnsupportedEncoding", "decoder_for"]

STEP = 64 * 1024

Sink = Callable[[bytes], None]


class UnsupportedEncoding(Exception):
    """The response uses a coding we cannot (or may not safely) decode."""


class ContentDecoder(Protocol):
    def feed(self, data: bytes, sink: Sink) -> None: ...

    def flush(self, sink: Sink) -> None: ...


class _ZlibDecoder:
    """gzip (also several concatenated members) and deflate (zlib-wrapped or, as some servers
    send it, raw)."""

    def __init__(self, wbits: int, *, sniff_raw: bool) -> None:
        self._wbits = wbits
        self._head: bytes | None = b"" if sniff_raw else None  # bytes held until we can sniff
        self._obj: Any = zlib.decompressobj(wbits)

    def feed(self, data: bytes, sink: Sink) -> None:
        if self._head is not None:
            # "deflate" should carry a 2-byte zlib header; without a valid one it is raw
            # deflate. The header may arrive split across chunks, so wait for both bytes.
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = None
            cmf, flg = data[0], data[1]
            if cmf & 0x0F != 8 or (cmf << 8 | flg) % 31:
                self._wbits = -zlib.MAX_WBITS
                self._obj = zlib.decompressobj(self._wbits)
        self._feed(data, sink)

    def _feed(self, data: bytes, sink: Sink) -> None:
        while True:
            out = self._obj.decompress(data, STEP)
            if out:
                sink(out)
            data = self._obj.unconsumed_tail
            if self._obj.eof:
                rest = self._obj.unused_data
                if not rest:
                    return
                self._obj = zlib.decompressobj(self._wbits)  # next gzip member
                data = rest
                continue
            # A full slice with no input left may still leave output buffered inside zlib.
            if not data and len(out) < STEP:
                return

    def flush(self, sink: Sink) -> None:
        if self._head:  # a one-byte body: let zlib judge it
            head, self._head = self._head, None
            self._feed(head, sink)


class _BrotliDecoder:
    def __init__(self) -> None:
        try:
            import brotli  # optional dependency
        except ImportError as exc:
            raise UnsupportedEncoding("br") from exc
        self._obj = brotli.Decompressor()
        if not hasattr(self._obj, "can_accept_more_data"):
            # Before brotli 1.2 there is no output limit, so one small chunk could expand
            # without bound before we see it: refuse rather than risk it.
            raise UnsupportedEncoding("br")

    def feed(self, data: bytes, sink: Sink) -> None:
        out = self._obj.process(data, output_buffer_limit=STEP)
        if out:
            sink(out)
        while not self._obj.can_accept_more_data():
            out = self._obj.process(b"", output_buffer_limit=STEP)
            if not out:
                break
            sink(out)

    def flush(self, sink: Sink) -> None:
        pass


class _ZstdDecoder:
    def __init__(self) -> None:
        try:
            import zstandard  # optional dependency
        except ImportError as exc:
            raise UnsupportedEncoding("zstd") from exc
        self._sink: Sink | None = None
        # stream_writer hands output to write() in STEP-sized pieces as it decodes; a sink
        # that raises stops the decompression there.
        self._writer = zstandard.ZstdDecompressor().stream_writer(self, write_size=STEP)

    def write(self, data: bytes) -> int:
        if self._sink is not None:
            self._sink(bytes(data))
        return len(data)

    def feed(self, data: bytes, sink: Sink) -> None:
        self._sink = sink
        try:
            self._writer.write(data)
        finally:
            self._sink = None

    def flush(self, sink: Sink) -> None:
        pass


class _ChainDecoder:
    """``Content-Encoding: gzip, br`` was applied left to right, so it is undone right to left."""

    def __init__(self, decoders: list[ContentDecoder]) -> None:
        self._decoders = decoders

    def feed(self, data: bytes, sink: Sink) -> None:
        self._feed_from(0, data, sink)

    def _feed_from(self, level: int, data: bytes, sink: Sink) -> None:
        if level == len(self._decoders):
            sink(data)
            return
        self._decoders[level].feed(data, lambda out: self._feed_from(level + 1, out, sink))

    def flush(self, sink: Sink) -> None:
        for level, decoder in enumerate(self._decoders):
            decoder.flush(lambda out, level=level: self._feed_from(level + 1, out, sink))


def _one(coding: str) -> ContentDecoder | None:
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return _ZlibDecoder(32 + zlib.MAX_WBITS, sniff_raw=False)  # 32+: gzip or zlib header
    if coding == "deflate":
        return _ZlibDecoder(zlib.MAX_WBITS, sniff_raw=True)
    if coding == "br":
        return _BrotliDecoder()
    if coding == "zstd":
        return _ZstdDecoder()
    raise UnsupportedEncoding(coding)


def decoder_for(content_encoding: str | None) -> ContentDecoder | None:
    """A decoder for a Content-Encoding header value; None when the body is not encoded.

    Raises UnsupportedEncoding for codings we cannot decode safely.
    """
    if not content_encoding:
        return None
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    decoders = [d for c in reversed(codings) if (d := _one(c)) is not None]
    if not decoders:
        return None
    return decoders[0] if len(decoders) == 1 else _ChainDecoder(decoders)
