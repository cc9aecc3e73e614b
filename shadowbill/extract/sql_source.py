"""Read a legacy table or query from any SQLAlchemy URL, in chunks, with exact decimals.

SQLite and PostgreSQL are read through ADBC (Arrow record batches, no per-row Python)
when its drivers are installed; every other database, or a SQLite table whose column
types change partway through, goes through SQLAlchemy with a streaming cursor.
Decimals come out as exact text ("39.50"): NUMERIC/DECIMAL values are never floats here,
and a column the database itself stores as floating point is rendered by its shortest
round-trip text, never computed with.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from shadowbill.errors import SourceError

_PANDAS_TYPES = {
    pa.string(): pd.StringDtype("pyarrow"),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


class MixedColumnTypes(Exception):  # a restart signal, not a user-facing error
    """ADBC met a SQLite column whose type changes between batches; read it again via SQLAlchemy."""


def parse_url(url: str) -> URL:
    """A SQLAlchemy URL, or a SourceError that does not echo the password."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise SourceError("the source is neither a folder nor a SQLAlchemy database URL") from None


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``: safe to print, log and store."""
    return parse_url(url).render_as_string(hide_password=True)


def adbc_uri(url: str) -> tuple[str, str] | None:
    """The ADBC driver and URI for a SQLAlchemy URL (sqlite:///p -> p; postgresql+x://... -> postgresql://...).

    None when the database has no ADBC driver here, or the driver is not installed.
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and importlib.util.find_spec("adbc_driver_sqlite") is not None:
        database = parsed.database or ":memory:"
        return "sqlite", database
    if backend == "postgresql" and importlib.util.find_spec("adbc_driver_postgresql") is not None:
        uri = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return "postgresql", uri
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _normalize(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """One source column in the types conversions read: string, int64, bool or timestamp[us]."""
    t = col.type
    if isinstance(t, pa.ExtensionType):  # e.g. PostgreSQL NUMERIC: opaque text
        col = pa.chunked_array([c.storage for c in col.chunks], type=t.storage_type)
        t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_integer(t):
        try:
            return col.cast(pa.int64())
        except pa.ArrowInvalid:  # uint64 beyond int64: keep every digit as text
            return col.cast(pa.string())
    if pa.types.is_boolean(t):
        return col
    if pa.types.is_timestamp(t):
        return col.cast(pa.timestamp("us", tz=t.tz), safe=False)
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("us"))
    # Strings, NULL-only columns, decimals (exact text), floats (shortest round-trip text).
    return col.cast(pa.string())


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow data as a frame of string/Int64/boolean/datetime columns; no float column survives."""
    names = table.column_names
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise SourceError(f"the source returns column(s) {', '.join(doubled)} twice; alias them")
    columns = []
    for name, column in zip(names, table.columns, strict=True):
        try:
            columns.append(_normalize(column))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceError(
                f"source column {name!r} ({column.type}) cannot be read as text: {_first_line(exc)}"
            ) from None
    normalized = pa.Table.from_arrays(columns, names=names)
    return normalized.to_pandas(types_mapper=_PANDAS_TYPES.get, self_destruct=True)


def _python_column(values: tuple[Any, ...]) -> pa.Array:
    """A column of DB-API values as Arrow: Decimals stay exact; mixed types become text."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(pd.Series(values, dtype=object).astype("string"), type=pa.string())


class SqlReader:
    """An open legacy database, read in chunks through ADBC or SQLAlchemy."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked = mask_url(url)
        self._adbc: Any = None
        self._engine: sa.Engine | None = None
        parsed = parse_url(url)
        self._backend = parsed.get_backend_name()
        if self._backend == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not Path(database).is_file():
                raise SourceError(f"{self.masked}: database file {database} not found")
        try:
            self._dialect = parsed.get_dialect()()
        except (NoSuchModuleError, ImportError) as exc:
            raise SourceError(f"{self.masked}: no SQLAlchemy driver ({_first_line(exc)})") from None
        target = adbc_uri(url)
        if target is not None:
            self._connect_adbc(*target)
        else:
            self.use_sqlalchemy()

    def _connect_adbc(self, driver: str, uri: str) -> None:
        try:
            if driver == "sqlite":
                import adbc_driver_sqlite.dbapi as adbc_sqlite

                self._adbc = adbc_sqlite.connect(uri)
            else:
                import adbc_driver_postgresql.dbapi as adbc_pg

                self._adbc = adbc_pg.connect(uri)
        except Exception as exc:  # driver errors have no common base class
            raise SourceError(f"cannot connect to {self.masked}: {self._safe(exc)}") from None

    def use_sqlalchemy(self) -> None:
        """Read through SQLAlchemy from now on (any database; mixed-type SQLite columns)."""
        self.close()
        try:
            self._engine = sa.create_engine(self.url)
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:  # DBAPI errors differ per driver
            raise SourceError(f"cannot connect to {self.masked}: {self._safe(exc)}") from None

    @property
    def via(self) -> str:
        """Which access path is in use: ``adbc`` or ``sqlalchemy``."""
        return "adbc" if self._adbc is not None else "sqlalchemy"

    def _safe(self, exc: BaseException) -> str:
        """An exception's first line with the password blanked out."""
        line = _first_line(exc)
        password = parse_url(self.url).password
        return line.replace(str(password), "***") if password else line

    def select(self, *, table: str | None = None, query: str | None = None) -> str:
        """The SELECT for a source table (quoted per dialect, ``schema.table`` allowed) or query."""
        if query is not None:
            return query.strip().rstrip(";")
        assert table is not None
        quote = self._dialect.identifier_preparer.quote
        return "SELECT * FROM " + ".".join(quote(part) for part in table.split("."))

    def _for_driver(self, sql: str) -> str:
        """The SQL as the DB-API driver must see it: format-style drivers (pymysql, psycopg)
        read ``%`` as a placeholder, so a literal ``LIKE 'a%'`` is written ``%%``."""
        assert self._engine is not None
        if self._engine.dialect.paramstyle in ("format", "pyformat"):
            return sql.replace("%", "%%")
        return sql

    def count(self, sql: str) -> int | None:
        """How many rows a SELECT returns (for progress), or None if the database cannot say."""
        counting = f"SELECT COUNT(*) FROM ({sql}) AS shadowbill_count"
        try:
            if self._adbc is not None:
                cur = self._adbc.cursor()
                try:
                    cur.execute(counting)
                    row = cur.fetchone()
                finally:
                    cur.close()
            else:
                assert self._engine is not None
                with self._engine.connect() as conn:
                    row = conn.exec_driver_sql(self._for_driver(counting)).fetchone()
        except Exception:  # counting is only for the progress bar
            return None
        return int(row[0]) if row else None

    def chunks(self, sql: str, chunk_size: int, what: str) -> Iterator[pd.DataFrame]:
        """The rows of a SELECT as frames of about ``chunk_size`` rows; errors name ``what``."""
        if self._adbc is not None:
            yield from self._adbc_chunks(sql, chunk_size, what)
        else:
            yield from self._sqlalchemy_chunks(sql, chunk_size, what)

    def _adbc_chunks(self, sql: str, chunk_size: int, what: str) -> Iterator[pd.DataFrame]:
        cur = self._adbc.cursor()
        try:
            try:
                if self._backend == "sqlite":  # infer each column's type from a whole chunk
                    cur.adbc_statement.set_options(
                        **{"adbc.sqlite.query.batch_rows": str(max(chunk_size, 1024))}
                    )
                cur.execute(sql)
                reader = cur.fetch_record_batch()
            except Exception as exc:
                raise SourceError(f"{self.masked}: cannot read {what}: {self._safe(exc)}") from None
            pending: list[pa.RecordBatch] = []
            rows = 0
            yielded = False
            batches = iter(reader)
            while True:
                try:
                    batch = next(batches, None)
                except OSError as exc:
                    if "type mismatch" in str(exc).lower():
                        raise MixedColumnTypes(what) from None
                    raise SourceError(
                        f"{self.masked}: reading {what} failed: {self._safe(exc)}"
                    ) from None
                if batch is not None and batch.num_rows:
                    pending.append(batch)
                    rows += batch.num_rows
                if pending and (batch is None or rows >= chunk_size):
                    yield arrow_to_pandas(pa.Table.from_batches(pending))
                    pending, rows, yielded = [], 0, True
                if batch is None:
                    break
            if not yielded:  # an empty result still tells its column names
                yield arrow_to_pandas(reader.schema.empty_table())
        finally:
            cur.close()

    def _sqlalchemy_chunks(self, sql: str, chunk_size: int, what: str) -> Iterator[pd.DataFrame]:
        assert self._engine is not None
        with self._engine.connect() as conn:
            try:
                streaming = conn.execution_options(stream_results=True)
                result = streaming.exec_driver_sql(self._for_driver(sql))
                names = list(result.keys())
            except Exception as exc:
                raise SourceError(f"{self.masked}: cannot read {what}: {self._safe(exc)}") from None
            first = True
            while True:
                try:
                    rows = result.fetchmany(chunk_size)
                except Exception as exc:
                    raise SourceError(
                        f"{self.masked}: reading {what} failed: {self._safe(exc)}"
                    ) from None
                if not rows and not first:
                    break
                first = False
                columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
                arrays = [_python_column(c) for c in columns]
                yield arrow_to_pandas(pa.Table.from_arrays(arrays, names=names))
                if not rows:
                    break

    def close(self) -> None:
        """Close the ADBC connection or dispose of the SQLAlchemy engine."""
        if self._adbc is not None:
            self._adbc.close()
            self._adbc = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> SqlReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
