from __future__ import annotations

import socket

import pytest

from or_middleware.genai import cost
from or_middleware.genai.record import GenerationRecord


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the network (a price update, say) fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("cost lookup tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def record(model: str | None, *, response_model: str | None = None, **usage: int) -> GenerationRecord:
    rec = GenerationRecord(provider="x", request_model=model, response_model=response_model)
    for key, value in usage.items():
        setattr(rec, key, value)
    return rec


def test_openai_model_priced_from_the_bundled_table() -> None:
    rec = record(
        "gpt-4o-mini", response_model="gpt-4o-mini-2024-07-18", input_tokens=1_000_000, output_tokens=1_000_000
    )
    cost.price(rec, "openai")
    assert rec.cost_source == "price_table"
    # gpt-4o-mini: $0.15 / MTok in, $0.60 / MTok out
    assert rec.input_cost == pytest.approx(0.15)
    assert rec.output_cost == pytest.approx(0.60)
    assert rec.cost == pytest.approx(0.75)


def test_cached_tokens_are_cheaper() -> None:
    plain = record("gpt-4o-mini", input_tokens=1_000_000, output_tokens=0)
    cached = record("gpt-4o-mini", input_tokens=1_000_000, output_tokens=0, cache_read_tokens=800_000)
    cost.price(plain, "openai")
    cost.price(cached, "openai")
    assert plain.cost is not None and cached.cost is not None
    assert cached.cost < plain.cost
    assert cached.cost == pytest.approx(0.2 * 0.15 + 0.8 * 0.075)


def test_anthropic_cache_write_priced() -> None:
    rec = record("claude-sonnet-4-20250514", input_tokens=1_000_000, output_tokens=0, cache_creation_tokens=1_000_000)
    cost.price(rec, "anthropic")
    assert rec.cost == pytest.approx(3.75)  # cache writes at 1.25x the $3 / MTok input rate


def test_reasoning_tokens_are_part_of_output_not_extra() -> None:
    base = record("o4-mini", input_tokens=1000, output_tokens=1000)
    with_reasoning = record("o4-mini", input_tokens=1000, output_tokens=1000, reasoning_tokens=900)
    cost.price(base, "openai")
    cost.price(with_reasoning, "openai")
    assert with_reasoning.cost == pytest.approx(base.cost)


def test_openrouter_ids_priced_as_openrouter_listing() -> None:
    rec = record("openai/gpt-4o", input_tokens=1_000_000, output_tokens=0)
    cost.price(rec, "openrouter")
    assert rec.cost == pytest.approx(2.5)
    # The same id is unknown to OpenAI's own table: no cost, rather than a guess.
    other = record("openai/gpt-4o", input_tokens=1_000_000, output_tokens=0)
    cost.price(other, "openai")
    assert other.cost is None


def test_falls_back_to_the_request_model() -> None:
    rec = record("gpt-4o-mini", response_model="some-unlisted-snapshot", input_tokens=1000, output_tokens=0)
    cost.price(rec, "openai")
    assert rec.cost is not None


@pytest.mark.parametrize(
    ("model", "provider"),
    [("no-such-model-xyz", "openai"), ("gpt-4o-mini", "my-vllm"), (None, "openai")],
)
def test_unknown_model_or_provider_leaves_cost_unset(model: str | None, provider: str) -> None:
    rec = record(model, input_tokens=1000, output_tokens=10)
    cost.price(rec, provider)
    assert rec.cost is None
    assert rec.cost_source is None
    assert rec.input_cost is None


def test_provider_cost_is_kept() -> None:
    rec = record("gpt-4o-mini", input_tokens=1000, output_tokens=10)
    rec.cost, rec.cost_source = 0.5, "provider"
    cost.price(rec, "openai")
    assert (rec.cost, rec.cost_source) == (0.5, "provider")


def test_no_usage_no_cost() -> None:
    rec = record("gpt-4o-mini")
    cost.price(rec, "openai")
    assert rec.cost is None


def test_inconsistent_counts_do_not_raise() -> None:
    rec = record("gpt-4o-mini", input_tokens=10, output_tokens=5, cache_read_tokens=50, reasoning_tokens=99)
    cost.price(rec, "openai")
    assert rec.cost is not None


def test_bundled_data_even_if_a_downloaded_snapshot_is_installed() -> None:
    from genai_prices import data_snapshot

    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=[], from_auto_update=True))
    try:
        rec = record("gpt-4o-mini", input_tokens=1000, output_tokens=0)
        cost.price(rec, "openai")
        assert rec.cost is not None
    finally:
        data_snapshot.set_custom_snapshot(None)


def test_lookups_are_cached() -> None:
    cost._lookup.cache_clear()
    for _ in range(50):
        cost.price(record("gpt-4o-mini", input_tokens=10, output_tokens=10), "openai")
        cost.price(record("nope", input_tokens=10, output_tokens=10), "openai")
    info = cost._lookup.cache_info()
    assert info.misses == 2
    assert info.hits == 98


def test_the_network_guard_itself_works() -> None:
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("127.0.0.1", 9))


def test_the_fast_linear_path_agrees_with_genai_prices_for_every_flat_model() -> None:
    """Every flat-priced model of the main providers is priced by the linear rates, and the
    result equals genai-prices' own calculation on varied usages."""
    from or_middleware.genai import cost

    usages = [(1, 1, 0, 0, 0), (12_345, 678, 1_000, 200, 50), (100_000, 4_000, 0, 30_000, 0)]
    checked = 0
    for provider_id in ("openai", "anthropic", "openrouter"):
        provider = next(p for p in cost._snapshot().providers if p.id == provider_id)
        for model in provider.models[:80]:
            rates = cost._linear_rates(provider_id, model.id)
            if rates is None:
                continue
            for input_tokens, output_tokens, cache_read, cache_write, reasoning in usages:
                record = GenerationRecord(provider=provider_id, request_model=model.id, input_tokens=input_tokens,
                                          output_tokens=output_tokens, cache_read_tokens=cache_read,
                                          cache_creation_tokens=cache_write, reasoning_tokens=reasoning)
                found = cost._lookup(provider_id, model.id)
                assert found is not None
                expected = found[1].calc_price(cost._usage(record), found[0])
                cost.price(record, provider_id)
                assert record.cost == pytest.approx(float(expected.total_price), rel=1e-9, abs=1e-12)
                assert record.input_cost == pytest.approx(float(expected.input_price), rel=1e-9, abs=1e-12)
            checked += 1
    assert checked > 50  # the fast path is the common case
