"""The store's schema: one set of tables and migrations, written for SQLite and for PostgreSQL.

Migration N moves a store from version N-1 to N. Migrations only add (tables, columns, indexes),
so an older library can still append to a newer store. SQLite keeps the version in
``PRAGMA user_version``; PostgreSQL in the one-row table ``or_middleware_schema``.

Both engines refuse ``UPDATE`` of a row (append-only, enforced by triggers in the database).
Rows leave only through ``or-middleware prune``: SQLite allows ``DELETE`` (a file's owner can do
anything to it anyway); PostgreSQL refuses ``DELETE`` and ``TRUNCATE`` unless the transaction
set ``or_middleware.prune = 'on'``, which only prune does (and a role without DELETE cannot).
"""

from __future__ import annotations

from collections.abc import Iterable

GENERATION_COLUMNS = (
    "time_unix_nano", "trace_id", "span_id", "parent_span_id", "service", "route", "operation",
    "user_id", "session_id", "request_model", "response_model", "provider", "upstream_provider",
    "input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens",
    "total_tokens", "cost_usd", "cost_source", "duration_s", "ttfc_s", "stream", "status", "error_type",
    "http_status", "finish_reason", "response_id", "prompt_sha256", "metadata",
    "system_instructions", "input_messages", "output_messages", "tool_definitions", "error_message",
)
SECURITY_COLUMNS = ("time_unix_nano", "trace_id", "span_id", "kind", "user_id", "route", "model", "evidence")
CONTENT_COLUMNS = ("system_instructions", "input_messages", "output_messages", "tool_definitions", "error_message")

# The columns each table must have for a reader to call the store ours, and the version that added it.
TABLES: dict[str, tuple[int, tuple[str, ...]]] = {
    "generations": (1, ("id", *GENERATION_COLUMNS)),
    "security_events": (2, ("id", *SECURITY_COLUMNS)),
}

# (SQL type for SQLite, for PostgreSQL) of each kind of column
_TYPES = {"int": ("INTEGER", "BIGINT"), "real": ("REAL", "DOUBLE PRECISION"), "text": ("TEXT", "TEXT")}
_GENERATION_TYPES = {
    "time_unix_nano": "int NOT NULL",  # start of the call
    "trace_id": "text NOT NULL", "span_id": "text NOT NULL", "parent_span_id": "text",
    "service": "text",
    "route": "text",  # trace.name: "METHOD /path" of the request, or the app's own name
    "operation": "text", "user_id": "text", "session_id": "text", "request_model": "text",
    "response_model": "text",
    "provider": "text",  # the API called
    "upstream_provider": "text",  # who served it (OpenRouter's provider)
    "input_tokens": "int",  # includes cached input tokens
    "output_tokens": "int",  # includes reasoning tokens
    "cached_tokens": "int", "cache_creation_tokens": "int", "reasoning_tokens": "int", "total_tokens": "int",
    "cost_usd": "real",
    "cost_source": "text",  # provider | price_table
    "duration_s": "real NOT NULL",
    "ttfc_s": "real",  # time to first chunk (streams)
    "stream": "int NOT NULL DEFAULT 0",
    "status": "text NOT NULL",  # ok | error
    "error_type": "text", "http_status": "int",
    "finish_reason": "text",  # comma-separated when several choices
    "response_id": "text", "prompt_sha256": "text",
    "metadata": "text",  # JSON object: the request's custom trace metadata
    # content columns: NULL when this destination's privacy mode is on
    "system_instructions": "text", "input_messages": "text", "output_messages": "text",
    "tool_definitions": "text", "error_message": "text",
}
_SECURITY_TYPES = {
    "time_unix_nano": "int NOT NULL", "trace_id": "text NOT NULL", "span_id": "text NOT NULL",
    "kind": "text NOT NULL", "user_id": "text", "route": "text", "model": "text",
    "evidence": "text NOT NULL",  # JSON object
}


def _columns(types: dict[str, str], engine: int) -> str:
    lines = []
    for name, spec in types.items():
        kind, _, rest = spec.partition(" ")
        lines.append(f"  {name} {_TYPES[kind][engine]}{' ' + rest if rest else ''}")
    return ",\n".join(lines)


def _table(name: str, types: dict[str, str], engine: int) -> str:
    key = "INTEGER PRIMARY KEY AUTOINCREMENT" if engine == 0 else "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    return f"CREATE TABLE {name} (\n  id {key},\n{_columns(types, engine)}\n)"


def _sqlite_append_only(table: str) -> str:
    return (f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table}\n"
            f"  BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


# Indexes serve the report and the UI: time ranges, a user's or session's calls, a trace, a prompt.
# PostgreSQL's carry ``id`` too (SQLite's indexes end with the rowid already): pages sort by (time, id).
_GENERATION_INDEXES = (
    ("generations_time", "time_unix_nano"),
    ("generations_user_time", "user_id, time_unix_nano"),
    ("generations_prompt", "prompt_sha256"),
    ("generations_trace", "trace_id"),
)
_GENERATION_INDEXES_3 = (
    ("generations_session_time", "session_id, time_unix_nano"),
)
# 5: a million calls answer in well under a second (benchmarks/store_scale.py). Percentiles walk an
# index in value order and stop at the rank they want (store/percentiles.py), overall and per model;
# the model filter and the UI's charts find a model's calls without reading the others; the figures'
# sums over a time range read one narrow index instead of the table's wide rows (content, ids, JSON).
MODEL = "COALESCE(response_model, request_model)"  # the `model` dimension (store/filters.py)
FIGURE_COLUMNS = ("status, input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost_usd, duration_s, "
                  "ttfc_s, response_model, request_model, user_id")
_GENERATION_INDEXES_5 = (
    ("generations_model_time", f"{MODEL}, time_unix_nano"),
    ("generations_duration", "duration_s, time_unix_nano"),
    ("generations_ttfc", "ttfc_s, time_unix_nano", "ttfc_s IS NOT NULL"),
    ("generations_model_duration", f"{MODEL}, duration_s, time_unix_nano"),
    ("generations_model_ttfc", f"{MODEL}, ttfc_s, time_unix_nano", "ttfc_s IS NOT NULL"),
)
_PG_INCLUDE = {"generations_model_duration": "response_model, request_model",
               "generations_model_ttfc": "response_model, request_model"}
# the time range's figures, covering (SQLite: key columns; PostgreSQL: INCLUDE, for index-only scans)
_FIGURES_INDEX = {
    0: f"CREATE INDEX generations_time_figures ON generations (time_unix_nano, {FIGURE_COLUMNS})",
    1: f"CREATE INDEX generations_time_figures ON generations (time_unix_nano) INCLUDE ({FIGURE_COLUMNS})",
}
# the most expensive calls first (the Generations list sorted by cost): SQLite's NULLs sort first, so
# its index read backwards is "DESC NULLS LAST, id DESC"; PostgreSQL's index says so
_COST_INDEX = {
    0: "CREATE INDEX generations_cost ON generations (cost_usd)",
    1: "CREATE INDEX generations_cost ON generations (cost_usd DESC NULLS LAST, id DESC)",
}


def _indexes(indexes: Iterable[tuple[str, ...]], table: str, engine: int) -> list[str]:
    """CREATE INDEX of each ``(name, columns[, partial condition])``."""
    statements = []
    for name, columns, *condition in indexes:
        if engine == 1 and columns.endswith("time_unix_nano"):
            columns += ", id"
        where = f" WHERE {condition[0]}" if condition else ""
        include = f" INCLUDE ({_PG_INCLUDE[name]})" if engine == 1 and name in _PG_INCLUDE else ""
        statements.append(f"CREATE INDEX {name} ON {table} ({columns}){include}{where}")
    return statements


SQLITE_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the generations table
    (_table("generations", _GENERATION_TYPES, 0), *_indexes(_GENERATION_INDEXES, "generations", 0),
     _sqlite_append_only("generations")),
    # 2: security signals, one row per span event or_middleware.security.<kind>
    (_table("security_events", _SECURITY_TYPES, 0),
     "CREATE INDEX security_events_time ON security_events (time_unix_nano)", _sqlite_append_only("security_events")),
    # 3: the UI's session pages, and security events by span
    (*_indexes(_GENERATION_INDEXES_3, "generations", 0),
     "CREATE INDEX security_events_span ON security_events (trace_id, span_id)"),
    # 4: PostgreSQL only (a SQLite batch is never re-sent; an old file may hold repeats a unique index would refuse)
    (),
    # 5: percentiles and the model's calls over a million rows
    (*_indexes(_GENERATION_INDEXES_5, "generations", 0), _FIGURES_INDEX[0], _COST_INDEX[0]),
)

SPAN_KEY_INDEX = "generations_span_key"

_PG_GUARD = """CREATE OR REPLACE FUNCTION or_middleware_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'TRUNCATE') AND current_setting('or_middleware.prune', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '% is append-only (% refused; rows leave only through or-middleware prune)',
    TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$"""


def _pg_append_only(table: str) -> tuple[str, str]:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION or_middleware_append_only()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION or_middleware_append_only()",
    )


POSTGRES_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (_PG_GUARD, _table("generations", _GENERATION_TYPES, 1), *_indexes(_GENERATION_INDEXES, "generations", 1),
     *_pg_append_only("generations")),
    (_table("security_events", _SECURITY_TYPES, 1),
     "CREATE INDEX security_events_time ON security_events (time_unix_nano, id)", *_pg_append_only("security_events")),
    (*_indexes(_GENERATION_INDEXES_3, "generations", 1),
     "CREATE INDEX security_events_span ON security_events (trace_id, span_id)"),
    # 4: one row per span, so a batch re-sent after a lost commit (the spool) adds nothing: ON CONFLICT DO NOTHING
    (f"CREATE UNIQUE INDEX {SPAN_KEY_INDEX} ON generations (trace_id, span_id)",),
    # 5: percentiles and the model's calls over a million rows
    (*_indexes(_GENERATION_INDEXES_5, "generations", 1), _FIGURES_INDEX[1], _COST_INDEX[1]),
)
assert len(SQLITE_MIGRATIONS) == len(POSTGRES_MIGRATIONS)
SCHEMA_VERSION = len(SQLITE_MIGRATIONS)


class NotAStoreError(RuntimeError):
    """The database is not an or_middleware store (another application's file or database)."""


class StoreVersionError(RuntimeError):
    """The store was written by a newer or_middleware whose schema this version cannot read."""


def check_tables(where: str, version: int, columns_of: dict[str, set[str]]) -> None:
    """Raise NotAStoreError unless ``columns_of`` (table -> its columns) holds our tables of ``version``.

    ``where`` names the database in the message (a path, or a URL without its password).
    """
    for table, (since, wanted) in TABLES.items():
        if version < since:
            continue
        have = columns_of.get(table)
        if have is None:
            raise NotAStoreError(f"{where} is not an or_middleware store (it has no {table} table); refusing to use it")
        missing = [column for column in wanted if column not in have]
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise NotAStoreError(f"{where} is not an or_middleware store (its {table} table lacks {shown}); "
                                 "refusing to use it")
