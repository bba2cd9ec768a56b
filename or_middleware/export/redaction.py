"""Typed placeholders for PII and secrets in exported text (pure functions, no I/O).

Two jobs, two entry points:

- :func:`scrub_secrets` replaces API keys, bearer tokens, AWS access keys and JWTs with
  ``[SECRET]``. It runs on every string attribute of every span for every destination,
  whatever the settings: a key pasted into a prompt or echoed in an error must never leave.
- :class:`PIIRedactor` (``REDACT_PII``) also replaces e-mail addresses ``[EMAIL]``, payment
  cards ``[CARD]`` (Luhn-checked), IBANs ``[IBAN]`` (mod-97 checked), IPv4/IPv6 addresses
  ``[IP]``, phone numbers ``[PHONE]`` (validated with ``phonenumbers``) and the extra
  patterns of ``OR_MIDDLEWARE_PII_PATTERNS`` (``[NAME]``) in content attributes.

Checksums and validation keep false positives (order numbers, version strings, token
counts) out: a 16-digit number that fails Luhn is not a card.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

SECRET = "[SECRET]"

# Order matters: the most specific shapes first, so a JWT is not half-eaten by another rule.
_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
    re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_-]{11,}"),  # OpenAI sk-/sk-proj-, OpenRouter sk-or-v1-, sk-ant-
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub tokens
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API keys
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack tokens
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)


def scrub_secrets(text: str) -> str:
    """``text`` with every secret replaced by ``[SECRET]`` (``Bearer [SECRET]`` keeps the scheme)."""
    if len(text) < 12:
        return text
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(SECRET, text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {SECRET}", text)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _ip_valid(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")  # validated below
_IPV6 = re.compile(r"(?<![\w:])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}(?![\w:])")  # validated below
# Phone candidates: an optional +country, then digits with the usual separators; validated below.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w])")


def _checked(pattern: re.Pattern[str], placeholder: str, valid: Callable[[str], bool]) -> Callable[[str], str]:
    def replace(text: str) -> str:
        return pattern.sub(lambda m: placeholder if valid(m.group(0)) else m.group(0), text)

    return replace


def _phone_rule(region: str | None) -> Callable[[str], str]:
    import phonenumbers

    def valid(candidate: str) -> bool:
        digits = sum(char.isdigit() for char in candidate)
        if digits < 7 or digits > 15:
            return False
        try:
            number = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.is_valid_number(number)

    return _checked(_PHONE, "[PHONE]", valid)


class PIIRedactor:
    """Replaces PII (and secrets) in a text with typed placeholders."""

    def __init__(self, extra_patterns: Mapping[str, str] | None = None, phone_region: str | None = "US") -> None:
        rules: list[Callable[[str], str]] = [
            scrub_secrets,
            lambda text: _EMAIL.sub("[EMAIL]", text),
            _checked(_IBAN, "[IBAN]", iban_valid),
            _checked(_CARD, "[CARD]", lambda m: luhn_valid(re.sub(r"\D", "", m))),
            _checked(_IPV4, "[IP]", _ip_valid),
            _checked(_IPV6, "[IP]", _ip_valid),
            _phone_rule(phone_region),
        ]
        for name, pattern in (extra_patterns or {}).items():
            compiled = re.compile(pattern)
            rules.append(lambda text, c=compiled, p=f"[{name}]": c.sub(p, text))
        self._rules = rules

    def redact(self, text: str) -> str:
        for rule in self._rules:
            text = rule(text)
        return text


def parse_pii_patterns(value: Any) -> Any:
    """``OR_MIDDLEWARE_PII_PATTERNS``: JSON ``{"NAME": "regex"}`` (placeholder ``[NAME]``) or a JSON
    list of regexes (placeholder ``[PII]``); every regex must compile."""
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f'expected JSON like {{"EMPLOYEE_ID": "EMP-\\\\d{{6}}"}} ({exc.msg})') from None
    if isinstance(value, list):
        for pattern in value:
            if not isinstance(pattern, str):
                raise ValueError(f"expected regex strings, got {pattern!r}")
        value = {"PII": "|".join(f"(?:{pattern})" for pattern in value)} if value else {}
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object of NAME: regex (or a list of regexes)")
    patterns: dict[str, str] = {}
    for name, pattern in value.items():
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", str(name)):
            raise ValueError(f"pattern name {name!r}: letters, digits and _ only (it becomes [{name}])")
        if not isinstance(pattern, str):
            raise ValueError(f"pattern {name!r}: expected a regex string, got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {name!r}: {exc} (not a valid regex)") from None
        patterns[str(name).upper()] = pattern
    return patterns
