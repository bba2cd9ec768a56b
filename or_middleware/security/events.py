"""Security signals as span events: ``or_middleware.security.<kind>`` with the evidence as attributes."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import Event

from or_middleware.security.monitor import SecuritySignal
from or_middleware.spans import SECURITY_EXCERPT

EVENT_PREFIX = "or_middleware.security."
KIND = EVENT_PREFIX + "kind"


def signal_event(signal: SecuritySignal, timestamp: int) -> Event:
    attributes: dict[str, Any] = {KIND: signal.kind}
    for key, value in signal.evidence.items():
        attributes[EVENT_PREFIX + key] = value
    if signal.excerpt is not None:
        attributes[SECURITY_EXCERPT] = signal.excerpt  # a content attribute: privacy filters drop it
    return Event(EVENT_PREFIX + signal.kind, attributes, timestamp)


def evidence_of(attributes: dict[str, Any]) -> dict[str, Any]:
    """The evidence of a received event, keys without the prefix (what the local store keeps)."""
    return {
        key.removeprefix(EVENT_PREFIX): value
        for key, value in attributes.items()
        if key.startswith(EVENT_PREFIX) and key != KIND
    }
