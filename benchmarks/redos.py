"""Every pattern we run on client text, fed the worst input we could construct (ReDoS check).

```bash
.venv/bin/python -m benchmarks.redos              # 64 KiB of each worst input, every pattern
.venv/bin/python -m benchmarks.redos --size 16384 # another size
.venv/bin/python -m benchmarks.redos --before     # also main@154468c's patterns (slow: ~20 s)
```

Prints a markdown table: per pattern, the slowest of the adversarial inputs below at that size
(CPU time of this thread, best of 3), and its growth from 1/16 of the size (linear: ~16x,
quadratic: ~256x). ``tests/test_linear_patterns.py`` asserts the growth stays linear on
generated inputs; this script publishes the figures (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable

from or_middleware.export import redaction
from or_middleware.export.redaction import PIIRedactor
from or_middleware.secrets import is_sensitive_name, safe_url, scrub_secrets
from or_middleware.security.injection import INJECTION_PHRASES, normalise

# Units repeated to the size: each is the worst case we know for at least one pattern
# (a long run a greedy part swallows before failing, at every start position).
WORST_UNITS: tuple[str, ...] = (
    "a.", "-eyJ", "eyJa", "eyJ.", "sk-a", "a@", "a@a.", "@a.", "a-", "A", "AKIA", "ghp_", "AIza", "xoxb-",
    "Bearer ", "bearer\t", "1 ", "1-", "1.", "11.", "1", "0:", "a:", "f:", ":", "+1 ", "(1) ", "1 (", "12-",
    "\\", '\\"', '"', '"a', "\\n", "\\u00", "AB12 ", "DE89", "ignore all ", "ignore the ", "reveal your full ",
    "you are now ", "pretend you have no ", "end of ", "<|", "a", " ", "é", "@", "=", "&a=", "key=",
)


def _sub(pattern: object) -> Callable[[str], object]:
    return lambda text: pattern.sub(lambda m: m.group(0), text)  # type: ignore[attr-defined]


def _injection(pattern: re.Pattern[str]) -> Callable[[str], object]:
    return lambda text: pattern.search(normalise(text))


_REDACTOR = PIIRedactor({"EMPLOYEE_ID": r"EMP-\d{6}"})


def patterns() -> dict[str, Callable[[str], object]]:
    """Every pattern (or pattern-driven function) that sees text a client controls."""
    found: dict[str, Callable[[str], object]] = {
        "secret scrubber (all shapes, one pass)": scrub_secrets,
        "PII e-mail": _sub(redaction._EMAIL),
        "PII IBAN": _sub(redaction._IBAN),
        "PII card": _sub(redaction._CARD),
        "PII IPv4": _sub(redaction._IPV4),
        "PII IPv6": _sub(redaction._IPV6),
        "PII phone (with validation)": redaction._phone_rule("US"),
        "PII redactor, plain text (every rule)": _REDACTOR.redact,
        "PII redactor, JSON content": lambda text: _REDACTOR.redact_content(json.dumps([{"content": text}])),
        "PII redactor, JSON content cut by the cap": lambda text: _REDACTOR.redact_content('[{"content":"' + text),
        "URL credentials (safe_url)": lambda text: safe_url("https://u:p@h/p?" + text + "#" + text),
        "sensitive header/parameter name": is_sensitive_name,
    }
    for phrase in INJECTION_PHRASES:
        found[f"injection phrase {phrase.name}"] = _injection(phrase.pattern)
    return found


def before_patterns() -> dict[str, Callable[[str], object]]:
    """main@154468c's secret and e-mail patterns, for the before/after figures."""
    old_secrets = [re.compile(p) for p in (
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", r"\bsk-[A-Za-z0-9][A-Za-z0-9_-]{11,}",
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b", r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", r"\bAIza[0-9A-Za-z_-]{35}\b",
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}")]
    old_email = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")

    def old_scrub(text: str) -> str:
        for pattern in old_secrets:
            text = pattern.sub("[SECRET]", text)
        return text

    return {"before: secret scrubber (154468c)": old_scrub, "before: PII e-mail (154468c)": _sub(old_email)}


def cpu_seconds(run: Callable[[str], object], text: str, repeat: int = 3) -> float:
    """Best-of CPU time of this thread: other processes on the machine do not count."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        run(text)
        best = min(best, time.thread_time() - started)
    return best


def worst_input(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def measure(run: Callable[[str], object], size: int, units: tuple[str, ...] = WORST_UNITS) -> tuple[str, float, float]:
    """(worst unit, seconds at ``size``, growth from size/16) for one pattern."""
    timings = [(cpu_seconds(run, worst_input(unit, size), repeat=2), unit) for unit in units]
    seconds, unit = max(timings)
    small = cpu_seconds(run, worst_input(unit, size // 16))
    seconds = cpu_seconds(run, worst_input(unit, size))
    return unit, seconds, seconds / max(small, 1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64 * 1024, help="characters of worst input (default 64 KiB)")
    parser.add_argument("--before", action="store_true", help="also time main@154468c's patterns")
    args = parser.parse_args()
    table = patterns() | (before_patterns() if args.before else {})
    print(f"| pattern | worst input ({args.size // 1024} KiB of) | CPU ms | MB/s | growth from 1/16 size |")
    print("|---|---|---:|---:|---:|")
    for name, run in table.items():
        unit, seconds, growth = measure(run, args.size)
        rate = args.size / 1e6 / max(seconds, 1e-9)
        print(f"| {name} | `{unit!r}` | {seconds * 1000:.1f} | {rate:.1f} | {growth:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
