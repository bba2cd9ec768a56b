"""The report as text: ``table`` (fits an 80-column terminal), ``json`` and ``csv``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence

from or_middleware.report.figures import Figures, SecurityReport, UsageReport
from or_middleware.report.periods import local_time

WIDTH = 80
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


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _since(since_unix_nano: int) -> str:
    return "the beginning" if since_unix_nano == 0 else local_time(since_unix_nano)


def _table(title: str, rows: Sequence[Figures], columns: Sequence[Column], key_width: int) -> list[str]:
    lines = [_fit(title, key_width - 1).ljust(key_width) + "".join(h.rjust(w) for h, w, _, _ in columns)]
    for row in rows:
        cells = "".join(_cell(value(row), forms, w) for _, w, value, forms in columns)
        lines.append(_fit(row.key or "", key_width - 1).ljust(key_width) + cells)
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


def usage_table(report: UsageReport, db: str) -> str:
    o = report.overall
    lines = [
        _fit(f"{db}: {o.requests:,} calls since {_since(report.since_unix_nano)}", WIDTH),
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
        lines += ["", *_table(report.by, report.groups, _VOLUME, WIDTH - sum(c[1] for c in _VOLUME))]
        lines += ["", *_table(report.by, report.groups, _TIMING, WIDTH - sum(c[1] for c in _TIMING))]
    if report.top_spenders:
        lines += ["", *_table("top spenders", report.top_spenders, _SPEND, 30)]
    return "\n".join(lines) + "\n"


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


def security_table(report: SecurityReport, db: str) -> str:
    total = sum(count for _, count, _ in report.by_kind)
    lines = [_fit(f"{db}: {total:,} security signals since {_since(report.since_unix_nano)}", WIDTH)]
    if report.by_kind:
        lines += ["", f"{'signal':<30}{'count':>10}{'users':>10}"]
        lines += [f"{_fit(kind, 29):<30}{count:>10,}{users:>10,}" for kind, count, users in report.by_kind]
    if report.by_user:
        lines += ["", f"{'most flagged users':<30}{'count':>10}"]
        lines += [f"{_fit(user, 29):<30}{count:>10,}" for user, count in report.by_user]
    if report.recent:
        lines += ["", "recent"]
        for e in report.recent:
            when = local_time(e.time_unix_nano)
            line = f"{when}  {e.kind}  {e.user or '-'}  {e.route or '-'}  {_evidence(e.evidence)}"
            lines.append(_fit(line, WIDTH))
    return "\n".join(lines) + "\n"


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
