"""The price table is loaded at start-up on a thread of its own, off the request path, fork-safe.

Loading genai-prices' bundled table takes a few tenths of a second, too long for the first LLM
call to wait, so building the middleware starts :func:`warm_up` in the background. A server
that forks its workers right after building the app (``gunicorn --preload``) could fork in the
middle of that import: the child would hold a half-initialised module and fail every price
lookup. So a fork first waits for the warm-up (at most :data:`FORK_WAIT_S`), and a child forked
without it forgets the half-done import, so its first priced call loads the table again.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading

FORK_WAIT_S = 10.0
_lock = threading.Lock()
_thread: threading.Thread | None = None
_cut_by_fork = False  # the last fork happened while the warm-up was still running


def _load() -> None:
    try:
        from or_middleware.genai.cost import _snapshot

        _snapshot()
    except Exception:
        from or_middleware.capture.call import log_once

        log_once("price table load")


def warm_up() -> None:
    """Load the price table in the background (a no-op once it is loaded: the table is cached)."""
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(target=_load, name="or_middleware-prices", daemon=True)
        _thread.start()


def _before_fork() -> None:
    global _cut_by_fork
    thread = _thread
    if thread is not None and thread.is_alive() and thread is not threading.current_thread():
        thread.join(FORK_WAIT_S)  # os.fork() runs this before it takes the import lock
    _cut_by_fork = thread is not None and thread.is_alive()


def _after_fork_in_child() -> None:
    if not _cut_by_fork:
        return
    # Half imported by the parent's warm-up thread, which does not exist here: forget the module
    # and the import lock that thread held (CPython's per-module lock; never released in this
    # process, the next import of the module would wait on it forever).
    module_locks = getattr(importlib._bootstrap, "_module_locks", {})  # type: ignore[attr-defined]
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "genai_prices" and getattr(getattr(module, "__spec__", None), "_initializing", False):
            del sys.modules[name]
            module_locks.pop(name, None)


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
