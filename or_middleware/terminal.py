"""Text that is safe to print on a terminal or in a log line.

Model names, user ids, routes and prompts come from the app's clients: a value holding an escape
sequence (``\\x1b[2J``, an OSC title or hyperlink) or a newline would act on the reader's terminal
or forge a line. :func:`printable` shows such characters escaped (``\\x1b``) instead.
"""

from __future__ import annotations

import re

# C0 controls (but tab), DEL, C1 controls, and the Unicode line/paragraph separators and bidi overrides
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character shown as its escape (one pass, linear time)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
