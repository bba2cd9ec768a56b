"""The PostgreSQL engine: connections to read (read-only sessions) and to write (migrated schema).

The schema version lives in ``or_middleware_schema``; migrations run in one transaction under an
advisory lock, so many app instances starting at once migrate the database once. A reader's
session has ``default_transaction_read_only`` on: even a URL with an owner's rights cannot write.
Messages never hold the password of the URL (:func:`~or_middleware.store.sql.without_secrets`).
"""

from __future__ import annotations

from typing import Any

from or_middleware.store.schema import POSTGRES_MIGRATIONS, SCHEMA_VERSION, TABLES, NotAStoreError, check_tables
from or_middleware.store.sql import display_url, without_secrets

_MIGRATION_LOCK = 0x6F725F6D  # pg_advisory_xact_lock key: "or_m"
_TABLE_COLUMNS = """
SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.oid IN (to_regclass('generations'), to_regclass('security_events')) AND a.attnum > 0 AND NOT a.attisdropped
"""


class SchemaUnreadable(NotAStoreError):
    """The schema could not be read (the connection failed, a privilege is missing): no verdict on the database."""


def connection_kwargs(db: str, *, read_only: bool, connect_timeout_s: float,
                      application_name: str = "or_middleware") -> dict[str, Any]:
    """psycopg.connect() keyword arguments for the URL ``db`` (its own ``options`` kept)."""
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = dict(conninfo_to_dict(db))
    if read_only:
        params["options"] = f"{params.get('options', '')} -c default_transaction_read_only=on".strip()
    params.setdefault("connect_timeout", max(1, int(connect_timeout_s)))
    params.setdefault("application_name", application_name)
    return params


def _read_schema(connection: Any) -> tuple[int, dict[str, set[str]]]:
    [(found,)] = connection.execute("SELECT to_regclass('or_middleware_schema') IS NOT NULL").fetchall()
    version = 0
    if found:
        rows = connection.execute("SELECT version FROM or_middleware_schema").fetchall()
        version = int(rows[0][0]) if rows else 0
    columns_of: dict[str, set[str]] = {}
    for table, column in connection.execute(_TABLE_COLUMNS).fetchall():
        columns_of.setdefault(table, set()).add(column)
    return version, columns_of


def schema_version(connection: Any, db: str) -> int:
    """The store's schema version after checking the tables are ours (0: no store in this database)."""
    import psycopg

    try:
        for first_read in (True, False):
            version, columns_of = _read_schema(connection)
            # Each statement reads its own snapshot: another instance's first migration may have committed
            # between our two reads (no schema table, then its tables). Read once more before calling it foreign.
            if not (first_read and version == 0 and columns_of):
                break
    except psycopg.Error as exc:
        message = without_secrets(f"{display_url(db)}: cannot read the store's schema: {exc}", db)
        raise SchemaUnreadable(message) from exc
    if version == 0:
        if columns_of:
            raise NotAStoreError(f"{display_url(db)} is not an or_middleware store (it has tables named "
                                 f"{', '.join(sorted(columns_of))} but no or_middleware_schema); refusing to use it")
        return 0
    check_tables(display_url(db), version, columns_of)
    return version


def open_postgres_readonly(db: str, *, connect_timeout_s: float = 10.0) -> tuple[Any, int]:
    """A read-only autocommit connection to the store at URL ``db``, and its schema version."""
    import psycopg

    from or_middleware.store.reader import StoreError

    try:
        connection = psycopg.connect(**connection_kwargs(db, read_only=True, connect_timeout_s=connect_timeout_s),
                                     autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(without_secrets(f"cannot connect to {display_url(db)}: {exc}", db)) from None
    try:
        version = schema_version(connection, db)
        if version == 0:
            raise NotAStoreError(f"{display_url(db)} holds no or_middleware store yet (no app has written to it)")
    except BaseException:
        connection.close()
        raise
    return connection, version


def migrate(connection: Any, db: str) -> int:
    """Bring the database to SCHEMA_VERSION (one instance at a time); the version it had."""
    with connection.transaction():
        # not the writer's per-batch statement_timeout: building an index over a large store takes longer
        connection.execute("SET LOCAL statement_timeout = 0")
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        version = schema_version(connection, db)
        if version == 0:
            connection.execute("CREATE TABLE or_middleware_schema (version INTEGER NOT NULL)")
            connection.execute("INSERT INTO or_middleware_schema VALUES (0)")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in POSTGRES_MIGRATIONS[number - 1]:
                connection.execute(statement)  # no parameters: psycopg leaves % alone
        if version < SCHEMA_VERSION:
            connection.execute("UPDATE or_middleware_schema SET version = %s", (SCHEMA_VERSION,))
    return version


def prune_postgres(db: str, *, before_unix_nano: int, dry_run: bool, vacuum: bool) -> tuple[int, int]:
    """Delete (or count) the rows that started before ``before_unix_nano``: (generations, security events).

    The only path past the append-only triggers: ``SET LOCAL or_middleware.prune = 'on'`` in this
    transaction. The role needs DELETE on both tables (the writer's and the UI's roles need not).
    """
    import psycopg

    from or_middleware.store.reader import StoreError

    try:
        with psycopg.connect(**connection_kwargs(db, read_only=dry_run, connect_timeout_s=10)) as connection:
            version = schema_version(connection, db)
            if version == 0:
                raise NotAStoreError(f"{display_url(db)} holds no or_middleware store")
            tables = [table for table, (since, _) in TABLES.items() if since <= version]  # v1: no security_events
            counts = dict.fromkeys(TABLES, 0)
            with connection.transaction():
                connection.execute("SET LOCAL or_middleware.prune = 'on'")
                for table in tables:
                    if dry_run:
                        cursor = connection.execute(f"SELECT COUNT(*) FROM {table} WHERE time_unix_nano < %s",
                                                    (before_unix_nano,))
                        counts[table] = int(cursor.fetchone()[0])  # type: ignore[index]
                    else:
                        cursor = connection.execute(f"DELETE FROM {table} WHERE time_unix_nano < %s",
                                                    (before_unix_nano,))
                        counts[table] = cursor.rowcount
            if vacuum and not dry_run:
                connection.autocommit = True
                for table in tables:
                    connection.execute(f"VACUUM {table}")
    except psycopg.Error as exc:
        hint = ("; prune needs a role that may DELETE from the store's tables (their owner: the writers' role)"
                if isinstance(exc, psycopg.errors.InsufficientPrivilege) else "")
        raise StoreError(without_secrets(f"{display_url(db)}: {exc}{hint}", db)) from None
    return counts["generations"], counts["security_events"]
