"""An OTLP/HTTP receiver that refuses what a vendor's intake refuses.

    with VendorReceiver("/api/42/integration/otlp/v1/traces", {"x-sentry-auth": "sentry sentry_key=k"}) as rx:
        ...
    # another path -> 404, a missing or different auth header -> 401, another encoding -> 415

The expectations come from each vendor's documentation (cited where tests build them); a request
that passes them is decoded and recorded like OTLPReceiver's.
"""

from __future__ import annotations

from typing import Any

from .otlp_receiver import OTLPReceiver
from .otlp_spans import OTLPRequest


class VendorReceiver(OTLPReceiver):
    def __init__(self, path: str, headers: dict[str, str], content_type: str = "application/x-protobuf",
                 **behaviour: Any) -> None:
        super().__init__(**behaviour)
        self.path = path
        self.expected_headers = {k.lower(): v for k, v in headers.items()}
        self.content_type = content_type

    def judge(self, request: OTLPRequest) -> tuple[int, str] | None:
        if request.path != self.path:
            return 404, f"no intake at {request.path}"
        for name, value in self.expected_headers.items():
            if request.headers.get(name) != value:
                return 401, f"header {name} missing or wrong"  # never echo the value
        if not request.headers.get("content-type", "").startswith(self.content_type):
            return 415, f"expected {self.content_type}"
        return None
