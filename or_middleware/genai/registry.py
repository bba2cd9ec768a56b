"""Path -> wire format. (Interim: chat and text completions; the other formats join as they land.)"""

from __future__ import annotations

from or_middleware.genai.formats import WireFormat
from or_middleware.genai.openai_chat import ChatCompletionsFormat, TextCompletionsFormat

_CHAT = ChatCompletionsFormat()
_TEXT = TextCompletionsFormat()


def format_for(api_kind: str, path: str) -> WireFormat | None:
    if path.endswith("/chat/completions"):
        return _CHAT
    if path.endswith("/completions"):
        return _TEXT
    return None
