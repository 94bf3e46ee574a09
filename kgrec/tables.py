"""Reading source tables: any header case, CRLF or LF, ``.csv`` or ``.csv.gz``, strict UTF-8.

Every loader goes through :func:`read_table`, so every source gets the same checks and the same clear
errors naming the file (and line or column):

* the entry itself: missing, a directory, a FIFO or device, a broken link or a symbolic-link loop;
  two files for one table whose names differ only in case (or in ``.csv`` / ``.csv.gz``);
* the bytes: not gzip, not UTF-8, or holding a NUL byte. The file is read in 1 MiB chunks and the
  first bad chunk stops the read, so junk appended to a table costs one chunk, not the whole file;
* the header: a column name that appears twice (ignoring case), a missing required column;
* the rows: a row with fewer fields than the header (a truncated file), a repeated header (two files
  concatenated), and an empty or multi-line value in a key column (patient or visit id), which
  would otherwise become a phantom patient ``''``. Blank lines are skipped.
"""

from __future__ import annotations

import codecs
import csv
import errno
import gzip
import io
import os
import stat
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from kgrec.errors import InputError

SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
CHUNK = 1 << 20
_BOM = codecs.BOM_UTF8
_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_file(path: Path) -> None:
    """An :class:`InputError` unless ``path`` is a readable regular file (links followed), saying what
    it is instead: missing, a broken link, a link loop, a directory, a FIFO, a device."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(f"broken symbolic link (points to {os.readlink(path)!r}, which does not exist)", path=path) from None
        raise InputError("file not found", path=path) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError("symbolic link loop (the link points back to itself)", path=path) from None
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a directory, not a table file", path=path)
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise InputError(f"is {kind}, not a regular file", path=path)
    if not os.access(path, os.R_OK):
        raise InputError("cannot read: permission denied", path=path)


def find_table(folder: Path, name: str) -> Path:
    """Find ``name`` in ``folder`` as .csv/.csv.gz/.tsv/.tsv.gz (file name in any case). ``name`` may hold
    a subfolder. Two candidates (names differing only in case or suffix) are an error naming both."""
    folder = Path(folder)
    parent = folder / Path(name).parent
    stem = Path(name).name.lower()
    if parent.is_dir():
        wanted = {stem + s for s in SUFFIXES}
        hits = sorted(e.name for e in os.scandir(parent) if e.name.lower() in wanted)
        if len(hits) > 1:
            raise InputError(
                f"table {name!r} is ambiguous: {' and '.join(hits)} both match (names are compared ignoring "
                "case and .csv/.csv.gz); keep one",
                path=parent,
            )
        if hits:
            hit = parent / hits[0]
            check_file(hit)
            return hit
    raise InputError(
        f"table {name!r} not found (looked for {', '.join(stem + s for s in SUFFIXES[:2])}, any case)",
        path=parent,
    )


def _check_start(chunk: bytes, gz: bool, path: Path) -> None:
    """Clearer errors than 'NUL byte' for the two usual mix-ups: gzip data under a plain name, UTF-16."""
    if not gz and chunk.startswith(b"\x1f\x8b"):
        raise InputError(f"gzip-compressed data in a file not named .gz: rename it to {path.name}.gz", path=path)
    if chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError("UTF-16 text (a spreadsheet export?): re-save the file as UTF-8", path=path)


def _read_checked(path: Path) -> bytes:
    """The file's bytes (gunzipped), checked chunk by chunk for NUL bytes and UTF-8; BOM removed."""
    gz = path.name.lower().endswith(".gz")
    chunks: list[bytes] = []
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0  # newlines before the current chunk
    offset = 0  # bytes before the current chunk
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                if offset == 0:
                    _check_start(chunk, gz, path)
                    if chunk.startswith(_BOM):
                        chunk = chunk[len(_BOM):]
                nul = chunk.find(b"\0")
                if nul >= 0:
                    raise InputError(
                        f"NUL byte at byte {offset + nul}: binary data in a text table (a corrupt or "
                        "truncated copy?); nothing was read",
                        path=path,
                        line=lines + chunk.count(b"\n", 0, nul) + 1,
                    )
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    at = max(exc.start - pending, 0)
                    raise InputError(
                        f"bytes that are not UTF-8 at byte {offset + at} ({chunk[at:at + 4]!r}); "
                        "re-save the file as UTF-8",
                        path=path,
                        line=lines + chunk.count(b"\n", 0, at) + 1,
                    ) from None
                lines += chunk.count(b"\n")
                offset += len(chunk)
                chunks.append(chunk)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise InputError("the file ends inside a UTF-8 character (truncated?)", path=path, line=lines + 1) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"not a readable gzip file ({exc})", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from None
    return b"".join(chunks)


def read_checked_text(path: Path) -> str:
    """The whole file as text after :func:`check_file` and the chunked NUL / UTF-8 checks (BOM removed):
    for readers with their own parser (the graph sources' ``read_rows``)."""
    path = Path(path)
    check_file(path)
    return _read_checked(path).decode("utf-8")


def _header(data: bytes, sep: str, path: Path) -> list[str]:
    """Lower-cased, stripped header names; a name that appears twice (ignoring case) is an error."""
    end = data.find(b"\n")
    first = (data if end < 0 else data[:end]).decode("utf-8")
    first = first[:-1] if first.endswith("\r") else first
    if "\r" in first:  # old Mac line endings (CR only), or a stray CR inside the header
        raise InputError("a carriage return (CR) inside the header line: the file has CR-only line endings or a stray CR; "
                         "convert its line endings to LF or CRLF (e.g. `tr '\\r' '\\n'` for CR-only files)", path=path, line=1)
    try:
        return check_header(next(csv.reader([first], delimiter=sep), []), path)
    except csv.Error as exc:
        raise InputError(f"malformed header line ({exc})", path=path, line=1) from None


def check_header(fields: list[str], path: Path) -> list[str]:
    """Lower-cased, stripped names of header ``fields``; one that appears twice (ignoring case) is an
    :class:`InputError` naming both fields."""
    columns = [f.strip().lower() for f in fields]
    seen: dict[str, int] = {}
    for i, col in enumerate(columns):
        if col and col in seen:
            raise InputError(
                f"column {col!r} appears twice in the header (fields {seen[col] + 1} and {i + 1}: "
                f"{fields[seen[col]]!r}, {fields[i]!r}); column names must be unique, ignoring case",
                path=path,
                line=1,
            )
        seen.setdefault(col, i)
    return columns


def _blank_lines(data: bytes) -> list[int]:
    """Line numbers (1-based) of the empty lines, which the parser skips."""
    out = []
    for pat in (b"\n\n", b"\n\r\n"):
        at = data.find(pat)
        while at >= 0:
            out.append(data.count(b"\n", 0, at + 1) + 1)
            at = data.find(pat, at + 1)
    return sorted(out)


def _parse(data: bytes, sep: str, columns: list[str], keep: list[int], path: Path, quote: bool = True) -> pd.DataFrame:
    """The kept columns as stripped strings plus ``_line``; a row with more or fewer fields than the
    header is an error naming its line (a truncated file, a cut line, an unclosed quote)."""
    bad: list = []

    def on_bad(row) -> str:
        bad.append(row)
        return "error"

    names = [f"f{i}" for i in range(len(columns))]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=names, skip_rows=1, block_size=CHUNK * 16),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"' if quote else False, newlines_in_values=quote,
                                           invalid_row_handler=on_bad),
            convert_options=pacsv.ConvertOptions(
                include_columns=[names[i] for i in keep],
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        if bad:
            row = bad[0]
            got = row.actual_columns
            why = "a truncated file or a cut line?" if got < row.expected_columns else "an unquoted separator in a value?"
            raise InputError(
                f"the row has {got} field{'s' * (got != 1)}, the header {row.expected_columns} ({why})",
                path=path,
                line=_physical(row.number, _blank_lines(data)) if row.number else None,
            ) from None
        msg = str(exc).split(":", 1)[-1].strip() if "CSV parse error" in str(exc) else str(exc)
        raise InputError(f"cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {msg[:200]}", path=path) from None
    df = pd.DataFrame({columns[i]: table.column(names[i]).to_pandas().str.strip() for i in keep})
    lines = np.arange(2, len(df) + 2)
    for blank in _blank_lines(data):
        lines[lines >= blank] += 1
    df["_line"] = lines
    return df


def _physical(number: int, blanks: list[int]) -> int:
    """The parser's row number (blank lines not counted) as a line number in the file."""
    for blank in blanks:
        if number >= blank:
            number += 1
    return number


def read_table(
    path: Path,
    required: Iterable[str],
    optional: Iterable[str] = (),
    sep: str | None = None,
    keys: Iterable[str] = (),
    quote: bool = True,
) -> pd.DataFrame:
    """Read a delimited text table as strings, with lower-cased headers.

    Args:
        path: the file (``.csv``, ``.tsv``, optionally gzipped).
        required: lower-case column names that must be present; a missing one is an :class:`InputError`.
        optional: lower-case column names kept if present.
        sep: delimiter; default ``,`` for .csv and tab for .tsv.
        keys: required columns that must be non-empty in every row (patient and visit ids); an empty
            cell is an :class:`InputError` naming the line and column.
        quote: ``"`` quotes values (CSV); False reads quotes as text (OHDSI Athena's tab-separated
            vocabulary files, whose names may hold a lone ``"``).

    Returns:
        A DataFrame of ``str`` columns (missing cells are ``""``), only the required and optional columns,
        with an extra integer column ``_line`` holding each row's line number in the file (header = 1).
    """
    path = Path(path)
    check_file(path)
    data = _read_checked(path)
    if not data.strip():
        raise InputError("file is empty", path=path)
    if sep is None:
        sep = "\t" if ".tsv" in path.name.lower() else ","
    required = [c.lower() for c in required]
    keys = [c.lower() for c in keys]
    wanted = set(required) | set(keys) | {c.lower() for c in optional}
    columns = _header(data, sep, path)
    for col in required + keys:
        if col not in columns:
            raise InputError(f"missing column (found: {', '.join(columns)})", path=path, column=col)
    keep = [i for i, c in enumerate(columns) if c in wanted]
    df = _parse(data, sep, columns, keep, path, quote)
    names = [columns[i] for i in keep]
    if len(names):
        again = pd.Series(True, index=df.index)
        for c in names:
            again &= df[c].str.lower() == c
        if again.any():
            raise InputError(
                "the header repeats inside the file (two files concatenated?)", path=path, line=int(df.loc[again.idxmax(), "_line"])
            )
    _check_keys(df, keys, path)
    return df.reset_index(drop=True)


def _check_keys(df: pd.DataFrame, keys: Iterable[str], path: Path) -> None:
    for col in keys:
        bad = df[col].eq("") | df[col].str.contains("[\r\n]", regex=True)
        if bad.any():
            i = bad.idxmax()
            what = "is empty (a row of separators or a cut line?)" if df.loc[i, col] == "" else "holds a line break (an unclosed quote?)"
            raise InputError(
                f"key column {what}: every row needs a {col} (patient/visit id)", path=path, column=col, line=int(df.loc[i, "_line"])
            )


# The EHR sources' patient and visit (and encounter, stay) id columns. Wherever a source table is read
# with one of them, every row must have it: an empty id would become a phantom patient or visit ''.
ID_COLUMNS = frozenset(
    {"subject_id", "hadm_id", "uniquepid", "patientunitstayid", "patienthealthsystemstayid", "patient", "encounter", "id"}
)


# Integer id columns of MIMIC and eICU (Synthea's ids are UUIDs): digits only, never "X10011", "1e5",
# "-142345" or "142345.0" (they were read as phantom patients or dropped without a word).
NUMERIC_IDS = frozenset({"subject_id", "hadm_id", "patientunitstayid", "patienthealthsystemstayid", "seq_num"})
MAX_FIELD = 4096  # characters in one cell of a source table (a 10 MB code or id is a broken file, not data)


def check_cells(df: pd.DataFrame, path: Path) -> None:
    """Every kept cell within :data:`MAX_FIELD` characters; integer id columns digits only (an empty
    optional ``seq_num`` is allowed)."""
    for col in df.columns:
        if col == "_line":
            continue
        values = df[col].astype(str)
        long = values.str.len() > MAX_FIELD
        if long.any():
            i = long.idxmax()
            raise InputError(f"a value of {len(values[i]):,} characters (at most {MAX_FIELD:,})", path=path, column=col, line=int(df.loc[i, "_line"]))
        if col in NUMERIC_IDS:
            v = values.str.strip()
            bad = ~v.str.fullmatch(r"\d+") & ~((col == "seq_num") & (v == ""))
            if bad.any():
                i = bad.idxmax()
                raise InputError(f"{values[i][:40]!r} is not an integer id (digits only)", path=path, column=col, line=int(df.loc[i, "_line"]))


def read_source(
    folder: Path, name: str, required: Iterable[str], optional: Iterable[str] = (), keys: Iterable[str] | None = None,
    *, report: dict | None = None,
) -> pd.DataFrame:
    """:func:`find_table` then :func:`read_table`; the frame's ``attrs['path']`` records the file.

    ``keys`` default: the :data:`ID_COLUMNS` among the requested columns (required or present optional).
    A table with a header and no rows is an :class:`InputError` naming the file (a cohort read from it
    would silently lack its visits, codes or drugs), unless ``report`` is given: the table is then
    optional, and its name is recorded in ``report["empty_tables"]`` (a warning in the prepare report).
    """
    path = find_table(folder, name)
    required, optional = [c.lower() for c in required], [c.lower() for c in optional]
    if keys is None:
        keys = [c for c in required if c in ID_COLUMNS]
        optional_keys = [c for c in optional if c in ID_COLUMNS]
    else:
        optional_keys = []
    df = read_table(path, required, optional, keys=keys)
    for col in optional_keys:
        if col in df:
            _check_keys(df, [col], path)
    check_cells(df, path)
    df.attrs["path"] = str(path)
    if df.empty:
        if report is None:
            raise InputError("the table has a header and no rows; it is required", path=path)
        report.setdefault("empty_tables", []).append(path.name)
    return df


def count_unreadable(raw: pd.Series, parsed: pd.Series) -> int:
    """How many cells hold something (not empty) yet parsed to a missing value: the prepare report's
    count of unreadable dates or numbers (an empty cell is merely missing)."""
    given = raw.fillna("").astype(str).str.strip() != ""
    return int((given & parsed.isna()).sum())


_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y")
_US_DATE = r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{2}|\d{4})(?P<rest>(\s.*)?)$"
CENTURIES = ("mimic", "past")


def parse_times(values: pd.Series, path: object, column: str, lines: pd.Series | None = None, century: str = "mimic",
                errors: str = "raise") -> pd.Series:
    """Parse timestamps in ISO form (``2146-07-21 00:00:00``, ``2019-07-08T23:38:03Z``) or US form
    (``10/23/64 21:09``, as in the re-saved MIMIC-III demo). Empty cells become NaT.

    A two-digit year gets its century by one rule per source, decided before the date is built, so it
    never produces an impossible date:

    * ``century="mimic"``: 21YY. MIMIC shifts dates into 2100-2210, so the ``%y`` pivot of 1969 would put
      ``64`` in 1964 and scramble visit order.
    * ``century="past"`` (real calendar dates: Synthea): the latest year ending in YY that is not after
      this year (``11/15/17`` is 2017, ``3/5/64`` 1964): a birth or visit date is never in the future.

    A value that is no date (text, or a day the month does not have, such as ``2/29/00`` read as
    2100-02-29) is an InputError naming the file, column and line; with ``errors="missing"`` it becomes
    NaT instead (the caller counts it: a missing birth date is a missing age, never a guessed one).
    """
    if century not in CENTURIES:
        raise ValueError(f"century must be one of {CENTURIES}, got {century!r}")
    s = values.fillna("").astype(str).str.strip()
    out = pd.to_datetime(s.where(s != ""), errors="coerce", format="ISO8601", utc=True).dt.tz_localize(None)
    todo = out.isna() & (s != "")
    if todo.any():
        parts = s[todo].str.extract(_US_DATE)
        short = parts["y"].str.len() == 2
        yy = pd.to_numeric(parts["y"].where(short), errors="coerce")
        if century == "mimic":
            full = 2100 + yy
        else:
            now = pd.Timestamp.now().year
            full = (now // 100) * 100 + yy
            full = full.where(full <= now, full - 100)
        year = parts["y"].where(~short, full.astype("Int64").astype(str))
        text = parts["m"] + "/" + parts["d"] + "/" + year + parts["rest"].fillna("")
        for fmt in _FORMATS:
            left = todo & out.isna()
            if not left.any():
                break
            out.loc[left] = pd.to_datetime(text.reindex(s.index)[left], errors="coerce", format=fmt)
    todo = out.isna() & (s != "")
    if todo.any() and errors == "raise":
        i = todo[todo].index[0]
        line = int(lines.loc[i]) if lines is not None else None
        raise InputError(f"unparseable date {s.loc[i]!r}", path=path, column=column, line=line)
    return out
