"""or_middleware: LLM observability for any ASGI/WSGI app."""
