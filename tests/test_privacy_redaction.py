"""PII redaction and secret scrubbing as pure functions: what is replaced, what is left alone."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from or_middleware.config import ConfigError, Settings
from or_middleware.export.redaction import PIIRedactor, luhn_valid, scrub_secrets

REDACTOR = PIIRedactor({"EMPLOYEE_ID": r"EMP-\d{6}"})


@pytest.mark.parametrize(("text", "expected"), [
    ("mail jane.doe+shop@mail.example.co.uk now", "mail [EMAIL] now"),
    ("visa 4111 1111 1111 1111.", "visa [CARD]."),
    ("visa 4111-1111-1111-1111", "visa [CARD]"),
    ("visa 4111111111111111", "visa [CARD]"),
    ("amex 3782 822463 10005", "amex [CARD]"),
    ("iban DE89 3704 0044 0532 0130 00 ok", "iban [IBAN] ok"),
    ("iban GB82WEST12345698765432", "iban [IBAN]"),
    ("from 192.168.10.254 and 8.8.8.8", "from [IP] and [IP]"),
    ("v6 2001:db8::8a2e:370:7334 and ::1", "v6 [IP] and [IP]"),
    ("call +1 415-555-2671 or (415) 555-2671", "call [PHONE] or [PHONE]"),
    ("uk +44 20 7946 0958", "uk [PHONE]"),
    ("badge EMP-123456", "badge [EMPLOYEE_ID]"),
    ("key sk-or-v1-0123456789abcdef0123456789abcdef", "key [SECRET]"),
])
def test_pii_becomes_typed_placeholders(text, expected):
    assert REDACTOR.redact(text) == expected


@pytest.mark.parametrize("text", [
    "order 4111 1111 1111 1112",  # fails Luhn: not a card
    "tracking 1234567890123",
    "iban DE00 3704 0044 0532 0130 00",  # fails mod-97
    "version 1.2.3 and 10.0 and 999.1.1.1",
    "at 12:30:45 on 2024-01-02",
    "used 1234567 tokens, cost 0.000123",
    "plain words: dead:beef is not an address",
])
def test_lookalikes_are_left_alone(text):
    assert REDACTOR.redact(text) == text


@pytest.mark.parametrize("secret", [
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234",
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx-1234",
    "sk-or-v1-" + "a" * 64,
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "ghp_" + "A1b2C3d4" * 5,
])
def test_secrets_are_scrubbed_always(secret):
    assert scrub_secrets(f"use {secret} please") == "use [SECRET] please"


def test_bearer_tokens_keep_their_scheme_and_pii_is_not_touched_by_the_secret_scrub():
    text = "Authorization: Bearer abc.def-ghi_jkl123 for jane@example.com"
    assert scrub_secrets(text) == "Authorization: Bearer [SECRET] for jane@example.com"


@given(st.lists(st.integers(0, 9), min_size=15, max_size=15), st.text(alphabet="abc ,.", max_size=10))
def test_every_luhn_valid_16_digit_number_is_redacted(digits, around):
    body = "".join(map(str, digits))
    check = next(d for d in "0123456789" if luhn_valid(body + d))
    card = body + check
    grouped = " ".join(card[i:i + 4] for i in range(0, 16, 4))
    redacted = REDACTOR.redact(f"{around} {grouped} {around}")
    assert card not in redacted.replace(" ", "") and "[CARD]" in redacted
    assert REDACTOR.redact(redacted) == redacted  # idempotent


def test_extra_patterns_from_the_environment(monkeypatch):
    monkeypatch.setenv("OR_MIDDLEWARE_PII_PATTERNS", '{"ticket": "TCK-\\\\d+", "PLATE": "[A-Z]{2}-\\\\d{3}"}')
    settings = Settings(destinations=[])
    assert settings.pii_patterns == {"TICKET": r"TCK-\d+", "PLATE": r"[A-Z]{2}-\d{3}"}
    redactor = PIIRedactor(settings.pii_patterns)
    assert redactor.redact("TCK-991 for AB-123") == "[TICKET] for [PLATE]"
    monkeypatch.setenv("OR_MIDDLEWARE_PII_PATTERNS", '["secret-\\\\w+", "hidden"]')
    assert PIIRedactor(Settings(destinations=[]).pii_patterns).redact("secret-x and hidden") == "[PII] and [PII]"


@pytest.mark.parametrize(("value", "message"), [
    ('{"BAD": "(unclosed"}', "pattern 'BAD': missing ), unterminated subpattern"),
    ('{"two words": "x"}', "pattern name 'two words'"),
    ("not json", "expected JSON like"),
    ('{"N": 5}', "expected a regex string"),
])
def test_bad_extra_patterns_stop_the_app_at_start_up(monkeypatch, value, message):
    monkeypatch.setenv("OR_MIDDLEWARE_PII_PATTERNS", value)
    with pytest.raises(ConfigError) as raised:
        Settings(destinations=[])
    assert "OR_MIDDLEWARE_PII_PATTERNS" in str(raised.value) and message in str(raised.value)


@pytest.mark.parametrize("separator", ["\n", "\t", "\r\n", "\u00a0", "\\"])
def test_pii_after_a_newline_or_tab_in_json_content_is_redacted_and_the_json_stays_valid(separator):
    """On 154468c the patterns ran on the JSON-escaped text: ``\\n`` glued its ``n`` to the next word
    (``njane@...`` matched as a whole, leaving ``\\[EMAIL]``: invalid JSON) and a card after a tab
    was missed."""
    content = f"hi{separator}jane.doe@example.com{separator}4111 1111 1111 1111{separator}key sk-proj-{'Ab1' * 8}"
    value = json.dumps([{"role": "user", "parts": [{"type": "text", "content": content}]}],
                       ensure_ascii=False, separators=(",", ":"))
    redacted = REDACTOR.redact_content(value)
    decoded = json.loads(redacted)  # valid JSON
    text = decoded[0]["parts"][0]["content"]
    assert text == f"hi{separator}[EMAIL]{separator}[CARD]{separator}key [SECRET]"


def test_content_cut_by_the_cap_is_redacted_literal_by_literal():
    value = json.dumps([{"content": "a\njane@example.com and more text " * 3}])[:70] + "…[truncated]"
    redacted = REDACTOR.redact_content(value)
    assert "jane@" not in redacted and "[EMAIL]" in redacted and "\\[" not in redacted
    assert REDACTOR.redact_content('[{"content":"cut in an escape \\u00') == '[{"content":"cut in an escape "'


@given(st.text(max_size=60), st.sampled_from(["\n", "\t", '"', "\\", "\u2028", " "]))
def test_redacted_json_content_is_always_valid_json(text, glue):
    value = json.dumps({"content": f"{text}{glue}jane@example.com{glue}{text}"}, ensure_ascii=False)
    redacted = REDACTOR.redact_content(value)
    assert "jane@example.com" not in json.loads(redacted)["content"]
