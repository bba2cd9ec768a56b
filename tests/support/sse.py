"""A deliberately simple SSE splitter for asserting on raw fake-upstream bodies in tests.

Independent of or_middleware.genai.sse on purpose: tests of that parser must not share its bugs.
"""

from __future__ import annotations


def parse_sse(text: str) -> tuple[list[tuple[str | None, str]], int]:
    """(events as (``event:`` name or None, joined ``data:`` lines), number of comment lines)."""
    events: list[tuple[str | None, str]] = []
    comments, name, data = 0, None, []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(":"):
            comments += 1
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line == "" and data:
            events.append((name, "\n".join(data)))
            name, data = None, []
    return events, comments
