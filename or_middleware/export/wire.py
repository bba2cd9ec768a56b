"""Where and how a remote destination's batches go (:class:`WireTarget`), and the small helpers
every preset uses to build one. No dependency on the settings, so presets in any module can use it."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WireTarget:
    """Where and how a remote destination's batches go."""

    url: str
    protocol: str  # http/protobuf | http/json | grpc | posthog
    headers: dict[str, str] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)  # added to every span's resource
    timeout: float = DEFAULT_TIMEOUT_S
    compress: bool = False
    certificate: str | None = None
    client_certificate: tuple[str | None, str | None] = (None, None)
    insecure: bool | None = None  # grpc only; None: from the URL scheme
    method: str = "POST"  # the webhook may PUT


def secret(value: Any) -> str:
    """The plain value of a ``SecretStr`` (or of a plain string)."""
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value or "")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def with_path(base: str, path: str) -> str:
    """``base`` + ``path`` unless the user already gave the full URL."""
    base = base.rstrip("/")
    return base if base.endswith(path.rstrip("/")) else base + path


def timeout_of(dest: Any) -> float:
    return getattr(dest, "timeout", None) or DEFAULT_TIMEOUT_S
