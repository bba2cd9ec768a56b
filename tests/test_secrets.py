"""The shared credential helpers (or_middleware/secrets.py) as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from or_middleware.secrets import credential_values, is_sensitive_name, redact_known, safe_url


@pytest.mark.parametrize(("url", "safe"), [
    ("https://user:pw@host:4318/v1/traces?api_key=k&x=1#access_token=t",
     "https://host:4318/v1/traces?api_key=REDACTED&x=1#access_token=REDACTED"),
    ("//u:p@h/x", "//h/x"),
    ("http://a@b@h/p", "http://h/p"),
    ("/p/x?Api-Key=1&q=hello", "/p/x?Api-Key=REDACTED&q=hello"),
    ("http://h/p?API%5FKEY=s&sig=z&Signature=y&X-Amz-Credential=c", "http://h/p?API%5FKEY=REDACTED&sig=REDACTED"
     "&Signature=REDACTED&X-Amz-Credential=REDACTED"),
    ("http://h/p?token=a;x=1", "http://h/p?token=REDACTED"),
    ("http://[::1]:80/a@b?q=1", "http://[::1]:80/a@b?q=1"),  # an @ in the path is not user info
    ("not a url", "not a url"),
    ("", ""),
])
def test_safe_url(url, safe):
    assert safe_url(url) == safe


@pytest.mark.parametrize("name", ["authorization", "Proxy-Authorization", "cookie", "set_cookie", "x-api-key",
                                  "apikey", "access_token", "client_secret", "password", "x-csrf-token", "sig"])
def test_credential_names(name):
    assert is_sensitive_name(name)


@pytest.mark.parametrize("name", ["accept", "user-agent", "content-type", "x-request-id", "q", "page"])
def test_ordinary_names(name):
    assert not is_sensitive_name(name)


def test_known_credentials_are_replaced_in_any_message_also_in_their_encoded_forms():
    values = credential_values("https://user:p%40ss@h/x?api_key=K3y-1234", {"authorization": "Bearer tok-5678"})
    message = "401 for https://user:p%40ss@h/x?api_key=K3y-1234: bad Bearer tok-5678 (Basic dXNlcjpwQHNz)"
    redacted = redact_known(message, values)
    assert not [v for v in ("p%40ss", "K3y-1234", "tok-5678", "dXNlcjpwQHNz") if v in redacted], redacted


@given(st.text(max_size=200))
def test_safe_url_never_raises_and_never_keeps_user_info(text):
    url = f"https://u:{text.replace('@', '').replace('/', '').replace('?', '').replace('#', '')}@h/p?{text}"
    assert "u:" not in safe_url(url).split("@h/")[0]


def test_the_literal_prefilter_never_hides_a_secret_re2_would_find():
    """scrub_secrets asks a cheap literal search first: every letter RE2's (?i) folds must fold in
    ``re`` too, and every shape must still be scrubbed (case variants, the long s for s, escapes)."""
    import re

    import re2

    from or_middleware.secrets import SECRET, scrub_secrets

    for letter in set("bearerbasic"):
        folds = re2.compile(f"(?i:{letter})")
        for code in (*range(0x80), *range(0x80, 0x2200)):
            char = chr(code)
            if folds.fullmatch(char):
                assert re.fullmatch(f"(?i:{letter})", char), (letter, hex(code))
    for text in ("Authorization: BEARER abcdefgh1234", "ba\u017fic YWxhZGRpbjpvcGVuc2VzYW1l",
                 "key sk-proj-abcdefghijkl", "AKIAABCDEFGHIJKLMNOP", "ghp_" + "a" * 36, "AIza" + "b" * 35,
                 "xoxb-1234567890-abc",
                 "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.c2lnbmF0dXJlMTIz", "\\nsk-abcdefghijklmnop"):
        assert SECRET in scrub_secrets(text), text
    assert scrub_secrets("an ordinary sentence about tokens") == "an ordinary sentence about tokens"
