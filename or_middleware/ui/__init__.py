"""The Activity Explorer: a read-only web UI over the local store (``or-middleware ui``).

Mount it in your own app with an auth check of yours::

    app.mount("/llm", explorer_app("./or_traces.db", auth=lambda request: request.user.is_staff))

Needs the ``ui`` extra (Jinja2; uvicorn to serve it standalone).
"""

from or_middleware.ui.app import explorer_app

__all__ = ["explorer_app"]
