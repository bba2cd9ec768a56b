"""Which GenAI semantic conventions to emit, as the OpenTelemetry instrumentations decide it.

The GenAI conventions moved to their own repository (open-telemetry/semantic-conventions-genai)
and renamed things: ``gen_ai.usage.cache_creation.input_tokens`` is
``gen_ai.usage.cache_write.input_tokens``; the client metrics are
``gen_ai.client.inference.duration`` / ``.time_to_first_chunk`` / ``.time_per_output_chunk`` and
token counters ``gen_ai.client.inference.usage.*`` per ``gen_ai.token.modality``
(https://github.com/open-telemetry/semantic-conventions-genai/blob/main/docs/gen-ai/client-inference.md).
As the conventions ask of existing instrumentations, today's names stay the default, and the
standard ``OTEL_SEMCONV_STABILITY_OPT_IN`` (a comma-separated list) switches:

- ``gen_ai_latest_experimental``: the latest names only;
- ``gen_ai_latest_experimental/dup``: both, for a migration (the ``http/dup`` pattern).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

OPT_IN_VARIABLE = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST = "gen_ai_latest_experimental"
DUPLICATE = "gen_ai_latest_experimental/dup"

CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
# today's name -> the latest name, for span attributes
RENAMED_ATTRIBUTES: dict[str, str] = {
    gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: CACHE_WRITE_INPUT_TOKENS,
}


@dataclass(frozen=True)
class GenAISemconv:
    current: bool = True  # today's names
    latest: bool = False  # semantic-conventions-genai's names

    @property
    def renames(self) -> bool:
        return self.latest


def genai_semconv(environ: Mapping[str, str] | None = None) -> GenAISemconv:
    values = {v.strip() for v in (environ if environ is not None else os.environ).get(OPT_IN_VARIABLE, "").split(",")}
    if DUPLICATE in values:
        return GenAISemconv(current=True, latest=True)
    if LATEST in values:
        return GenAISemconv(current=False, latest=True)
    return GenAISemconv()


class LatestAttributeNames:
    """A destination transform: the span contract's attributes under the latest names (and, in
    ``/dup`` mode, under both). Runs on the exporter side; the local store keeps today's names."""

    def __init__(self, mode: GenAISemconv) -> None:
        self._keep_current = mode.current

    def __call__(self, draft: object) -> None:
        attributes = draft.attributes  # type: ignore[attr-defined]
        for old, new in RENAMED_ATTRIBUTES.items():
            if old in attributes:
                attributes[new] = attributes[old] if self._keep_current else attributes.pop(old)
