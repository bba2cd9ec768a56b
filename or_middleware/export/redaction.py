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

import re2

from or_middleware.secrets import SECRET, compile_linear, scrub_secrets

__all__ = ["SECRET", "PIIRedactor", "iban_valid", "luhn_valid", "parse_pii_patterns", "scrub_secrets"]


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


# Every pattern runs on client text, so each is linear-time (issue 11, items 5-6; benchmarks/redos.py):
# unbounded ones run in RE2; the ones that need lookarounds (which RE2 lacks) match at most a few
# dozen characters per start position, so Python's engine does bounded work per position.
_EMAIL = compile_linear(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = compile_linear(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")  # at most 37 characters
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")  # validated below
# at most 39 characters; the lookahead (two colons among the first groups) is bounded too
_IPV6 = re.compile(r"(?<![\w:])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}(?![\w:])")
# Phone candidates: an optional +country, then digits with the usual separators (at most 36
# characters); validated below.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w])")
_NON_DIGIT = re.compile(r"\D")

# A JSON string literal, or an unterminated one running to the end (RE2: linear on any input).
_JSON_STRING = compile_linear(r'"(?:[^"\\]|\\.)*(?:"|\\?$)')
_BROKEN_ESCAPE = re.compile(r"\\(?:u[0-9A-Fa-f]{0,3})?$")

Pattern = re.Pattern[str] | re2._Regexp


def _checked(pattern: Pattern, placeholder: str, valid: Callable[[str], bool]) -> Callable[[str], str]:
    def replace(text: str) -> str:
        return pattern.sub(lambda m: placeholder if valid(m.group(0)) else m.group(0), text)

    return replace


def _phone_rule(region: str | None) -> Callable[[str], str]:
    import phonenumbers  # here, when a destination redacts PII (at start-up): its tables cost memory

    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        from or_middleware.config import ConfigError  # (config imports this module)

        # an unknown region would parse no national number: they would all pass unredacted
        raise ConfigError(f"invalid configuration: OR_MIDDLEWARE_PII_PHONE_REGION={region!r}: not a region "
                          "phonenumbers knows; use a two-letter code such as US, GB or DE")

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
            _checked(_CARD, "[CARD]", lambda m: luhn_valid(_NON_DIGIT.sub("", m))),
            _checked(_IPV4, "[IP]", _ip_valid),
            _checked(_IPV6, "[IP]", _ip_valid),
            _phone_rule(phone_region),
        ]
        for name, pattern in (extra_patterns or {}).items():
            compiled = compile_linear(pattern)
            rules.append(lambda text, c=compiled, p=f"[{name}]": c.sub(p, text))
        self._rules = rules
        # No built-in rule matches fewer than 5 characters; an extra pattern may.
        self._shortest = 1 if extra_patterns else 5

    def redact(self, text: str) -> str:
        for rule in self._rules:
            text = rule(text)
        return text

    def redact_content(self, value: str) -> str:
        """A content attribute: JSON (messages, tool definitions) is redacted string by string,
        decoded first (so ``\\n`` before an address is a newline, not an ``n`` glued to it) and
        re-encoded after (so a placeholder never breaks the JSON); plain text as it is."""
        if value[:1] not in ("[", "{"):
            return self.redact(value)
        try:
            decoded = json.loads(value)
        except ValueError:  # cut by the content cap: redact each string literal on its own
            return _JSON_STRING.sub(lambda m: self._literal(m.group(0)), value)
        redacted = self._walk(decoded)
        if redacted == decoded:
            return value
        return json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        if isinstance(value, dict):
            return {self.redact(key): self._walk(item) for key, item in value.items()}
        return value

    def _literal(self, literal: str) -> str:
        """One JSON string literal (``"..."``, or an unterminated one at the end), redacted."""
        body = literal[1:-1] if len(literal) > 1 and literal.endswith('"') else literal[1:]
        if len(body) < self._shortest:
            return literal if literal.endswith('"') and len(literal) > 1 else f'"{_BROKEN_ESCAPE.sub("", body)}"'
        try:
            text = json.loads(f'"{body}"')
        except ValueError:  # an escape cut in half by the cap: drop it
            try:
                text = json.loads(f'"{_BROKEN_ESCAPE.sub("", body)}"')
            except ValueError:
                text = body.replace("\\", " ")
        redacted = self.redact(text)
        if redacted == text and literal.endswith('"') and len(literal) > 1:
            return literal
        return json.dumps(redacted, ensure_ascii=False)


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
        try:
            compile_linear(pattern)
        except re2.error as exc:
            detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise ValueError(f"pattern {name!r}: {detail} (patterns run in RE2, which is linear-time: no "
                             "lookarounds or backreferences)") from None
        patterns[str(name).upper()] = pattern
    return patterns
