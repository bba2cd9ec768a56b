"""Say what is happening: one INFO line at start-up, and (``OR_MIDDLEWARE_DEBUG=1``) one line per
outbound POST that looks like an LLM call, traced or why not.

A new user's first question is "is it on, and where do my spans go?"; the second "why is this
call not traced?". Both are answered in the log, never on stdout, and never with a credential:
targets are shown without user-info, query or headers.

The lines go to the ``or_middleware`` logger. Servers such as uvicorn configure only their own
loggers, so an INFO record of ours would vanish; when nothing in the process handles it (no
handler on our logger or the root logger) it is written to stderr by :class:`_FallbackHandler`.
``logging.getLogger("or_middleware").setLevel(logging.WARNING)`` silences the start-up line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

from or_middleware.capture.detection import BUILTIN_HOSTS
from or_middleware.config import DestinationSettings, Settings
from or_middleware.secrets import safe_url
from or_middleware.terminal import printable
from or_middleware.version import __version__

logger = logging.getLogger("or_middleware")
debug_logger = logging.getLogger("or_middleware.debug")

# OR_MIDDLEWARE_DEBUG: process-wide, since the hook that consults it serves every middleware.
debug_enabled = False

# Paths an LLM API call ends with, whatever the host (so a call to an unknown host is noticed).
LLM_PATH_ENDINGS = (
    "/chat/completions", "/completions", "/responses", "/embeddings", "/messages",
    ":generateContent", ":streamGenerateContent", "/api/chat", "/api/generate", "/v2/chat", "/v1/chat",
    ":embedContent", ":batchEmbedContents", "/api/embed", "/api/embeddings", "/v2/embed",
)


def store_location(path: str) -> str:
    """The local store as a user would look for it: an absolute path, or a database URL without credentials."""
    if "://" in path:
        return safe_url(path)
    return str(Path(path).expanduser().absolute())


def destination_target(dest: DestinationSettings, settings: Settings) -> str:
    """Where a destination's spans go, in full, without credentials."""
    from or_middleware.export.destinations import wire_target

    if dest.kind == "local":
        return store_location(str(getattr(dest, "path", "")))
    if dest.kind == "console":
        return "stderr"
    try:
        target = wire_target(dest, settings)
    except Exception:  # a preset that cannot build its target yet; start-up reports that itself
        target = None
    return safe_url(target.url) if target is not None else f"in-process ({dest.kind})"


def startup_line(settings: Settings) -> str:
    dests = [
        f"{dest.name} -> {destination_target(dest, settings)} "
        f"(privacy {'on' if settings.privacy_for(dest) else 'off'})"
        for dest in settings.destination_settings()
    ]
    known = list(dict.fromkeys(urlsplit(url).hostname or url for _, url in BUILTIN_HOSTS))
    detected = f"{len(known)} known API hosts ({', '.join(known[:3])}, ...)"
    if settings.llm_hosts:
        detected += ", LLM_HOSTS " + ", ".join(f"{h.provider}={safe_url(h.base_url)}" for h in settings.llm_hosts)
    if getattr(settings, "detect", "listed") == "auto":
        detected += ", and any host by request shape"
    return (
        f"or_middleware {__version__}: service {settings.resolved_service_name!r}; "
        f"destinations: {'; '.join(dests) or 'none'}; "
        f"LLM calls detected: {detected}"
        + ("; debug on (OR_MIDDLEWARE_DEBUG)" if settings.debug else "")
    )


def announce_startup(settings: Settings) -> None:
    """The start-up line, and the debug switch. Never raises: a log line must not stop the app."""
    global debug_enabled
    try:
        debug_enabled = debug_enabled or settings.debug
        _make_visible()
        logger.info("%s", startup_line(settings))
    except Exception:
        logger.warning("or_middleware: could not describe the start-up configuration", exc_info=True)


def explain(scheme: str, host: str, port: int | None, path: str, why_not: str | None, how: str = "") -> None:
    """One debug line for an outbound POST: traced (``why_not`` None) or not, and why.
    Calls that do not look like LLM calls are left out, unless they were traced."""
    if why_not is not None and not path.endswith(LLM_PATH_ENDINGS):
        return
    where = printable(f"{scheme}://{host}{f':{port}' if port else ''}{path}")  # a path may hold client text
    if why_not is None:
        debug_logger.info("or_middleware debug: POST %s traced %s", where, how)
    else:
        debug_logger.info("or_middleware debug: POST %s not traced: %s", where, why_not)


class _FallbackHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr, only while the app's logging has no handler of its own for our records."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr  # looked up on each record, as logging.lastResort does (stderr may be replaced)

    @stream.setter
    def stream(self, value: object) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:  # the app configured logging: its handlers get the record
            return
        super().emit(record)


def _make_visible() -> None:
    if logger.level == logging.NOTSET:  # the app did not choose a level for us
        logger.setLevel(logging.INFO)
    if not any(isinstance(h, _FallbackHandler) for h in logger.handlers):
        handler = _FallbackHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
