"""The probes' searches in PostgreSQL (backups_app/probes.py): vector columns named in
POSTGRES_VECTOR_COLUMNS as ``table.column`` or ``schema.table.column``, of pgvector's ``vector``
type or a float array (``real[]``, ``double precision[]``). Rows are named by the table's primary
key (one column). Probe rows are the ones with the smallest md5 of the key's text; each search is a
sequential scan (``enable_indexscan``, ``enable_bitmapscan`` off) ordered by Euclidean distance,
computed by pgvector's ``<->`` or, for arrays, in SQL; ties go to the smaller key text."""

from contextlib import contextmanager

import psycopg
from psycopg import sql

from backups_app.errors import ComponentError
from backups_app.parsing import comma_list

ARRAY_TYPES = ("real[]", "double precision[]", "numeric[]")

COLUMN_SQL = """
    SELECT format_type(a.atttypid, a.atttypmod),
           (SELECT array_agg(k.attname) FROM pg_index i JOIN pg_attribute k
                   ON k.attrelid = i.indrelid AND k.attnum = ANY(i.indkey)
            WHERE i.indrelid = c.oid AND i.indisprimary)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND NOT a.attisdropped
    WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s
"""


def split_column(text):
    """("schema", "table", "column") of ``table.column`` (schema public) or ``schema.table.column``."""
    parts = text.split(".")
    if len(parts) == 2:
        parts = ["public", *parts]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{text!r} is not table.column or schema.table.column")
    return tuple(parts)


def vector_columns(value):
    """POSTGRES_VECTOR_COLUMNS as a list, each entry checked."""
    columns = comma_list(value)
    for column in columns:
        split_column(column)
    return columns


def _plain(value):
    return value if isinstance(value, int) else str(value)


class PostgresSearcher:
    """Searches over the vector columns ``columns`` through the open connection ``conn``, each in a
    transaction block of its own (a savepoint inside the backup's snapshot transaction)."""

    def __init__(self, conn, columns, source):
        self.conn = conn
        self.columns = list(columns)
        self.source = source
        self._shapes = {}

    def collections(self):
        return self.columns

    def vectors_of(self, collection):
        return [""]

    def _shape(self, collection):
        """(table identifier, column identifier, key identifier, distance SQL taking the query)."""
        if collection not in self._shapes:
            schema, table, column = split_column(collection)
            rows = self._query(COLUMN_SQL, (schema, table, column))
            if not rows:
                raise ComponentError(f"{self.source}: POSTGRES_VECTOR_COLUMNS names {collection}, and there is no "
                                     "such column in this database.")
            ((kind, keys),) = rows
            if not keys or len(keys) != 1:
                raise ComponentError(f"{self.source}: the probes name rows of {schema}.{table} by its primary key, "
                                     "and it has none of one column.")
            name, col = sql.Identifier(schema, table), sql.Identifier(column)
            if kind.startswith("vector"):
                distance = sql.SQL("{} <-> %s::vector").format(col)
            elif kind in ARRAY_TYPES:
                distance = sql.SQL("(SELECT sum((a - b) * (a - b)) FROM unnest({}::float8[], %s::float8[]) u(a, b))"
                                   ).format(col)
            else:
                raise ComponentError(f"{self.source}: {collection} is of type {kind}; probes search pgvector "
                                     f"vector columns and float arrays ({', '.join(ARRAY_TYPES)}).")
            self._shapes[collection] = (name, col, sql.Identifier(keys[0]), distance, kind.startswith("vector"))
        return self._shapes[collection]

    @contextmanager
    def _block(self):
        try:
            with self.conn.transaction():
                yield
        except psycopg.Error as exc:
            raise ComponentError(f"{self.source}: a probe query failed: {str(exc).strip()}") from None

    def _query(self, statement, params=()):
        with self._block():
            return self.conn.execute(statement, params).fetchall()

    def choose(self, collection, k):
        table, col, key, _, _ = self._shape(collection)
        rows = self._query(sql.SQL("SELECT {key} FROM {table} WHERE {col} IS NOT NULL ORDER BY md5({key}::text) "
                                   "LIMIT %s").format(key=key, table=table, col=col), (k,))
        return [_plain(r[0]) for r in rows]

    def vectors(self, collection, ids, name):
        table, col, key, _, pgvector = self._shape(collection)
        array = sql.SQL("{}::real[]" if pgvector else "{}::float8[]").format(col)  # pgvector casts to real[]
        rows = self._query(sql.SQL("SELECT {key}, {array} FROM {table} WHERE {key}::text = ANY(%s)").format(
            key=key, array=array, table=table), ([str(i) for i in ids],))
        return {_plain(k): v for k, v in rows}

    def nearest(self, collection, name, queries, limit):
        table, col, key, distance, pgvector = self._shape(collection)
        statement = sql.SQL("SELECT {key}, {distance} AS d FROM {table} WHERE {col} IS NOT NULL "
                            "ORDER BY d, {key}::text LIMIT %s").format(key=key, distance=distance, table=table, col=col)
        answers = []
        with self._block():  # the settings last as long as this block
            for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
                self.conn.execute("SELECT set_config(%s, 'off', true)", (setting,))
            for query in queries:
                value = "[" + ",".join(repr(float(x)) for x in query) + "]" if pgvector else list(map(float, query))
                rows = self.conn.execute(statement, (value, limit)).fetchall()
                answers.append([(_plain(k), float(d)) for k, d in rows])
        return answers
