"""The report as text: ``table`` (fits the terminal: ``COLUMNS``, else its width, else 80), ``json``
and ``csv`` (every value in full, for scripts).

Nothing a user may need to copy is cut: a model name, user id or route too long for its column is
printed whole on a line of its own with the row's figures on the next, and long lines (the store's
path, security evidence) wrap between words, never inside one.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import textwrap
from collections.abc import Callable, Sequence

from or_middleware.announce import store_location
from or_middleware.report.figures import Figures, SecurityReport, UsageReport
from or_middleware.report.periods import local_time
from or_middleware.terminal import printable

MIN_WIDTH = 40  # below this, lines are wrapped for 40 columns anyway


def terminal_width() -> int:
    return max(MIN_WIDTH, shutil.get_terminal_size((80, 24)).columns)
# header, width, the value, and its forms from the most precise down
Column = tuple[str, int, Callable[[Figures], "float | None"], Callable[[float], list[str]]]


def _int_forms(value: float) -> list[str]:
    forms = [f"{int(value):,}"]
    scales = [(scale, suffix) for scale, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")) if value >= scale]
    if scales:
        scale, suffix = scales[-1]
        forms.append(f"{value / scale:.1f}{suffix}")
    return forms


def _usd_forms(value: float) -> list[str]:
    return [f"{value:.6f}", f"{value:.2f}", f"{value:.2g}"]


def _seconds_forms(value: float) -> list[str]:
    return [f"{value:.3f}", f"{value:.1f}", f"{value:.2g}"]


def _percent_forms(value: float) -> list[str]:
    return [f"{100 * value:.1f}%", f"{100 * value:.0f}%"]


def _cell(value: float | None, forms: Callable[[float], list[str]], width: int) -> str:
    """The most precise form of ``value`` that leaves at least one space before the cell."""
    if value is None:
        return "-".rjust(width)
    candidates = forms(value)
    text = next((form for form in candidates if len(form) < width), candidates[-1])
    return text.rjust(width)


def _int(value: int) -> str:
    return f"{value:,}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    """``text`` in lines of at most ``width``, broken between words only (a word longer than the
    width gets a line of its own, whole)."""
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [""]


def _since(since_unix_nano: int) -> str:
    return "the beginning" if since_unix_nano == 0 else local_time(since_unix_nano)


def _key_width(keys: Sequence[str], room: int) -> int:
    """As wide as the longest key that fits in ``room`` (longer ones get lines of their own)."""
    fitting = [len(key) + 1 for key in keys if len(key) + 1 <= room]
    return max(fitting) if fitting else max(2, room)


def _keyed(key: str, cells: str, key_width: int) -> list[str]:
    """A row: the key, then its cells; a key that does not fit its column goes whole on a line of its own."""
    return [key.ljust(key_width) + cells] if len(key) < key_width else [key, " " * key_width + cells]


def _table(title: str, rows: Sequence[Figures], columns: Sequence[Column], width: int) -> list[str]:
    """The key column takes what the figures leave of ``width``, as much as the longest key needs
    (a narrow terminal leaves it a minimum and puts longer keys on lines of their own)."""
    key_width = _key_width([title, *(row.key or "" for row in rows)], width - sum(w for _, w, _, _ in columns))
    lines = _keyed(title, "".join(h.rjust(w) for h, w, _, _ in columns), key_width)
    for row in rows:
        lines += _keyed(row.key or "", "".join(_cell(value(row), forms, w) for _, w, value, forms in columns),
                        key_width)
    return lines


_VOLUME: list[Column] = [
    ("reqs", 7, lambda f: f.requests, _int_forms),
    ("err%", 7, lambda f: f.error_rate, _percent_forms),
    ("tok in", 10, lambda f: f.input_tokens, _int_forms),
    ("tok out", 10, lambda f: f.output_tokens, _int_forms),
    ("cost $", 11, lambda f: f.cost_usd, _usd_forms),
    ("mean $", 11, lambda f: f.mean_cost_usd, _usd_forms),
]
_TIMING: list[Column] = [
    ("p50 s", 8, lambda f: f.latency(50), _seconds_forms),
    ("p95 s", 8, lambda f: f.latency(95), _seconds_forms),
    ("p99 s", 8, lambda f: f.latency(99), _seconds_forms),
    ("ttfc50", 8, lambda f: f.ttfc(50), _seconds_forms),
    ("ttfc95", 8, lambda f: f.ttfc(95), _seconds_forms),
    ("cached", 8, lambda f: f.cached_tokens, _int_forms),
    ("reason", 8, lambda f: f.reasoning_tokens, _int_forms),
]
_SPEND: list[Column] = [("reqs", 7, lambda f: f.requests, _int_forms), ("cost $", 12, lambda f: f.cost_usd, _usd_forms)]


def usage_table(report: UsageReport, db: str, width: int | None = None) -> str:
    width = width or terminal_width()
    o = report.overall
    lines = [
        *_wrap(f"{store_location(db)}: {o.requests:,} calls since {_since(report.since_unix_nano)}", width),
        "",
        f"errors       {o.errors:,} ({100 * o.error_rate:.1f}%)",
        f"tokens       in {o.input_tokens:,}  out {o.output_tokens:,}  cached {o.cached_tokens:,}  "
        f"reasoning {o.reasoning_tokens:,}",
        f"cost         ${_usd(o.cost_usd)} total  ${_usd(o.mean_cost_usd)} mean",
        f"latency      p50 {_seconds(o.latency(50))}s  p95 {_seconds(o.latency(95))}s  "
        f"p99 {_seconds(o.latency(99))}s",
        f"first chunk  p50 {_seconds(o.ttfc(50))}s  p95 {_seconds(o.ttfc(95))}s",
    ]
    if report.groups:
        lines += ["", *_table(report.by, report.groups, _VOLUME, width)]
        lines += ["", *_table(report.by, report.groups, _TIMING, width)]
    if report.top_spenders:
        lines += ["", *_table("top spenders", report.top_spenders, _SPEND, width)]
    return "\n".join(printable(line) for line in lines) + "\n"  # models, users, routes come from clients


def usage_json(report: UsageReport, db: str) -> str:
    return json.dumps(
        {
            "db": db,
            "since_unix_nano": report.since_unix_nano,
            "by": report.by,
            "overall": report.overall.as_dict(),
            "groups": [g.as_dict() for g in report.groups],
            "top_spenders": [s.as_dict() for s in report.top_spenders],
        },
        indent=2,
    ) + "\n"


def usage_csv(report: UsageReport, db: str) -> str:
    out = io.StringIO()
    rows = [report.overall.as_dict(), *(g.as_dict() for g in report.groups)]
    rows[0]["key"] = "(all)"
    writer = csv.DictWriter(out, fieldnames=[report.by if k == "key" else k for k in rows[0]], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({(report.by if k == "key" else k): ("" if v is None else v) for k, v in row.items()})
    return out.getvalue()


def _evidence(text: str) -> str:
    try:
        evidence = json.loads(text)
    except ValueError:
        return text
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in evidence.items())


def _counts(title: str, rows: Sequence[tuple[str, Sequence[int]]], headers: Sequence[str], width: int) -> list[str]:
    """A key column (as wide as the longest key, within ``width``) and right-aligned counts."""
    key_width = _key_width([title.ljust(29), *(key for key, _ in rows)], width - 10 * len(headers))
    lines = _keyed(title, "".join(h.rjust(10) for h in headers), key_width)
    for key, counts in rows:
        lines += _keyed(key, "".join(f"{count:>10,}" for count in counts), key_width)
    return lines


def security_table(report: SecurityReport, db: str, width: int | None = None) -> str:
    width = width or terminal_width()
    total = sum(count for _, count, _ in report.by_kind)
    lines = _wrap(f"{store_location(db)}: {total:,} security signals since {_since(report.since_unix_nano)}", width)
    if report.by_kind:
        rows = [(kind, (count, users)) for kind, count, users in report.by_kind]
        lines += ["", *_counts("signal", rows, ("count", "users"), width)]
    if report.by_user:
        lines += ["", *_counts("most flagged users", [(u, (c,)) for u, c in report.by_user], ("count",), width)]
    if report.recent:
        lines += ["", "recent"]
        for e in report.recent:
            when = local_time(e.time_unix_nano)
            line = f"{when}  {e.kind}  {e.user or '-'}  {e.route or '-'}  {_evidence(e.evidence)}"
            lines += _wrap(line, width, indent="    ")
    return "\n".join(printable(line) for line in lines) + "\n"


def security_json(report: SecurityReport, db: str) -> str:
    return json.dumps(
        {
            "db": db,
            "since_unix_nano": report.since_unix_nano,
            "by_kind": [{"kind": k, "count": c, "users": u} for k, c, u in report.by_kind],
            "by_user": [{"user": u, "count": c} for u, c in report.by_user],
            "recent": [
                {"time_unix_nano": e.time_unix_nano, "kind": e.kind, "user": e.user, "route": e.route,
                 "model": e.model, "trace_id": e.trace_id, "evidence": json.loads(e.evidence)}
                for e in report.recent
            ],
        },
        indent=2,
    ) + "\n"


def security_csv(report: SecurityReport, db: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time_unix_nano", "kind", "user", "route", "model", "trace_id", "evidence"])
    for e in report.recent:
        writer.writerow([e.time_unix_nano, e.kind, e.user or "", e.route or "", e.model or "", e.trace_id, e.evidence])
    return out.getvalue()
