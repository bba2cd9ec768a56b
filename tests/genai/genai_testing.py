"""Shared helpers for the genai tests: fixture loading, running bytes through the observer.

A uniquely named module rather than a conftest, so it cannot clash with other test packages.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from or_middleware.genai.formats import WireFormat
from or_middleware.genai.record import GenerationRecord
from or_middleware.genai.response import ResponseObserver

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# Fields that depend on when bytes arrived, not on what they were.
TIMING_FIELDS = frozenset({"started_at", "time_to_first_chunk"})


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def observe(
    fmt: WireFormat,
    body: bytes | Iterable[bytes],
    *,
    status: int = 200,
    content_type: str | None = "text/event-stream",
    content_encoding: str | None = None,
    capture: bool = True,
    request: dict[str, Any] | None = None,
    provider: str = "openai",
    **observer_options: Any,
) -> GenerationRecord:
    """Feed a response body through a ResponseObserver; chunk i arrives at time 1.0 + i."""
    record = GenerationRecord(provider=provider, operation=fmt.operation, capture_content=capture)
    if request is not None:
        fmt.read_request(request, record)
    observer = ResponseObserver(
        fmt,
        record,
        status_code=status,
        content_type=content_type,
        content_encoding=content_encoding,
        **observer_options,
    )
    chunks = [body] if isinstance(body, bytes) else list(body)
    for i, chunk in enumerate(chunks):
        observer.feed(chunk, 1.0 + i)
    observer.finish(1.0 + len(chunks))
    return record


def comparable(record: GenerationRecord) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(record).items() if k not in TIMING_FIELDS}


def per_event(raw: bytes) -> list[bytes]:
    """The stream cut after every blank line: one SSE event (or comment block) per chunk."""
    return [piece for piece in re.split(rb"(?<=\n\n)", raw) if piece]
