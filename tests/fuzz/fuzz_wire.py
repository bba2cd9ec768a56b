"""atheris (libFuzzer) harness for the bytes an upstream can send us, and the bodies an app can.

One input drives: the request-side readers (json body -> read_request, the OpenRouter linkage
rewrite), and the response side exactly as the transport hook does it (ResponseObserver with a
status, Content-Type and Content-Encoding, fed in input-chosen chunks, then finish or abandon),
and finally the span contract. Anything raised, or an attribute no exporter can encode, is a crash.

    pip install atheris       # a cp311 manylinux wheel exists; not part of the test extra
    python tests/fuzz/fuzz_wire.py -max_total_time=600 tests/fixtures   # corpus: the recorded wire bytes
    python tests/fuzz/fuzz_wire.py crash-<sha>                          # replay a finding

``tests/fuzz/test_fuzz_harness.py`` runs ``test_one_input`` over the fixtures without atheris,
so the harness keeps working, and briefly under atheris when it is installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

try:
    import atheris
except ImportError:  # the smoke test drives test_one_input with its own provider
    atheris = None

CONTENT_TYPES = ["application/json", "text/event-stream", "text/plain", None]
ENCODINGS = [None, "gzip", "deflate", "br", "zstd", "identity", "gzip, br", "x-unknown"]
STATUSES = [200, 200, 200, 204, 302, 400, 401, 429, 500, 529]


class BytesProvider:
    """The subset of atheris.FuzzedDataProvider the harness uses, for running without atheris."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def ConsumeIntInRange(self, low: int, high: int) -> int:
        if not self._data:
            return low
        value, self._data = self._data[0], self._data[1:]
        return low + value % (high - low + 1)

    def ConsumeBytes(self, count: int) -> bytes:
        out, self._data = self._data[:count], self._data[count:]
        return out

    def ConsumeBool(self) -> bool:
        return self.ConsumeIntInRange(0, 1) == 1

    def remaining_bytes(self) -> int:
        return len(self._data)


def _pick(provider: object, options: list) -> object:
    return options[provider.ConsumeIntInRange(0, len(options) - 1)]  # type: ignore[attr-defined]


def test_one_input(data: bytes, provider: object | None = None) -> None:
    from or_middleware import spans
    from or_middleware.capture.linkage import link_openrouter_body
    from or_middleware.genai.record import GenerationRecord
    from or_middleware.genai.registry import CHAT, EMBEDDINGS, MESSAGES, RESPONSES, TEXT_COMPLETIONS
    from or_middleware.genai.response import ResponseObserver
    from tests.reliability.fuzz_inputs import otel_attribute_problems

    fdp = provider or (atheris.FuzzedDataProvider(data) if atheris else BytesProvider(data))
    fmt = _pick(fdp, [CHAT, TEXT_COMPLETIONS, RESPONSES, EMBEDDINGS, MESSAGES])
    record = GenerationRecord(provider="openrouter", operation=fmt.operation,  # type: ignore[attr-defined]
                              capture_content=fdp.ConsumeBool(), started_at=1.0)
    request_size = fdp.ConsumeIntInRange(0, 255)
    request = fdp.ConsumeBytes(request_size)
    try:
        body = json.loads(request)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        fmt.read_request(body, record)  # type: ignore[attr-defined]
        link_openrouter_body(body, trace_id="0" * 32, parent_span_id="0" * 16, generation_name="g",
                             trace_name="t", user="u", session="s")
    observer = ResponseObserver(
        fmt, record,  # type: ignore[arg-type]
        status_code=_pick(fdp, STATUSES),  # type: ignore[arg-type]
        content_type=_pick(fdp, CONTENT_TYPES),  # type: ignore[arg-type]
        content_encoding=_pick(fdp, ENCODINGS),  # type: ignore[arg-type]
        max_json_bytes=_pick(fdp, [64, 1 << 20]),  # type: ignore[arg-type]
        max_decoded_bytes=1 << 16,
    )
    now = 2.0
    while fdp.remaining_bytes():  # type: ignore[attr-defined]
        size = fdp.ConsumeIntInRange(1, 64)
        observer.feed(fdp.ConsumeBytes(size), now)
        now += 1
    if data[-1:] == b"\x00":
        observer.abandon(now)
    else:
        observer.finish(now)
    problems = otel_attribute_problems(spans.record_attributes(record, 1024))
    if problems:
        raise AssertionError(problems)


def main() -> None:
    if atheris is None:
        sys.exit("atheris is not installed: pip install atheris")
    # Coverage feedback from the parsers only: instrumenting their import chain (starlette,
    # opentelemetry, pydantic) would take most of a minute before the first input.
    with atheris.instrument_imports(include=["or_middleware.genai", "or_middleware.capture.linkage"]):
        import or_middleware.capture.linkage
        import or_middleware.genai.response  # noqa: F401
    from tests.reliability import fuzz_inputs  # noqa: F401  (imported once, not per input)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
