"""Helpers for the seam tests: wait for exactly N GenAI spans; run something with the hook off."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import or_middleware


def genai_span_waiter(receiver: Any) -> Callable[[int], list[Any]]:
    """A function that waits for ``count`` GenAI spans and checks no more arrive (each ended once)."""

    def wait(count: int = 1) -> list[Any]:
        or_middleware.force_flush()
        spans = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=count)
        time.sleep(0.1)
        or_middleware.force_flush()  # anything late (a double span) would arrive now
        assert len([s for s in receiver.spans if s.scope == "or_middleware"]) == count
        return spans

    return wait


def without_hook(action: Callable[[], Any]) -> Any:
    """``action()`` with every seam uninstalled (the bare client), then the seams back."""
    or_middleware.uninstrument()
    try:
        return action()
    finally:
        or_middleware.instrument()


def normalised(data: bytes) -> bytes:
    """The fake stamps ids and wall-clock seconds; everything else must match to the byte."""
    import re

    data = re.sub(rb'"created": ?\d+', b'"created":0', data)
    data = re.sub(rb'"id": ?"(gen|chatcmpl)-[^"]*"', b'"id":"X"', data)
    return re.sub(rb"gen-\d+-fake", b"gen-N-fake", data)
