"""A destination's credentials never in what we write: log lines, CLI output, spool files.

:class:`CredentialSafeTransport` wraps a destination's transport: its ``target`` (what the
destination-down warning, the refusal error and ``or-middleware check`` print) is the URL
without user info or sensitive query values, and every outcome's ``reason`` has each configured
credential (header values, API keys, URL user info, ``?api_key=``) replaced by ``[SECRET]`` (a
collector echoing our key in its error body, a client library quoting the URL in an exception).
While it sends, httpx's own ``HTTP Request: POST <url>`` log line (INFO, shown by many apps'
logging setups) is redacted the same way; the app's own requests' lines are left as they are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import replace

from or_middleware.export.transports import SendResult, Transport
from or_middleware.secrets import redact_known, safe_url

_sending = threading.local()  # .credentials: those of the transport sending on this thread


class _OurRequestLines(logging.Filter):
    """On the ``httpx`` logger: a record made while one of our transports sends loses its credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        credentials = getattr(_sending, "credentials", None)
        if credentials:
            try:
                record.msg, record.args = redact_known(record.getMessage(), credentials), ()
            except Exception:  # a record we cannot format is not shown rather than shown raw
                return False
        return True


_filter = _OurRequestLines()


class CredentialSafeTransport:
    def __init__(self, inner: Transport, credentials: Iterable[str]) -> None:
        self.inner = inner
        self.target = safe_url(inner.target)
        self._credentials = tuple(c for c in credentials if c)
        logging.getLogger("httpx").addFilter(_filter)  # idempotent: a filter is added once

    def safe(self, text: str) -> str:
        return safe_url(redact_known(text, self._credentials)) if text else text

    def send(self, body: bytes) -> SendResult:
        _sending.credentials = self._credentials
        try:
            result = self.inner.send(body)
        finally:
            _sending.credentials = None
        if result.reason:
            clean = self.safe(result.reason)
            if clean != result.reason:
                return replace(result, reason=clean)
        return result

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> object:  # anything else a transport offers (bounds, stats)
        return getattr(self.inner, name)
