"""Credentials out of everything we write: spans, log lines, CLI output, files.

- :func:`scrub_secrets`: API keys, bearer tokens, AWS key ids, GitHub/Google/Slack tokens and
  JWTs in any text become ``[SECRET]`` (``Bearer [SECRET]`` keeps the scheme).
- :func:`safe_url`: a URL without its ``user:password@`` and with the values of sensitive query
  (and fragment) parameters replaced by ``REDACTED``; what every log line, CLI line and span
  attribute shows instead of a URL. :func:`safe_query` does the same for a bare query string.
- :func:`is_sensitive_name`: a header or query parameter name that carries credentials
  (``authorization``, ``cookie``, ``x-api-key``, ``api_key``, ``token``, ...).
- :func:`redact_known`: literal configured secrets (header values, API keys) out of a message,
  for texts a peer wrote (an error body echoing our key) whose shape no pattern knows.

Every pattern here runs on text a client controls, so every one is linear-time: the secret
patterns run in RE2 (google-re2, a DFA: no backtracking, time linear in the text), the name
pattern only on short names.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote_plus

import re2

SECRET = "[SECRET]"
REDACTED = "REDACTED"


def linear_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a bad user pattern is reported by us, not printed to stderr by RE2
    return options


def compile_linear(pattern: str) -> re2._Regexp:
    """``pattern`` compiled by RE2 (linear-time search). Raises ``re2.error`` on syntax RE2 lacks
    (lookarounds, backreferences)."""
    return re2.compile(pattern, linear_options())


# One pass for every shape (alternatives are tried leftmost-first, as separate passes were). A
# key may follow a JSON escape (``\\n``, ``\\u00a0``) in content attributes, where no word boundary
# separates it from the escape's letter: the escape is matched (group ``esc``) and kept.
_SECRETS = compile_linear(
    r"(?:(?P<esc>\\(?:[nrtfb]|u[0-9A-Fa-f]{4}))|\b)(?:"
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r"|sk-[A-Za-z0-9][A-Za-z0-9_-]{11,}"  # OpenAI sk-/sk-proj-, OpenRouter sk-or-v1-, Anthropic sk-ant-
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}\b"  # GitHub tokens
    r"|AIza[0-9A-Za-z_-]{35}\b"  # Google API keys
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|(?P<scheme>(?i:bearer|basic))(?P<space>(?:\s|\\[nrt])+)[A-Za-z0-9._~+/=-]{8,}"  # Authorization values
    r")"
)


# Every shape above contains one of these literals: a text with none of them holds no secret, and
# that is told by one search of fixed-length alternatives (linear: no quantifier to backtrack on)
# instead of a call into RE2 through its Python wrapper. IGNORECASE in ``re`` folds at least the
# characters RE2's ``(?i)`` does (the long s, U+017F, for ``s`` included), so nothing RE2 would match is skipped.
_MAYBE_SECRET = re.compile(r"eyJ|sk-|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|AIza|xox[abposr]-|(?i:bearer|basic)")


def _secret(match: re2._Match) -> str:
    scheme = match.group("scheme")
    kept = match.group("esc") or ""
    return f"{kept}{scheme}{match.group('space')}{SECRET}" if scheme else f"{kept}{SECRET}"


def scrub_secrets(text: str) -> str:
    """``text`` with every secret replaced by ``[SECRET]`` (``Bearer [SECRET]`` keeps the scheme)."""
    if len(text) < 12 or not _MAYBE_SECRET.search(text) or not _SECRETS.search(text):
        return text
    return _SECRETS.sub(_secret, text)


# Names (headers, query parameters, cookies) whose values are credentials. Matched anywhere in
# the name, case-insensitively: x-api-key, api_key, apikey, access_token, client_secret, ...
SENSITIVE_NAME_PATTERN = (
    r"auth|cookie|token|secret|passw|pwd|key|credential|signature|^sig$|session|csrf|xsrf|jwt|bearer|^code$"
)
_SENSITIVE_NAME = re.compile(SENSITIVE_NAME_PATTERN, re.IGNORECASE)
_MAX_NAME = 256


def is_sensitive_name(name: str) -> bool:
    """True for a header or parameter name whose value is a credential. Overlong names count
    as sensitive (a name is short; a long one is not worth the scan and fails closed)."""
    return len(name) > _MAX_NAME or _SENSITIVE_NAME.search(name) is not None


def safe_query(query: str, separator: str = "&") -> str:
    """A query string (``a=1&api_key=x``) with the values of sensitive parameters replaced."""
    if "=" not in query:
        return query
    parts = query.split(separator)
    changed = False
    for index, part in enumerate(parts):
        name, equals, value = part.partition("=")
        if equals and value and is_sensitive_name(_unquoted(name)):
            parts[index] = f"{name}={REDACTED}"
            changed = True
    return separator.join(parts) if changed else query


def _unquoted(name: str) -> str:
    return unquote_plus(name) if "%" in name or "+" in name else name


def safe_url(url: str) -> str:
    """``url`` without credentials: no ``user:password@``, sensitive query and fragment
    parameters' values ``REDACTED``. Any string is accepted (a relative target, garbage);
    nothing raises. Other characters are kept as they are (no re-encoding)."""
    if not isinstance(url, str) or not url:
        return url
    if "@" not in url and "?" not in url and "#" not in url:  # no user info, query or fragment: as it is
        return url
    rest, hash_, fragment = url.partition("#")
    base, question, query = rest.partition("?")
    scheme_end = base.find("://")
    authority_start = scheme_end + 3 if scheme_end >= 0 else (2 if base.startswith("//") else -1)
    if authority_start >= 0:  # scheme://authority or a scheme-relative //authority
        slash = base.find("/", authority_start)
        authority_end = len(base) if slash < 0 else slash
        at = base.rfind("@", authority_start, authority_end)
        if at >= 0:
            base = base[:authority_start] + base[at + 1:]
    if question:
        query = safe_query(query)
        if ";" in query:
            query = safe_query(query, ";")
    if hash_:
        fragment = safe_query(fragment)  # OAuth implicit flow: #access_token=...
    return f"{base}{question}{query}{hash_}{fragment}"


def redact_known(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each literal secret (and the URL-encoded form of it) replaced by ``[SECRET]``;
    then :func:`scrub_secrets`. Secrets shorter than 4 characters are ignored (they would erase
    ordinary words)."""
    for secret in secrets:
        if len(secret) < 4:
            continue
        for form in {secret, quote(secret, safe="")}:
            if form in text:
                text = text.replace(form, SECRET)
    return scrub_secrets(text)


def credential_values(url: str | None = None, headers: dict[str, str] | None = None) -> list[str]:
    """Every credential a destination's configuration holds: header values (and, for
    ``Basic``/``Bearer``, the token alone), the URL's user info and sensitive query values."""
    values: list[str] = []
    for value in (headers or {}).values():
        values.append(value)
        _, _, token = value.partition(" ")
        if token:  # "Bearer k", "ApiKey k", "Api-Token k", "sentry sentry_key=k": a vendor may quote k alone
            values.append(token)
            if "=" in token:
                values.append(token.rsplit("=", 1)[-1])
    if url:
        base = url.partition("#")[0]
        netloc_start = base.find("://")
        if netloc_start >= 0:
            authority = base[netloc_start + 3:].partition("/")[0]
            userinfo, at, _ = authority.rpartition("@")
            if at:  # also as HTTP clients send it: Authorization: Basic base64(user:password)
                values.append(userinfo)
                values.extend(part for part in userinfo.split(":") if part)
                values.append(base64.b64encode(unquote_plus(userinfo).encode()).decode())
        query = base.partition("?")[2]
        for part in query.replace(";", "&").split("&"):
            name, equals, value = part.partition("=")
            if equals and value and is_sensitive_name(_unquoted(name)):
                values.append(value)
    return sorted(set(values), key=len, reverse=True)  # longest first: a token inside a header value
