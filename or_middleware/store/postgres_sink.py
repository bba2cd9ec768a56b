"""The ``local`` destination on PostgreSQL: a :class:`WireDelivery` of store rows, and its check.

``or-middleware check`` connects as the writer would and says whether it could write: the store's
schema version, or that the first writer will create it, and the privileges the role lacks. It
writes nothing (not even with ``--span``: a test row would count in every report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from or_middleware.export.delivery import WireDelivery
from or_middleware.export.transports import SendResult
from or_middleware.store.schema import SCHEMA_VERSION, NotAStoreError
from or_middleware.store.sql import without_secrets

_PRIVILEGES = """
SELECT has_table_privilege('generations', 'INSERT') AND has_table_privilege('security_events', 'INSERT')
         AND has_table_privilege('or_middleware_schema', 'SELECT'),
       pg_has_role((SELECT relowner FROM pg_class WHERE oid = 'generations'::regclass), 'USAGE')
"""


class PostgresStoreSink(WireDelivery):
    def probe(self, spans: Sequence[ReadableSpan]) -> SendResult:
        transport: Any = self.transport
        return check_postgres_store(transport.url, timeout=transport.timeout)


def _verdict(connection: Any, db: str) -> SendResult:
    from or_middleware.store.postgres import schema_version

    version = schema_version(connection, db)
    role = connection.execute("SELECT current_user").fetchone()[0]
    if version == 0:
        [(may_create,)] = connection.execute("SELECT has_schema_privilege(current_schema(), 'CREATE')").fetchall()
        if not may_create:
            return SendResult(False, reason=f"no store yet, and role {role} may not create one "
                                            "(GRANT CREATE ON SCHEMA public, or let the store's owner start first)")
        return SendResult(True, reason=f"no store yet: the first writer creates schema {SCHEMA_VERSION}")
    [(may_insert, owns)] = connection.execute(_PRIVILEGES).fetchall()
    if not may_insert:
        return SendResult(False, reason=f"role {role} may not write the store (GRANT INSERT ON generations, "
                                        "security_events and SELECT ON or_middleware_schema)")
    if version < SCHEMA_VERSION and not owns:
        return SendResult(False, reason=f"schema {version} needs migrating to {SCHEMA_VERSION} and role {role} "
                                        "does not own the tables (start one writer as their owner first)")
    return SendResult(True, reason=f"schema {version}, role {role} may write")


def check_postgres_store(db: str, *, timeout: float) -> SendResult:
    """Could the writer write to ``db``? One connection, nothing written."""
    import psycopg

    from or_middleware.store.postgres import connection_kwargs
    from or_middleware.store.postgres_writer import describe

    try:
        with psycopg.connect(**connection_kwargs(db, read_only=True, connect_timeout_s=timeout,
                                                 application_name="or_middleware-check"),
                             autocommit=True) as connection:
            result = _verdict(connection, db)
    except NotAStoreError as exc:
        return SendResult(False, reason=without_secrets(str(exc), db))
    except psycopg.Error as exc:
        return SendResult(False, reason=without_secrets(describe(exc), db))
    return result
