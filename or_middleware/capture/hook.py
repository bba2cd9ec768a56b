"""The switch for every HTTP client seam: httpx and httpx2 (``httpx_hook``), requests
(``requests_hook``) and aiohttp (``aiohttp_hook``), each an adapter onto the shared call
lifecycle (``lifecycle``).

Installation is idempotent and reversible (``uninstall`` puts back every original function, by
identity), for clients created before or after it.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from wrapt import register_post_import_hook

from or_middleware.capture import aiohttp_hook, httpx_hook, requests_hook

logger = logging.getLogger(__name__)

HTTPX_MODULES = ("httpx", "httpx2")
# Each client is patched when it is imported (at once if it already is): the middleware never
# imports a client library the app does not use (requests, httpx v1, aiohttp cost memory and
# start-up time). wrapt's post-import hooks (the mechanism OpenTelemetry's instrumentations use)
# call us at the end of the client's own import, on the importing thread.
SEAM_MODULES = (*HTTPX_MODULES, "requests", "aiohttp")
_lock = threading.RLock()
# (class, attribute) -> the original function, restored by uninstall()
_originals: dict[tuple[type, str], Callable[..., Any]] = {}
_switched_off = False  # uninstall() was called: middleware built later does not reinstall
_active = False  # install() was called and uninstall() was not since: patch clients as they are imported
_awaiting: set[str] = set()  # clients with a post-import hook registered that has not fired yet


def _patch(cls: type, attribute: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    current = getattr(cls, attribute)
    if (cls, attribute) in _originals or getattr(current, "__or_middleware_original__", None) is not None:
        return  # already ours
    _originals[(cls, attribute)] = current
    setattr(cls, attribute, wrap(current))


def _patch_client(module: ModuleType) -> None:
    """Patch one client library's seams (idempotent). Called with ``_lock`` held."""
    if module.__name__ == "requests":
        requests_hook.install()
    elif module.__name__ == "aiohttp":
        aiohttp_hook.install()
    else:  # httpx2.alias_httpx() makes both names one module: _patch skips what is ours already
        for cls, attribute, wrap in httpx_hook.seams(module):
            _patch(cls, attribute, wrap)


def _client_imported(module: ModuleType) -> None:
    """Post-import hook: runs inside the app's import of the client, so it must never raise."""
    name = module.__name__
    try:
        # another thread may still be running the client's import: wait for it to complete
        module = importlib.import_module(name)
        with _lock:
            _awaiting.discard(name)
            if _active:
                _patch_client(module)
    except ImportError:  # the client's own import failed: nothing to trace
        return
    except Exception:
        logger.warning("or_middleware: could not trace %s calls (its internals may have moved)", name,
                       exc_info=True)


def install(*, by_middleware: bool = False) -> None:
    """Install every seam (httpx, httpx2, requests, aiohttp). Safe to call any number of times.

    A client that is not imported yet is patched when the app imports it. A middleware calls this
    when it is built; after an explicit :func:`uninstall` only an explicit ``install()`` turns the
    hook on again.
    """
    global _switched_off, _active
    with _lock:
        if by_middleware and _switched_off:
            return
        _switched_off = False
        _active = True
        awaiting = [name for name in SEAM_MODULES if name not in _awaiting]
        _awaiting.update(awaiting)
    # Outside the lock: a hook may fire at once (client already imported) and wait for an import
    # running on another thread, whose own hook needs the lock.
    for name in awaiting:
        register_post_import_hook(_client_imported, name)
    for name in SEAM_MODULES:  # imported before (or while) the hooks were registered
        module = sys.modules.get(name)
        if module is not None:
            _client_imported(module)


def uninstall() -> None:
    """Put every patched function back exactly as it was."""
    global _switched_off, _active
    with _lock:
        _switched_off = True
        _active = False
        for (cls, attribute), original in _originals.items():
            setattr(cls, attribute, original)
        _originals.clear()
        requests_hook.uninstall()
        aiohttp_hook.uninstall()


def installed() -> bool:
    return _active
