"""The switch for every HTTP client seam: httpx and httpx2 (``httpx_hook``), requests
(``requests_hook``) and aiohttp (``aiohttp_hook``), each an adapter onto the shared call
lifecycle (``lifecycle``).

Installation is idempotent and reversible (``uninstall`` puts back every original function, by
identity), for clients created before or after it.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from or_middleware.capture import aiohttp_hook, httpx_hook, requests_hook

logger = logging.getLogger(__name__)

HTTPX_MODULES = ("httpx", "httpx2")
_lock = threading.Lock()
# (class, attribute) -> the original function, restored by uninstall()
_originals: dict[tuple[type, str], Callable[..., Any]] = {}
_switched_off = False  # uninstall() was called: middleware built later does not reinstall


def _patch(cls: type, attribute: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    current = getattr(cls, attribute)
    if (cls, attribute) in _originals or getattr(current, "__or_middleware_original__", None) is not None:
        return  # already ours
    _originals[(cls, attribute)] = current
    setattr(cls, attribute, wrap(current))


def install(*, by_middleware: bool = False) -> None:
    """Install every seam (httpx, httpx2, requests, aiohttp). Safe to call any number of times.

    A middleware calls this when it is built; after an explicit :func:`uninstall` only an
    explicit ``install()`` turns the hook on again.
    """
    global _switched_off
    with _lock:
        if by_middleware and _switched_off:
            return
        _switched_off = False
        seen: set[int] = set()
        for name in HTTPX_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if id(module) in seen:  # httpx2.alias_httpx() makes both names one module
                continue
            seen.add(id(module))
            for cls, attribute, wrap in httpx_hook.seams(module):
                _patch(cls, attribute, wrap)
        requests_hook.install()
        aiohttp_hook.install()


def uninstall() -> None:
    """Put every patched function back exactly as it was."""
    global _switched_off
    with _lock:
        _switched_off = True
        for (cls, attribute), original in _originals.items():
            setattr(cls, attribute, original)
        _originals.clear()
        requests_hook.uninstall()
        aiohttp_hook.uninstall()


def installed() -> bool:
    return bool(_originals)
