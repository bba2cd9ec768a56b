"""The Explorer's pages: parse the query, read the store, render a template. Sync endpoints:
Starlette runs them in its thread pool, so a slow query never blocks the event loop."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from or_middleware.report.figures import GROUPINGS
from or_middleware.ui import queries
from or_middleware.ui.app import SafeJSONResponse, local_time, render, store_of
from or_middleware.ui.content import conversation, messages
from or_middleware.ui.filters import (
    PAGE_SIZES,
    SINCE_CHOICES,
    SORTS,
    BadParameter,
    GenerationFilter,
    Paging,
    TimeRange,
    link,
    parse_by,
)

LIVE_LIMIT = 100
MAX_ROW_ID = 2**63 - 1


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params)


def _pager(request: Request, paging: Paging, total: int | None = None, more: bool = False,
           capped: bool = False) -> dict[str, Any]:
    """Links to the neighbouring pages; ``total`` when counted (``capped``: at least that many), else
    ``more``: a row beyond this page exists."""
    params = _params(request)
    last = None if total is None or capped else max(1, -(-total // paging.size))
    has_next = paging.page < last if last is not None else more
    return {
        "total": total, "capped": capped, "page": paging.page, "last": last,
        "previous": link(request.url.path, {**params, "page": paging.page - 1}) if paging.page > 1 else None,
        "next": link(request.url.path, {**params, "page": paging.page + 1}) if has_next else None,
    }


def _shown(rows: list[dict[str, Any]], paging: Paging) -> tuple[list[dict[str, Any]], bool]:
    """A page's rows (read one beyond it) and whether there is a next page."""
    return rows[:paging.size], len(rows) > paging.size


def overview(request: Request) -> HTMLResponse:
    params = _params(request)
    if params.get("meta_by", "").strip():  # the form's "or metadata key" field
        params["by"] = f"metadata.{params['meta_by'].strip()}"
    time, by = TimeRange.parse(params), parse_by(params)
    with store_of(request).connect() as reader:
        usage = queries.overview(reader, time, by)
    return render(request, "overview.html", time=time, by=by, groupings=list(GROUPINGS), usage=usage,
                  overall=usage.overall.as_dict(), groups=[g.as_dict() for g in usage.groups],
                  series_link=link("api/series", {"since": time.since, "by": by}), since_choices=SINCE_CHOICES)


def overview_series(request: Request) -> Response:
    """The overview's charts as JSON, fetched by the page after it is shown (the totals come first)."""
    params = _params(request)
    time, by = TimeRange.parse(params), parse_by(params)
    with store_of(request).connect() as reader:
        series = queries.overview_series(reader, time, by)
    return SafeJSONResponse(series.as_dict())


def models(request: Request) -> HTMLResponse:
    time = TimeRange.parse(_params(request))
    with store_of(request).connect() as reader:
        usage = queries.overview(reader, time, "model")
    rows = []
    for group in usage.groups:
        row = group.as_dict()
        row["cost_per_1k_output"] = group.cost_usd / group.output_tokens * 1000 if group.output_tokens else None
        row["tokens_per_s"] = group.output_tokens_per_s  # over the calls that produced output tokens
        rows.append(row)
    best = _best(rows, {"error_rate": min, "mean_cost_usd": min, "cost_per_1k_output": min, "latency_p50_s": min,
                        "latency_p95_s": min, "latency_p99_s": min, "ttfc_p50_s": min, "tokens_per_s": max})
    return render(request, "models.html", time=time, rows=rows, best=best, since_choices=SINCE_CHOICES)


def _best(rows: list[dict[str, Any]], rules: dict[str, Any]) -> dict[str, Any]:
    """Per column, the best value among the models (highlighted when more than one model competes)."""
    best = {}
    working = [row for row in rows if row["errors"] < row["requests"]]  # a model that only failed wins nothing
    for column, pick in rules.items():
        values = [row[column] for row in working if row[column] is not None]
        if len(values) > 1:
            best[column] = pick(values)
    return best


def generations(request: Request) -> HTMLResponse:
    params = _params(request)
    found, paging = GenerationFilter.parse(params), Paging.parse(params)
    with store_of(request).connect() as reader:
        page = queries.generations_page(reader, found, paging)
    sort_links = {
        name: link(request.url.path, {**params, "sort": name, "page": 1,
                                      "order": "asc" if paging.sort == name and paging.descending else "desc"})
        for name in SORTS
    }
    return render(request, "generations.html", filter=found, filter_query=found.query(), paging=paging,
                  rows=page.rows, pages=_pager(request, paging, page.total, page.more, page.capped),
                  sort_links=sort_links, page_sizes=PAGE_SIZES, since_choices=SINCE_CHOICES, params=params)


def generation(request: Request) -> HTMLResponse:
    generation_id = request.path_params["generation_id"]
    if generation_id > MAX_ROW_ID:  # SQLite cannot even bind it
        raise HTTPException(404)
    with store_of(request).connect() as reader:
        record = queries.generation(reader, generation_id)
    if record is None:
        raise HTTPException(404)
    content = {column: messages(record.get(column)) for column in queries.CONTENT_COLUMNS}
    metadata = queries.json_object(record.get("metadata"))
    return render(request, "generation.html", g=record, content=content,
                  metadata=metadata if isinstance(metadata, dict) else None,
                  has_content=any(record.get(c) is not None for c in queries.CONTENT_COLUMNS))


def traces(request: Request) -> HTMLResponse:
    params = _params(request)
    time, paging = TimeRange.parse(params), Paging.parse({k: v for k, v in params.items() if k in ("page", "size")})
    with store_of(request).connect() as reader:
        rows, more = _shown(queries.traces_page(reader, time, paging), paging)
    return render(request, "traces.html", time=time, rows=rows, pages=_pager(request, paging, more=more),
                  since_choices=SINCE_CHOICES)


def trace(request: Request) -> HTMLResponse:
    trace_id = _required(request, "id")
    with store_of(request).connect() as reader:
        calls = queries.trace(reader, trace_id)
    if not calls:
        raise HTTPException(404)
    start = min(c["time_unix_nano"] for c in calls)
    finish = max(c["time_unix_nano"] + int(c["duration_s"] * 1e9) for c in calls)
    span = max(finish - start, 1)
    for call in calls:  # waterfall geometry, in percent of the request's span
        call["offset_pct"] = 100 * (call["time_unix_nano"] - start) / span
        call["width_pct"] = max(0.5, 100 * call["duration_s"] * 1e9 / span)
        call["offset_s"] = (call["time_unix_nano"] - start) / 1e9
    return render(request, "trace.html", trace_id=trace_id, calls=calls, start=start, total_s=span / 1e9,
                  cost=sum(c["cost_usd"] or 0 for c in calls))


def sessions(request: Request) -> HTMLResponse:
    params = _params(request)
    time, paging = TimeRange.parse(params), Paging.parse({k: v for k, v in params.items() if k in ("page", "size")})
    with store_of(request).connect() as reader:
        rows, more = _shown(queries.sessions_page(reader, time, paging), paging)
    return render(request, "sessions.html", time=time, rows=rows, pages=_pager(request, paging, more=more),
                  since_choices=SINCE_CHOICES)


def session(request: Request) -> HTMLResponse:
    session_id = _required(request, "id")
    with store_of(request).connect() as reader:
        calls = queries.session(reader, session_id)
    if not calls:
        raise HTTPException(404)
    return render(request, "session.html", session_id=session_id, calls=calls, turns=conversation(calls),
                  limit=queries.SESSION_CALLS,
                  cost=sum(c["cost_usd"] or 0 for c in calls))


def users(request: Request) -> HTMLResponse:
    params = _params(request)
    time, paging = TimeRange.parse(params), Paging.parse({k: v for k, v in params.items() if k in ("page", "size")})
    with store_of(request).connect() as reader:
        rows, more = _shown(queries.users_page(reader, time, paging), paging)
    return render(request, "users.html", time=time, rows=rows, pages=_pager(request, paging, more=more),
                  since_choices=SINCE_CHOICES)


def user(request: Request) -> HTMLResponse:
    params = _params(request)
    user_id = _required(request, "id")
    time = TimeRange.parse(params)
    only = GenerationFilter(time=time, text=(("user", user_id),))
    with store_of(request).connect() as reader:
        activity = queries.user_activity(reader, time, user_id)
        recent = queries.generations_page(reader, only, Paging(size=20)).rows
        user_sessions = queries.sessions_page(reader, time, Paging(size=20), user=user_id)[:20]
        signals = queries.security(reader, time, Paging(size=20), user=user_id)
        spend = queries.user_models(reader, time, user_id)
    return render(request, "user.html", user_id=user_id, time=time, activity=activity, recent=recent,
                  sessions=user_sessions, signals=signals, spend=spend, since_choices=SINCE_CHOICES,
                  generations_link=link("generations", {**only.query()}))


def security(request: Request) -> HTMLResponse:
    params = _params(request)
    time, paging = TimeRange.parse(params), Paging.parse({k: v for k, v in params.items() if k in ("page", "size")})
    with store_of(request).connect() as reader:
        found = queries.security(reader, time, paging)
    return render(request, "security.html", time=time, found=found, chart_data=found.series,
                  pages=_pager(request, paging, found.total), since_choices=SINCE_CHOICES)


def live(request: Request) -> HTMLResponse:
    with store_of(request).connect() as reader:
        rows = queries.latest(reader, 50)
    return render(request, "live.html", rows=rows, after=max((r["id"] for r in rows), default=0))


def live_data(request: Request) -> Response:
    """New generations after ``?after=ID`` as JSON (the Live page polls it)."""
    after = request.query_params.get("after", "0")
    if not (after.isascii() and after.isdigit() and len(after) <= 18):
        raise BadParameter("after", "a row id (whole number)")
    with store_of(request).connect() as reader:
        rows = queries.newer_than(reader, int(after), LIVE_LIMIT)
    for row in rows:
        row["time"] = local_time(row["time_unix_nano"])
    return SafeJSONResponse({"rows": rows})


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if not value or len(value) > 1024:
        raise BadParameter(name, "required")
    return value


ROUTES = [
    Route("/", overview, name="overview"),
    Route("/models", models, name="models"),
    Route("/generations", generations, name="generations"),
    Route("/generations/{generation_id:int}", generation, name="generation"),
    Route("/traces", traces, name="traces"),
    Route("/trace", trace, name="trace"),
    Route("/sessions", sessions, name="sessions"),
    Route("/session", session, name="session"),
    Route("/users", users, name="users"),
    Route("/user", user, name="user"),
    Route("/security", security, name="security"),
    Route("/live", live, name="live"),
    Route("/api/live", live_data, name="live_data"),
    Route("/api/series", overview_series, name="overview_series"),
]
