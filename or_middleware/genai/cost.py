"""USD cost from the ``genai-prices`` package, for responses that do not carry their own.

Only the price data bundled with the installed package is used: we build our own snapshot
from it instead of ``genai_prices.calc_price``, whose global snapshot may be replaced by a
downloaded one if anything in the process starts its ``UpdatePrices`` task. Nothing here
touches the network, at import or at call time.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from or_middleware.genai.record import GenerationRecord

__all__ = ["price"]

_log = logging.getLogger(__name__)

# API providers whose genai-prices id differs from the name we record.
_PROVIDER_IDS = {"xai": "x-ai", "azure_openai": "azure"}


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
        provider, model = found
        try:
            calculation = model.calc_price(_usage(record), provider)
        except Exception:  # a price-table quirk must never break the span
            _log.debug("genai-prices failed for %s/%s", provider_id, model_ref, exc_info=True)
            return
        record.cost = float(calculation.total_price)
        record.input_cost = float(calculation.input_price)
        record.output_cost = float(calculation.output_price)
        record.cost_source = "price_table"
        return


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
