"""Reading OMOP CDM tables: a folder of CSV / CSV.gz / TSV / Parquet files, or a database through SQLAlchemy.

Both readers hand the loader (:mod:`kgrec.cohort.omop`) the same thing: a table's requested columns as
stripped strings (a missing value is ``""``), lower-case column names, and ``attrs["path"]`` naming
where the table was read (a file, or ``table person in postgresql://user:***@host/db, schema cdm``: a
password is never printed). Values are written one way whatever the store holds: integers as digits
(``123``, also from ``123.0`` in a float column), dates as ``YYYY-MM-DD``, timestamps as
``YYYY-MM-DD HH:MM:SS``, so a cohort read from CSV and from a database is the same.

Vocabulary tables can be large (a full OHDSI Athena download has ~6 M concepts and ~80 M ancestor
rows): they are read *filtered* (:meth:`CdmTables.read` with ``where``): only the rows whose key is
one the cohort needs, streamed in blocks from files and queried in chunks from a database.

Over the ~400-line guide: two readers (files in four forms, databases of any SQLAlchemy dialect) behind
one interface, with the error for each way a table can be missing or unreadable.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.errors import InputError
from kgrec.tables import check_cells, check_file, check_header, read_table

TEXT_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
IN_CHUNK = 5000  # ids per IN (...) query: under every database's parameter limit (SQLite: 32,766)
FETCH_BLOCK = 50_000  # rows per block fetched from a database
STREAM_BLOCK = 16 << 20


def cell_str(v: object) -> str:
    """One database or Parquet value as kgrec reads it from a CSV: see the module docstring."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating | decimal.Decimal):
        f = float(v)
        if f != f:  # NaN
            return ""
        return str(int(f)) if f.is_integer() else repr(f)
    if v is pd.NaT:
        return ""
    if isinstance(v, _dt.datetime):  # pandas Timestamps too
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, _dt.date):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace").strip()
    return str(v).strip()


def _series_str(values: Iterable) -> pd.Series:
    return pd.Series([cell_str(v) for v in values], dtype=object)


class CdmTables(ABC):
    """The CDM's tables, wherever they are. ``location`` names the folder or the database (no password)."""

    location: str

    @abstractmethod
    def has(self, name: str) -> bool:
        """Whether table ``name`` (any case) exists."""

    @abstractmethod
    def columns(self, name: str) -> list[str]:
        """Lower-case column names of table ``name`` (an :class:`InputError` if it does not exist)."""

    @abstractmethod
    def read(self, name: str, required: Iterable[str], optional: Iterable[str] = (),
             where: tuple[str, Iterable[str]] | None = None) -> pd.DataFrame:
        """The table's ``required`` (an error naming the column if absent) and present ``optional`` columns
        as stripped strings, plus ``_line`` (the row's line in a file; 0 for a database row). With
        ``where=(column, values)`` only rows whose column holds one of ``values`` (digit strings)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def _missing_column(col: str, found: list[str], where: str) -> InputError:
    return InputError(f"missing column (found: {', '.join(found) or 'none'}); see the OMOP CDM specification for this table", path=where, column=col)


# ---------------------------------------------------------------------------------------------- folders
class FolderTables(CdmTables):
    """``<folder>/<table>.csv`` (or ``.csv.gz``, ``.tsv``, ``.txt``, ``.parquet``; a folder ``<table>/`` or
    ``<table>.parquet/`` of Parquet parts), table names in any case (``PERSON.csv``, ``person.csv``).
    A text file's separator is read from its header line (tab or comma); tab-separated files are read
    without quoting, as OHDSI Athena writes its vocabulary files."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not self.folder.exists():
            raise InputError("OMOP CDM folder not found", path=self.folder)
        if not self.folder.is_dir():
            raise InputError("not a folder (pass the folder that holds person.csv, visit_occurrence.csv, ...)", path=self.folder)
        try:
            self._entries = {e.name: e for e in os.scandir(self.folder)}
        except OSError as exc:
            raise InputError(f"cannot list the folder: {exc.strerror}", path=self.folder) from None
        self.location = str(self.folder)

    def _find(self, name: str) -> Path | None:
        stem = name.lower()
        hits = []
        for fname, e in self._entries.items():
            low = fname.lower()
            if e.is_dir():
                if low in (stem, stem + ".parquet") and any(p.lower().endswith(PARQUET_SUFFIXES) for p in os.listdir(e.path)):
                    hits.append(fname)
            elif low in {stem + s for s in TEXT_SUFFIXES + PARQUET_SUFFIXES}:
                hits.append(fname)
        if len(hits) > 1:
            raise InputError(f"table {name!r} is ambiguous: {' and '.join(sorted(hits))} all match (names are compared "
                             "ignoring case and suffix); keep one", path=self.folder)
        return self.folder / hits[0] if hits else None

    def has(self, name: str) -> bool:
        return self._find(name) is not None

    def path(self, name: str) -> Path:
        p = self._find(name)
        if p is None:
            raise InputError(f"table {name!r} not found (looked for {name}.csv, .csv.gz, .tsv, .parquet, any case)", path=self.folder)
        return p

    @staticmethod
    def _is_parquet(p: Path) -> bool:
        return p.is_dir() or p.name.lower().endswith(PARQUET_SUFFIXES)

    def _text_header(self, p: Path) -> tuple[list[str], list[str], str]:
        """(raw header fields, lower-case names, separator) of a text table."""
        import gzip

        check_file(p)
        try:
            with (gzip.open(p, "rb") if p.name.lower().endswith(".gz") else open(p, "rb")) as f:
                first = f.readline(1 << 20)
        except OSError as exc:
            raise InputError(f"cannot read: {exc}", path=p) from None
        try:
            text = first.decode("utf-8-sig").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError("the header line is not UTF-8; re-save the file as UTF-8", path=p, line=1) from None
        if not text.strip():
            raise InputError("file is empty (no header line)", path=p)
        sep = "\t" if text.count("\t") > text.count(",") else ","
        raw = [f.strip().strip('"') for f in text.split(sep)]
        return raw, check_header(raw, p), sep

    def _parquet_schema(self, p: Path):
        import pyarrow.dataset as pads

        try:
            return pads.dataset(str(p), format="parquet")
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a broken file
            raise InputError(f"not a readable Parquet file ({str(exc)[:200]})", path=p) from None

    def columns(self, name: str) -> list[str]:
        p = self.path(name)
        if self._is_parquet(p):
            return [n.lower() for n in self._parquet_schema(p).schema.names]
        return self._text_header(p)[1]

    def read(self, name, required, optional=(), where=None) -> pd.DataFrame:
        p = self.path(name)
        required = [c.lower() for c in required]
        optional = [c.lower() for c in optional]
        if self._is_parquet(p):
            df = self._read_parquet(p, required, optional, where)
        elif where is not None:
            df = self._stream_text(p, required, optional, where)
        else:
            _, _, sep = self._text_header(p)
            df = read_table(p, required, optional, sep=sep, quote=sep != "\t")
            check_cells(df, p)
        df.attrs["path"] = str(p)
        df.attrs["lines"] = not self._is_parquet(p)
        return df

    def _read_parquet(self, p: Path, required, optional, where) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.dataset as pads

        ds = self._parquet_schema(p)
        actual = {n.lower(): n for n in ds.schema.names}
        for col in required:
            if col not in actual:
                raise _missing_column(col, list(actual), str(p))
        cols = [c for c in required + [c for c in optional if c not in required] if c in actual]
        flt = None
        if where is not None:
            wcol, values = where
            field = ds.schema.field(actual[wcol])
            vals = sorted({v for v in values if v != ""})
            if pa.types.is_integer(field.type):
                arr = pa.array([int(v) for v in vals if v.isdigit()], type=pa.int64())
            elif pa.types.is_floating(field.type):
                arr = pa.array([float(v) for v in vals if v.isdigit()], type=pa.float64())
            else:
                arr = pa.array(vals, type=pa.string())
            flt = pads.field(actual[wcol]).isin(arr)
        try:
            table = ds.to_table(columns=[actual[c] for c in cols], filter=flt)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot read the Parquet data ({str(exc)[:200]})", path=p) from None
        df = pd.DataFrame({c: _series_str(table.column(actual[c]).to_pylist()) for c in cols})
        df["_line"] = 0
        return df

    def _stream_text(self, p: Path, required, optional, where) -> pd.DataFrame:
        """A large text table read in blocks, keeping the rows whose ``where`` column is in the set."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        raw, cols, sep = self._text_header(p)
        for col in required:
            if col not in cols:
                raise _missing_column(col, cols, str(p))
        wcol, values = where
        keep = [c for c in required + [c for c in optional if c not in required] if c in cols]
        names = [f"f{i}" for i in range(len(cols))]
        pick = {c: names[cols.index(c)] for c in keep}
        value_set = pa.array(sorted({v for v in values if v != ""}), type=pa.string())
        bad: list = []

        def on_bad(row) -> str:
            bad.append(row)
            return "error"

        parts: list[pd.DataFrame] = []
        try:
            stream = pa.input_stream(str(p), compression="detect")
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=STREAM_BLOCK, use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"' if sep != "\t" else False,
                                                 newlines_in_values=sep != "\t", invalid_row_handler=on_bad),
                convert_options=pacsv.ConvertOptions(include_columns=list(pick.values()),
                                                     column_types={n: pa.string() for n in pick.values()},
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
            for batch in reader:
                key = pc.utf8_trim_whitespace(batch.column(pick[wcol]))
                mask = pc.is_in(key, value_set=value_set)
                sub = batch.filter(mask)
                if sub.num_rows:
                    parts.append(pd.DataFrame({c: pd.Series(sub.column(pick[c]).to_pylist(), dtype=object).str.strip() for c in keep}))
        except pa.ArrowInvalid as exc:
            if bad:
                row = bad[0]
                raise InputError(f"a row has {row.actual_columns} fields, the header {row.expected_columns} (a truncated file or a cut line?)",
                                 path=p, line=(row.number + 1) if row.number else None) from None
            raise InputError(f"cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {str(exc)[:200]}", path=p) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc}", path=p) from None
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: pd.Series(dtype=object) for c in keep})
        df["_line"] = 0
        return df


# -------------------------------------------------------------------------------------------- databases
def safe_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and reports)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL: print none of it
        return "<the database URL given>"


class DatabaseTables(CdmTables):
    """The CDM in a database reached through SQLAlchemy (tested on SQLite and DuckDB; PostgreSQL, SQL
    Server, Oracle... through their SQLAlchemy dialects). ``schema``: the CDM schema (default: the
    connection's); ``vocab_schema``: where ``concept*`` live when apart (OHDSI sites often keep a
    ``vocab`` schema). A file database (``sqlite:///x.db``, ``duckdb:///x.duckdb``) is opened read-only and
    must exist: it is never created."""

    VOCABULARY = ("concept", "concept_relationship", "concept_ancestor")

    def __init__(self, url: str, schema: str | None = None, vocab_schema: str | None = None):
        try:
            import sqlalchemy as sa
            from sqlalchemy.engine import make_url
        except ImportError:  # pragma: no cover - a dependency of kgrec
            raise InputError("reading a database needs SQLAlchemy: pip install sqlalchemy") from None
        self._sa = sa
        shown = safe_url(url)
        self.location = shown
        try:
            u = make_url(url)
        except Exception:  # noqa: BLE001
            raise InputError("not a database URL (expected e.g. postgresql://user@host/db, sqlite:///cdm.db, duckdb:///cdm.duckdb)") from None
        kwargs: dict = {}
        backend = u.get_backend_name()
        if backend in ("sqlite", "duckdb") and u.database not in (None, "", ":memory:"):
            if not Path(u.database).is_file():
                raise InputError(f"database file not found ({shown})", path=u.database)
            if backend == "sqlite":
                import sqlite3

                db = Path(u.database).resolve()
                kwargs["creator"] = lambda: sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            else:
                kwargs["connect_args"] = {"read_only": True}
        if backend == "postgresql" and "connect_timeout" not in u.query:
            kwargs["connect_args"] = {"connect_timeout": 15}  # a host that never answers: an error, not a hang
        try:
            self.engine = sa.create_engine(u, **kwargs)
            self.conn = self.engine.connect()
        except ModuleNotFoundError as exc:
            raise InputError(f"cannot connect to {shown}: its database driver {exc.name!r} is not installed (pip install "
                             f"'kgrec[omop]' installs the PostgreSQL and DuckDB drivers; others: see SQLAlchemy's dialect list)") from None
        except Exception as exc:  # noqa: BLE001 - drivers raise their own types; one line naming the URL
            raise InputError(f"cannot connect to {shown}: {self._reason(exc, url)}") from None
        self.inspector = sa.inspect(self.conn)
        self.schema, self.vocab_schema = schema, vocab_schema or schema
        for s in {schema, self.vocab_schema} - {None}:
            try:
                known = self.inspector.get_schema_names()
            except Exception:  # noqa: BLE001
                known = None
            # DuckDB names its schemas '<catalog>.<schema>'
            if known is not None and s.lower() not in {k.lower() for k in known} | {k.lower().rsplit(".", 1)[-1] for k in known}:
                raise InputError(f"schema {s!r} does not exist in {shown} (schemas: {', '.join(sorted(known)[:20])})")
        if backend == "duckdb":  # 'catalog.schema': a file cdm.duckdb with a schema cdm is otherwise ambiguous to DuckDB
            try:
                catalog = self.conn.execute(sa.text("SELECT current_database()")).scalar()
            except Exception:  # noqa: BLE001
                catalog = None
            if catalog:
                self.schema, self.vocab_schema = (f"{catalog}.{x}" if x and "." not in x else x for x in (self.schema, self.vocab_schema))
        self._tables: dict[str | None, dict[str, str]] = {}
        self._cols: dict[tuple, dict[str, str]] = {}

    @staticmethod
    def _reason(exc: BaseException, url: str) -> str:
        orig = getattr(exc, "orig", None) or exc
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        try:
            from sqlalchemy.engine import make_url

            pw = make_url(url).password
            if pw:
                text = text.replace(str(pw), "***")
        except Exception:  # noqa: BLE001
            pass
        return text[:300]

    def _schema_of(self, name: str) -> str | None:
        return self.vocab_schema if name.lower() in self.VOCABULARY else self.schema

    def _names(self, schema: str | None) -> dict[str, str]:
        if schema not in self._tables:
            try:
                names = self.inspector.get_table_names(schema=schema) + self.inspector.get_view_names(schema=schema)
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"cannot list the tables of {self.location}{f', schema {schema}' if schema else ''}: {self._reason(exc, '')}") from None
            self._tables[schema] = {n.lower(): n for n in names}
        return self._tables[schema]

    def _where(self, name: str) -> str:
        s = self._schema_of(name)
        return f"table {name} in {self.location}" + (f", schema {s}" if s else "")

    def has(self, name: str) -> bool:
        return name.lower() in self._names(self._schema_of(name))

    def _actual(self, name: str) -> str:
        names = self._names(self._schema_of(name))
        if name.lower() not in names:
            raise InputError(f"table {name!r} not found in {self.location}" + (f", schema {self._schema_of(name)}" if self._schema_of(name) else "")
                             + f" (tables: {', '.join(sorted(names)[:30]) or 'none'})")
        return names[name.lower()]

    def _column_map(self, name: str) -> dict[str, str]:
        key = (self._schema_of(name), name.lower())
        if key not in self._cols:
            # the columns of an empty result: every dialect answers it (reflection differs between them,
            # and duckdb-engine's borrows PostgreSQL catalog queries that DuckDB lacks)
            sa = self._sa
            stmt = sa.select(sa.text("*")).select_from(sa.table(self._actual(name), schema=self._schema_of(name))).limit(0)
            try:
                names = list(self.conn.execute(stmt).keys())
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"cannot read {self._where(name)}: {self._reason(exc, '')}") from None
            self._cols[key] = {c.lower(): c for c in names}
        return self._cols[key]

    def columns(self, name: str) -> list[str]:
        return list(self._column_map(name))

    def read(self, name, required, optional=(), where=None) -> pd.DataFrame:
        sa = self._sa
        required = [c.lower() for c in required]
        optional = [c.lower() for c in optional]
        cmap = self._column_map(name)
        for col in required:
            if col not in cmap:
                raise _missing_column(col, list(cmap), self._where(name))
        cols = [c for c in required + [c for c in optional if c not in required] if c in cmap]
        table = sa.table(self._actual(name), *[sa.column(cmap[c]) for c in cols], schema=self._schema_of(name))
        stmt = sa.select(*[table.c[cmap[c]] for c in cols])
        columns: list[list[str]] = [[] for _ in cols]

        def take(statement) -> None:
            # streamed in blocks, each turned into text columns at once: the rows are never all held as tuples
            result = self.conn.execution_options(stream_results=True, yield_per=FETCH_BLOCK).execute(statement)
            for block in result.partitions(FETCH_BLOCK):
                for j, col in enumerate(columns):
                    col.extend(cell_str(r[j]) for r in block)

        try:
            if where is None:
                take(stmt)
            else:
                wcol, values = where
                vals = sorted({v for v in values if v != ""})
                numeric = all(v.isdigit() for v in vals)
                for i in range(0, len(vals), IN_CHUNK):
                    chunk = [int(v) for v in vals[i:i + IN_CHUNK]] if numeric else vals[i:i + IN_CHUNK]
                    take(stmt.where(table.c[cmap[wcol]].in_(chunk)))
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot read {self._where(name)}: {self._reason(exc, '')}") from None
        df = pd.DataFrame({c: pd.Series(columns[j], dtype=object) for j, c in enumerate(cols)})
        df["_line"] = 0
        df.attrs["path"] = self._where(name)
        df.attrs["lines"] = False
        return df

    def close(self) -> None:
        try:
            self.conn.close()
            self.engine.dispose()
        except Exception:  # noqa: BLE001
            pass
