"""Test infrastructure: real loopback servers, OTLP receivers, and the fake LLM upstream."""

from or_middleware.demo.fake_upstream import ReceivedRequest, create_fake_upstream

from .otlp_receiver import OTLPGrpcReceiver, OTLPReceiver, OTLPRequest, ReceivedSpan
from .servers import serve_asgi, serve_wsgi
from .sse import parse_sse

__all__ = [
    "OTLPGrpcReceiver",
    "OTLPReceiver",
    "OTLPRequest",
    "ReceivedRequest",
    "ReceivedSpan",
    "create_fake_upstream",
    "parse_sse",
    "serve_asgi",
    "serve_wsgi",
]
