"""The Activity Explorer: a read-only web UI over the local store (``or-middleware ui``).

Mount it in your own app with an auth check of yours::

    app.mount("/llm", explorer_app("./or_traces.db", auth=lambda request: request.user.is_staff))

Needs the ``ui`` extra (Jinja2; uvicorn to serve it standalone).
"""

from __future__ import annotations

from typing import Any

__all__ = ["explorer_app"]


def __getattr__(name: str) -> Any:
    # Lazy: `or-middleware --help` imports this package's command module without the ui extra installed.
    if name == "explorer_app":
        from or_middleware.ui.app import explorer_app

        return explorer_app
    raise AttributeError(name)
