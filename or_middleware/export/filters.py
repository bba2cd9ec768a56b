"""FilterRules: Broadcast-style rules that decide which GenAI spans a destination receives.

``OR_MIDDLEWARE_<DEST>__FILTER`` is a JSON rule set, validated at start-up::

    {"logic": "and", "rules": [{"field": "model", "op": "starts_with", "value": "openai/"},
                               {"field": "total_cost", "op": "gt", "value": 0.001}]}

Rules look at GenAI span attributes only (no I/O, no content): a span is kept when all
(``and``) or any (``or``) of the rules match. An empty rule list keeps everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator
from re2 import error as RE2Error

from or_middleware import spans as contract
from or_middleware.secrets import compile_linear

FilterField = Literal[
    "model", "provider", "served_by", "user", "session", "finish_reason", "status",
    "total_cost", "total_tokens", "input_tokens", "output_tokens",
]
FilterOp = Literal[
    "equals", "not_equals", "contains", "not_contains", "regex", "starts_with", "ends_with",
    "gt", "lt", "gte", "lte", "exists", "not_exists",
]

# Broadcast's names for the same fields.
FIELD_ALIASES: dict[str, str] = {
    "user_id": "user", "session_id": "session", "prompt_tokens": "input_tokens",
    "completion_tokens": "output_tokens",
}

# rule field -> the span attributes it reads, first present wins
FIELD_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "model": (gen_ai.GEN_AI_REQUEST_MODEL, gen_ai.GEN_AI_RESPONSE_MODEL),  # what the app asked for
    "provider": (gen_ai.GEN_AI_PROVIDER_NAME,),  # the API called: openrouter, openai, ...
    "served_by": (contract.SERVED_BY,),  # who served it behind OpenRouter
    "user": (contract.USER_ID,),
    "session": (contract.SESSION_ID,),
    "finish_reason": (gen_ai.GEN_AI_RESPONSE_FINISH_REASONS,),
    "total_cost": (contract.USAGE_COST,),
    "total_tokens": (contract.USAGE_TOTAL_TOKENS,),
    "input_tokens": (gen_ai.GEN_AI_USAGE_INPUT_TOKENS,),
    "output_tokens": (gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS,),
}
NUMERIC_FIELDS = frozenset({"total_cost", "total_tokens", "input_tokens", "output_tokens"})
NUMERIC_OPS = frozenset({"gt", "lt", "gte", "lte"})
STRING_OPS = frozenset({"contains", "not_contains", "regex", "starts_with", "ends_with"})
NEGATIVE_OPS = frozenset({"not_equals", "not_contains"})  # true when no value of the field matches

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "equals": lambda have, want: have == want,
    "not_equals": lambda have, want: have == want,  # negated by the caller
    "contains": lambda have, want: want in have,
    "not_contains": lambda have, want: want in have,  # negated by the caller
    "starts_with": lambda have, want: have.startswith(want),
    "ends_with": lambda have, want: have.endswith(want),
    "gt": lambda have, want: have > want,
    "lt": lambda have, want: have < want,
    "gte": lambda have, want: have >= want,
    "lte": lambda have, want: have <= want,
}


class FilterRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: FilterField
    op: FilterOp
    value: str | int | float | bool | None = None

    _pattern: Any = PrivateAttr(default=None)  # RE2: user ids and models come from clients, so linear-time

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("field") in FIELD_ALIASES:
            data = {**data, "field": FIELD_ALIASES[data["field"]]}
        return data

    @model_validator(mode="after")
    def _value_fits_op(self) -> FilterRule:
        op, value = self.op, self.value
        if op in ("exists", "not_exists"):
            if value is not None:
                raise ValueError(f"op {op!r} takes no value")
            return self
        if value is None:
            raise ValueError(f"op {op!r} needs a value")
        if op in NUMERIC_OPS:
            if self.field not in NUMERIC_FIELDS:
                raise ValueError(f"op {op!r} needs a numeric field ({', '.join(sorted(NUMERIC_FIELDS))})")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"op {op!r} needs a number value, got {value!r}")
        if op in STRING_OPS and not isinstance(value, str):
            raise ValueError(f"op {op!r} needs a string value, got {value!r}")
        if op == "regex":
            try:
                re.compile(str(value))
            except re.error as exc:
                raise ValueError(f"value {value!r} is not a valid regex: {exc}") from None
            try:
                self._pattern = compile_linear(str(value))
            except RE2Error:
                raise ValueError(f"value {value!r}: regexes run in RE2, which is linear-time: no lookarounds "
                                 "or backreferences") from None
        return self

    def matches(self, attributes: Mapping[str, Any], is_error: bool) -> bool:
        values = _field_values(self.field, attributes, is_error)
        if self.op == "exists":
            return bool(values)
        if self.op == "not_exists":
            return not values
        hit = any(self._compare(value) for value in values)
        return not hit if self.op in NEGATIVE_OPS else hit

    def _compare(self, have: Any) -> bool:
        want = self.value
        if self.op == "regex":
            return self._pattern is not None and self._pattern.search(str(have)) is not None
        if self.op in NUMERIC_OPS or (self.field in NUMERIC_FIELDS and self.op in ("equals", "not_equals")):
            try:
                return _COMPARE[self.op](float(have), float(want))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return False
        return _COMPARE[self.op](str(have), str(want))


class FilterRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    logic: Literal["and", "or"] = "and"
    rules: list[FilterRule] = []

    def matches(self, attributes: Mapping[str, Any], is_error: bool) -> bool:
        if not self.rules:
            return True
        outcomes = (rule.matches(attributes, is_error) for rule in self.rules)
        return all(outcomes) if self.logic == "and" else any(outcomes)


def _field_values(field: str, attributes: Mapping[str, Any], is_error: bool) -> list[Any]:
    if field == "status":
        return ["error" if is_error or attributes.get(error_attributes.ERROR_TYPE) else "ok"]
    for key in FIELD_ATTRIBUTES[field]:
        value = attributes.get(key)
        if value is None:
            continue
        if isinstance(value, list | tuple):
            return list(value)
        return [value]
    return []


def _where(loc: tuple[int | str, ...]) -> str:
    parts = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"rule {part + 1}")
        elif part not in ("rules",):
            parts.append(str(part))
    return " ".join(parts)


def parse_filter_rules(value: Any) -> FilterRules | None:
    """The rule set from its JSON text (or a dict / FilterRules); errors say which rule and why."""
    if value is None or isinstance(value, FilterRules):
        return value
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"not JSON ({exc.msg} at char {exc.pos}); expected a rule set like "
                '{"rules": [{"field": "model", "op": "starts_with", "value": "openai/"}]}'
            ) from None
    try:
        return FilterRules.model_validate(value)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = _where(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise ValueError("; ".join(problems)) from None
