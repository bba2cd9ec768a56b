"""``or-middleware ui``: serve the Activity Explorer over the local store with uvicorn."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any

DEFAULT_PORT = 8765
TOKEN_VARIABLE = "OR_MIDDLEWARE_UI_TOKEN"


def _fail(message: str) -> int:
    print(f"or-middleware ui: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from or_middleware.ui.app import is_loopback, standalone_app
        from or_middleware.ui.source import ReadOnlyStore, StoreUnavailable
    except ImportError as exc:
        return _fail(f"needs the ui extra: pip install 'or-middleware[ui]' ({exc})")
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    store = ReadOnlyStore(args.db)
    try:
        store.check()
        app = standalone_app(args.db, token=token, host=args.host)
    except (ValueError, StoreUnavailable) as exc:
        return _fail(str(exc))
    if (busy := _port_taken(args.host.strip("[]"), args.port)) is not None:
        return _fail(f"cannot listen on {args.host} port {args.port} ({busy}): choose another with --port")
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    address = f"http://{shown_host}:{args.port}/"
    print(f"Activity Explorer on {address} (store {store.display_name}, read-only); Ctrl-C stops it", file=sys.stderr)
    if token:  # the token itself is never printed: the user set it
        print(f"open {address}?token=<your token> once (or send Authorization: Bearer <your token>)",
              file=sys.stderr)
    elif not is_loopback(args.host):  # unreachable: standalone_app refused it
        return _fail("refusing to serve without a token")
    uvicorn.run(app, host=args.host.strip("[]"), port=args.port, log_level="warning", access_log=False,
                server_header=False, proxy_headers=False)
    return 0


def _port_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, not an address of this machine), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return exc.strerror or str(exc)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def register(commands: Any) -> None:
    from or_middleware.report.command import _db_argument

    ui = commands.add_parser("ui", help="the Activity Explorer: a read-only web UI over the local store")
    _db_argument(ui)  # a SQLite file or a postgresql:// URL, as for report
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default: 127.0.0.1; anything not loopback needs a token)")
    ui.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    ui.add_argument("--token", default=None,
                    help=f"require this token on every request (better: set ${TOKEN_VARIABLE}, "
                         "which other users cannot read in the process list); 16+ characters")
    ui.set_defaults(handler=_run)
