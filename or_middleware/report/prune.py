"""``or-middleware prune``: the one way rows leave the store (retention), explicit and counted."""

from __future__ import annotations

from dataclasses import dataclass

from or_middleware.export.store import open_store


@dataclass(frozen=True)
class Pruned:
    generations: int
    security_events: int


_TABLES = ("generations", "security_events")


def prune(path: str, *, before_unix_nano: int, dry_run: bool = False, vacuum: bool = False) -> Pruned:
    """Delete rows that started before ``before_unix_nano`` (count only, with ``dry_run``)."""
    connection = open_store(path, create=False)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            counts = []
            for table in _TABLES:
                verb = "SELECT COUNT(*) FROM" if dry_run else "DELETE FROM"
                cursor = connection.execute(f"{verb} {table} WHERE time_unix_nano < ?", (before_unix_nano,))
                counts.append(cursor.fetchone()[0] if dry_run else cursor.rowcount)
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
