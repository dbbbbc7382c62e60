"""Keyset helpers shared by the SQL sources: batch boundaries computed in one server-side pass."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import psycopg
from psycopg import sql


def boundaries(
    conn: psycopg.Connection, table: sql.Composable, id_type: str, after_id: str | None, batch_size: int
) -> Iterator[str]:
    """Every batch_size-th id past after_id, then the last id: the upper bounds of the batches.

    Runs as one ordered index scan through a server-side cursor, so memory stays flat however
    many users the table holds (never OFFSET, never all rows in the client).
    """
    where = sql.SQL("WHERE id > {}::{}").format(sql.Literal(after_id), sql.SQL(id_type)) if after_id else sql.SQL("")
    # No count(*) OVER () to spot the last row: it made the server hold every row before the first
    # came out (~30 % of this pass). The last id comes from one backward index probe instead.
    query = sql.SQL(
        """SELECT id::text FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM {table} {where}) ranked
           WHERE n % {size} = 0
           ORDER BY n"""
    ).format(table=table, where=where, size=sql.Literal(batch_size))
    last_query = sql.SQL("SELECT id::text FROM {table} {where} ORDER BY id DESC LIMIT 1").format(
        table=table, where=where
    )
    with conn.transaction():
        upto: str | None = None
        with conn.cursor(name=f"boundaries_{uuid4().hex[:8]}") as cur:
            cur.itersize = 5000
            cur.execute(query)
            for (upto,) in cur:
                yield upto
        row = conn.execute(last_query).fetchone()
        last = row[0] if row else None
        if last is not None and last != upto:
            yield str(last)


def id_type_of(conn: psycopg.Connection, table: str) -> str:
    """The SQL type of table.id (uuid, bigint, text...), used to cast keyset parameters."""
    row = conn.execute(
        """SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
           WHERE a.attrelid = to_regclass(%s) AND a.attname = 'id' AND NOT a.attisdropped""",
        (table,),
    ).fetchone()
    return str(row[0]) if row else ""
