"""Request parameters and token counts as the record wants them, for formats declared as tables.

A format lists its parameters as ``(its key, semconv suffix, reader)`` rows; one function reads
them all, so a new format adds a table, not another loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from or_middleware.genai.fields import as_int, as_list
from or_middleware.genai.record import GenerationRecord

__all__ = ["ParamTable", "read_params", "set_tokens"]

ParamTable = tuple[tuple[str, str, Callable[[object], Any]], ...]


def read_params(
    table: ParamTable,
    source: Mapping[str, Any],
    record: GenerationRecord,
    *,
    stops: str | None = None,
    get: Callable[[Mapping[str, Any], str], Any] = lambda body, key: body.get(key),
) -> None:
    """Every ``table`` row found in ``source`` into ``record.request_params`` (semconv suffixes);
    ``stops`` names the list of stop sequences. A choice count of 1 is the default: left out."""
    params = record.request_params
    for key, suffix, read in table:
        value = read(get(source, key))
        if value is not None and not (suffix == "choice.count" and value == 1):
            params[suffix] = value
    if stops is not None:
        sequences = [s for s in as_list(get(source, stops)) if isinstance(s, str)]
        if sequences:
            params["stop_sequences"] = sequences


def set_tokens(record: GenerationRecord, input_tokens: object, output_tokens: object) -> None:
    """Input and output tokens where the response has them, and their total when it has both."""
    tokens_in, tokens_out = as_int(input_tokens), as_int(output_tokens)
    if tokens_in is not None:
        record.input_tokens = tokens_in
    if tokens_out is not None:
        record.output_tokens = tokens_out
    if tokens_in is not None and tokens_out is not None:
        record.total_tokens = tokens_in + tokens_out


def response_object(body: Any, record: GenerationRecord) -> Mapping[str, Any] | None:
    """The response body as a JSON object, or None after recording ``invalid_response``."""
    if isinstance(body, Mapping):
        return body
    record.set_error("invalid_response", "response body is not a JSON object")
    return None
