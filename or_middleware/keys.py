"""Keys of per-key state (per user, per route) bounded in bytes, whatever the client sends.

A user id comes from a request header and a route from the request path: both are chosen by the
client, and 20,000 distinct 8 KB ids would otherwise be kept as 20,000 8 KB keys. A long key keeps
a readable prefix and gains a hash of the whole, so distinct ids stay distinct.
"""

from __future__ import annotations

import hashlib

MAX_KEY_CHARS = 128


def bounded_key(text: str, limit: int = MAX_KEY_CHARS) -> str:
    """``text`` itself when short, else its first ``limit`` characters, ``#`` and a 64-bit hash."""
    if len(text) <= limit:
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{text[:limit]}#{digest}"
