"""``or-middleware prune``: the one way rows leave the store (retention), explicit and counted."""

from __future__ import annotations

from dataclasses import dataclass

from or_middleware.store.sql import is_postgres_url


@dataclass(frozen=True)
class Pruned:
    generations: int
    security_events: int


TABLES = ("generations", "security_events")


def tables_of(version: int) -> list[str]:
    """The tables a store of schema ``version`` has (a version 1 store has no security_events)."""
    from or_middleware.store.schema import TABLES as SINCE

    return [table for table in TABLES if SINCE[table][0] <= version]


def prune(db: str, *, before_unix_nano: int, dry_run: bool = False, vacuum: bool = False) -> Pruned:
    """Delete rows that started before ``before_unix_nano`` (count only, with ``dry_run``)."""
    if is_postgres_url(db):
        from or_middleware.store.postgres import prune_postgres

        return Pruned(*prune_postgres(db, before_unix_nano=before_unix_nano, dry_run=dry_run, vacuum=vacuum))
    return _prune_sqlite(db, before_unix_nano=before_unix_nano, dry_run=dry_run, vacuum=vacuum)


def _prune_sqlite(path: str, *, before_unix_nano: int, dry_run: bool, vacuum: bool) -> Pruned:
    from or_middleware.store.sqlite import open_readonly, open_store

    if dry_run:  # counting needs no write access (nor migrates: an old store may lack a table)
        connection, version = open_readonly(path)
    else:
        connection = open_store(path, create=False)  # refuses a file that is not ours, changing nothing
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    try:
        connection.execute("BEGIN" if dry_run else "BEGIN IMMEDIATE")
        try:
            counts = [0] * len(TABLES)
            for table in tables_of(version):
                verb = "SELECT COUNT(*) FROM" if dry_run else "DELETE FROM"
                cursor = connection.execute(f"{verb} {table} WHERE time_unix_nano < ?", (before_unix_nano,))
                counts[TABLES.index(table)] = cursor.fetchone()[0] if dry_run else cursor.rowcount
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if not dry_run:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if vacuum:
                connection.execute("VACUUM")
        return Pruned(*counts)
    finally:
        connection.close()
