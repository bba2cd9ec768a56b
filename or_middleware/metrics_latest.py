"""The GenAI client metrics of semantic-conventions-genai, for ``OTEL_SEMCONV_STABILITY_OPT_IN``
(or_middleware/semconv_mode.py): ``gen_ai.client.inference.duration``, ``.time_to_first_chunk``,
``.time_per_output_chunk``, the ``gen_ai.client.inference.usage.*`` token counters per
``gen_ai.token.modality`` and the per-operation token histograms
(https://github.com/open-telemetry/semantic-conventions-genai/blob/main/docs/gen-ai/gen-ai-token-metrics.md).

Modality: the APIs we read report usage without a modality breakdown, so tokens are counted
under ``unknown``, as the conventions ask; a call without usage (failed, cut) counts 0 input
tokens under ``unknown``. ``time_per_output_chunk`` is recorded once per stream with the mean
interval between chunks after the first ((end - first chunk) / (chunks - 1)): the stream is not
timed chunk by chunk, so the histogram's sum and the per-stream means are right, the spread
within a stream is not seen.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from or_middleware import spans as contract

INFERENCE_DURATION = "gen_ai.client.inference.duration"
INFERENCE_TIME_TO_FIRST_CHUNK = "gen_ai.client.inference.time_to_first_chunk"
INFERENCE_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.inference.time_per_output_chunk"
CURRENT_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
TOKEN_MODALITY = "gen_ai.token.modality"
UNKNOWN_MODALITY = "unknown"
USAGE_COUNTERS = {  # span attribute -> counter
    gen_ai.GEN_AI_USAGE_INPUT_TOKENS: "gen_ai.client.inference.usage.input_tokens",
    gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: "gen_ai.client.inference.usage.output_tokens",
    gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: "gen_ai.client.inference.usage.cache_read.input_tokens",
    gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: "gen_ai.client.inference.usage.cache_write.input_tokens",
    gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: "gen_ai.client.inference.usage.reasoning.output_tokens",
}
OPERATION_TOKENS = {
    gen_ai.GEN_AI_USAGE_INPUT_TOKENS: "gen_ai.client.inference.operation.input_tokens",
    gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: "gen_ai.client.inference.operation.output_tokens",
}
CHUNK_BUCKETS: tuple[float, ...] = (0.01, 0.02, 0.04, 0.05, 0.1, 0.2, 0.4, 0.5, 1.0, 2.0, 5.0, 10.0)


def time_per_output_chunk(span: ReadableSpan) -> float | None:
    """The mean time between chunks after the first one of a streamed call, in seconds."""
    a = span.attributes or {}
    chunks, ttfc = a.get(contract.CHUNK_COUNT), a.get(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    if not (a.get(gen_ai.GEN_AI_REQUEST_STREAM) and isinstance(chunks, int) and chunks >= 2
            and isinstance(ttfc, int | float) and span.start_time and span.end_time):
        return None
    after_first = (span.end_time - span.start_time) / 1e9 - ttfc
    return max(0.0, after_first / (chunks - 1))


class InferenceMetrics:
    def __init__(self, meter: Meter, seconds: tuple[float, ...], tokens: tuple[float, ...]) -> None:
        self.duration = meter.create_histogram(INFERENCE_DURATION, unit="s", description="GenAI inference duration",
                                               explicit_bucket_boundaries_advisory=seconds)
        self.time_to_first_chunk = meter.create_histogram(
            INFERENCE_TIME_TO_FIRST_CHUNK, unit="s", description="Time to receive the first chunk",
            explicit_bucket_boundaries_advisory=seconds)
        self.time_per_output_chunk = meter.create_histogram(
            INFERENCE_TIME_PER_OUTPUT_CHUNK, unit="s", description="Time per output chunk after the first",
            explicit_bucket_boundaries_advisory=CHUNK_BUCKETS)
        self.usage = {key: meter.create_counter(name, unit="{token}", description="Tokens used")
                      for key, name in USAGE_COUNTERS.items()}
        self.operation_tokens = {
            key: meter.create_histogram(name, unit="{token}", description="Tokens per inference operation",
                                        explicit_bucket_boundaries_advisory=tokens)
            for key, name in OPERATION_TOKENS.items()}

    def record(self, span: ReadableSpan, dims: dict[str, Any], with_error: dict[str, Any]) -> None:
        a = span.attributes or {}
        if span.start_time is not None and span.end_time is not None:
            self.duration.record((span.end_time - span.start_time) / 1e9, with_error)
        ttfc = a.get(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
        if isinstance(ttfc, int | float) and a.get(gen_ai.GEN_AI_REQUEST_STREAM):
            self.time_to_first_chunk.record(ttfc, with_error)
        per_chunk = time_per_output_chunk(span)
        if per_chunk is not None:
            self.time_per_output_chunk.record(per_chunk, with_error)
        modality = {**dims, TOKEN_MODALITY: UNKNOWN_MODALITY}
        for key, counter in self.usage.items():
            tokens = a.get(key)
            if isinstance(tokens, int) and tokens >= 0:
                counter.add(tokens, modality)
            elif key == gen_ai.GEN_AI_USAGE_INPUT_TOKENS:  # no usage received: 0, as the conventions ask
                counter.add(0, modality)
        for key, histogram in self.operation_tokens.items():
            tokens = a.get(key)
            if isinstance(tokens, int) and tokens >= 0:
                histogram.record(tokens, dims)
