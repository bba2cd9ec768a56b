"""USD cost from the ``genai-prices`` package, for responses that do not carry their own.

Only the price data bundled with the installed package is used: we build our own snapshot
from it instead of ``genai_prices.calc_price``, whose global snapshot may be replaced by a
downloaded one if anything in the process starts its ``UpdatePrices`` task. Nothing here
touches the network, at import or at call time.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from typing import Any

from or_middleware.genai.record import GenerationRecord

__all__ = ["price"]

_log = logging.getLogger(__name__)

# API providers whose genai-prices id differs from the name we record.
# Our names are semconv gen_ai.provider.name values (see capture/detection.py).
_PROVIDER_IDS = {
    "xai": "x-ai",
    "x_ai": "x-ai",
    "azure_openai": "azure",
    "azure.ai.openai": "azure",
    "mistral_ai": "mistral",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
}


@functools.cache
def _snapshot() -> Any:
    """The bundled price table, loaded on first use (importing it costs ~0.2 s)."""
    from genai_prices import data, data_snapshot

    return data_snapshot.DataSnapshot(providers=data.providers, from_auto_update=False)


@functools.lru_cache(maxsize=1024)
def _lookup(provider_id: str, model_ref: str) -> tuple[Any, Any] | None:
    """(provider, model) of the price table, or None; misses are cached too."""
    try:
        return _snapshot().find_provider_model(model_ref, None, provider_id, None)
    except LookupError:
        return None


def price(record: GenerationRecord, api_provider: str) -> None:
    """Fill cost, input_cost and output_cost (source "price_table") when the response had no cost.

    ``api_provider`` is the API that was called ("openrouter", "openai", "anthropic", or a
    configured name): an OpenRouter ``vendor/model`` id is priced at OpenRouter's listing,
    not the first party's. An unknown model or provider leaves the cost unset, never 0.
    """
    if record.cost is not None or record.input_tokens is None:
        return
    provider_id = _PROVIDER_IDS.get(api_provider.lower(), api_provider.lower())
    for model_ref in dict.fromkeys(m for m in (record.response_model, record.request_model) if m):
        found = _lookup(provider_id, model_ref.lower())
        if found is None:
            continue
        rates = _linear_rates(provider_id, model_ref.lower())
        try:
            if rates is not None:
                input_cost, output_cost = rates.apply(_counts(record))
            else:
                provider, model = found
                calculation = model.calc_price(_usage(record), provider)
                input_cost, output_cost = float(calculation.input_price), float(calculation.output_price)
        except Exception:  # a price-table quirk must never break the span
            _log.debug("genai-prices failed for %s/%s", provider_id, model_ref, exc_info=True)
            return
        record.cost = input_cost + output_cost
        record.input_cost = input_cost
        record.output_cost = output_cost
        record.cost_source = "price_table"
        return


# The parts of a usage that a flat price table charges separately, in this order.
_Counts = tuple[int, int, int, int, int]  # uncached input, cache read, cache write, output, reasoning


@dataclasses.dataclass(frozen=True, slots=True)
class _LinearRates:
    """USD per token of each usage part, for the input and the output side.

    genai-prices computes a price through its unit registry with Decimals (~200 µs a call);
    for the common flat (untiered, unconditional) table the price is linear in the counts,
    so we derive the rates once per model and multiply (~1 µs)."""

    input_side: tuple[float, ...]
    output_side: tuple[float, ...]

    def apply(self, counts: _Counts) -> tuple[float, float]:
        return (
            sum(c * r for c, r in zip(counts, self.input_side, strict=True)),
            sum(c * r for c, r in zip(counts, self.output_side, strict=True)),
        )


def _counts(record: GenerationRecord) -> _Counts:
    """The same clamped parts as :func:`_usage`, without building a genai-prices Usage."""
    input_tokens = record.input_tokens or 0
    output_tokens = record.output_tokens or 0
    cache_read = min(record.cache_read_tokens or 0, input_tokens)
    cache_write = min(record.cache_creation_tokens or 0, input_tokens - cache_read)
    reasoning = min(record.reasoning_tokens or 0, output_tokens)
    return (input_tokens - cache_read - cache_write, cache_read, cache_write, output_tokens, reasoning)


_PROBE = 1_000_000


def _probe_usages() -> list[Any]:
    """One usage per part (each part alone, as genai-prices counts parts inside their totals)."""
    from genai_prices import Usage

    return [
        Usage(input_tokens=_PROBE, output_tokens=0),
        Usage(input_tokens=_PROBE, output_tokens=0, cache_read_tokens=_PROBE),
        Usage(input_tokens=_PROBE, output_tokens=0, cache_write_tokens=_PROBE),
        Usage(input_tokens=0, output_tokens=_PROBE),
        Usage(input_tokens=0, output_tokens=_PROBE, output_reasoning_tokens=_PROBE),
    ]


@functools.lru_cache(maxsize=1024)
def _linear_rates(provider_id: str, model_ref: str) -> _LinearRates | None:
    """Per-token rates when this model's price is flat; None to use genai-prices each time."""
    from genai_prices.types import ModelPrice, TieredPrices

    found = _lookup(provider_id, model_ref)
    if found is None:
        return None
    provider, model = found
    if not isinstance(model.prices, ModelPrice):  # prices that change with the time of day
        return None
    if any(isinstance(value, TieredPrices) for value in vars(model.prices).values()):
        return None
    try:
        sides = []
        for usage in _probe_usages():
            calculation = model.calc_price(usage, provider)
            sides.append((float(calculation.input_price) / _PROBE, float(calculation.output_price) / _PROBE))
        # A cache probe is all cache tokens, so its price is the cache rate itself; reasoning is
        # counted inside the output total, so its coefficient is the difference to plain output.
        base_out = sides[3]
        input_side = (sides[0][0], sides[1][0], sides[2][0], base_out[0], sides[4][0] - base_out[0])
        output_side = (sides[0][1], sides[1][1], sides[2][1], base_out[1], sides[4][1] - base_out[1])
        rates = _LinearRates(input_side, output_side)
    except Exception:
        return None
    return rates if _agrees(rates, provider, model) else None


def _agrees(rates: _LinearRates, provider: Any, model: Any) -> bool:
    """The linear form must reproduce genai-prices on a mixed usage, or we do not use it."""
    from genai_prices import Usage

    usage = Usage(input_tokens=9_000, output_tokens=3_000, cache_read_tokens=2_000, cache_write_tokens=1_000,
                  output_reasoning_tokens=500)
    expected = model.calc_price(usage, provider)
    got_in, got_out = rates.apply((6_000, 2_000, 1_000, 3_000, 500))
    return math.isclose(got_in, float(expected.input_price), rel_tol=1e-9, abs_tol=1e-12) and math.isclose(
        got_out, float(expected.output_price), rel_tol=1e-9, abs_tol=1e-12
    )


def _usage(record: GenerationRecord) -> Any:
    from genai_prices import Usage

    input_tokens = record.input_tokens or 0
    output_tokens = record.output_tokens or 0
    # genai-prices treats the cache and reasoning counts as parts of the totals; clamp them
    # so an odd upstream report cannot make a part exceed its whole (which it rejects).
    cache_read = min(record.cache_read_tokens or 0, input_tokens)
    cache_write = min(record.cache_creation_tokens or 0, input_tokens - cache_read)
    reasoning = min(record.reasoning_tokens or 0, output_tokens)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read or None,
        cache_write_tokens=cache_write or None,
        output_reasoning_tokens=reasoning or None,
    )
