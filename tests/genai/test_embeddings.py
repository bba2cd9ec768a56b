from __future__ import annotations

import json
import random

import pytest

from or_middleware.genai.embeddings import EmbeddingsFormat
from or_middleware.genai.record import GenerationRecord
from tests.genai.genai_testing import fixture_bytes, observe

EMBEDDINGS = EmbeddingsFormat()


def embed(body: bytes | list[bytes], **options: object) -> GenerationRecord:
    return observe(EMBEDDINGS, body, content_type="application/json", **options)


def test_request() -> None:
    record = GenerationRecord(provider="openai", operation="embeddings", capture_content=True)
    EMBEDDINGS.read_request(
        {"model": "text-embedding-3-large", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 256}, record
    )
    assert record.request_model == "text-embedding-3-large"
    assert record.request_params == {"encoding_formats": ["base64"]}
    assert record.embedding_dimensions == 256
    assert record.input_messages is None  # inputs are never kept


def test_float_response() -> None:
    record = embed(fixture_bytes("openai_embeddings.json"))
    assert record.operation == "embeddings"
    assert record.error_type is None and record.completed
    assert record.response_model == "text-embedding-3-small"
    assert record.input_tokens == 8
    assert record.output_tokens is None
    assert record.embedding_dimensions == 5
    assert record.output_messages is None


def test_base64_response_dimensions_from_decoded_length() -> None:
    record = embed(fixture_bytes("openai_embeddings_base64.json"))
    assert record.embedding_dimensions == 6


def test_openrouter_cost_and_provider() -> None:
    record = embed(fixture_bytes("openrouter_embeddings.json"))
    assert record.response_id == "gen-emb-1747000400-AbCdEf"
    assert record.served_by == "OpenAI"
    assert record.cost == pytest.approx(1e-7)
    assert record.cost_source == "provider"
    assert record.embedding_dimensions == 3


def _big_batch(encoding: str) -> bytes:
    rng = random.Random(1)
    if encoding == "float":
        data = [
            {"object": "embedding", "index": i, "embedding": [rng.uniform(-1, 1) for _ in range(1536)]}
            for i in range(40)
        ]
    else:
        import base64
        import struct

        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(struct.pack("<3072f", *[0.5] * 3072)).decode(),
            }
            for i in range(200)
        ]
    body = {
        "object": "list",
        "data": data,
        "model": "text-embedding-3-large",
        "usage": {"prompt_tokens": 4321, "total_tokens": 4321},
    }
    return json.dumps(body).encode()


@pytest.mark.parametrize(("encoding", "dims"), [("float", 1536), ("base64", 3072)])
def test_batch_larger_than_the_json_limit_read_from_its_ends(encoding: str, dims: int) -> None:
    raw = _big_batch(encoding)
    limit = 300 * 1024
    assert len(raw) > 3 * limit
    record = embed([raw[i : i + 8192] for i in range(0, len(raw), 8192)], max_json_bytes=limit)
    assert record.error_type is None
    assert record.input_tokens == 4321
    assert record.response_model == "text-embedding-3-large"
    assert record.embedding_dimensions == dims
    assert record.completed


def test_oversized_body_without_usage_at_the_end_is_too_large() -> None:
    raw = b'{"data": [' + b"1.0, " * 100_000 + b"1.0]}"
    record = embed(raw, max_json_bytes=1024)
    assert record.error_type == "response_too_large"


def test_error() -> None:
    body = json.dumps(
        {"error": {"message": "maximum context length is 8192 tokens", "type": "invalid_request_error", "code": None}}
    ).encode()
    record = embed(body, status=400)
    assert record.error_type == "invalid_request_error"
