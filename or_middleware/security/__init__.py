"""Security signals, computed on the exporter side: long prompts, bursts, injection phrasings,
model switching and cost spikes, each a span event ``or_middleware.security.<kind>``."""

from or_middleware.security.events import EVENT_PREFIX, signal_event
from or_middleware.security.monitor import SIGNAL_KINDS, SecurityMonitor, SecuritySignal

__all__ = ["EVENT_PREFIX", "SIGNAL_KINDS", "SecurityMonitor", "SecuritySignal", "signal_event"]
