"""The fake upstream in its own process: ``python -m benchmarks.upstream`` prints ``READY <port>``.

``or_middleware.demo.fake_upstream`` keeps every request it received (for tests); here that
list is emptied after each request so a long benchmark does not grow the upstream's memory.
"""

from __future__ import annotations

import sys
from typing import Any


def create_app() -> Any:
    from or_middleware.demo.fake_upstream import create_fake_upstream

    fake = create_fake_upstream()
    received = fake.state.received
    generations = fake.state.generations

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await fake(scope, receive, send)
        finally:
            received.clear()
            generations.clear()

    return app


def main() -> None:
    from benchmarks.serving import serve

    with serve(create_app(), lifespan="off") as port:
        print(f"READY {port}", flush=True)
        sys.stdin.read()  # until the runner closes our stdin


if __name__ == "__main__":
    main()
