"""Cypher queries kept as files: ``cypher/<name>.cypher`` in the repository, or a user's file.

A query file starts with ``//`` comment lines (Cypher comments, accepted by both stores). Two kinds
of header line mean something:

* ``// @param NAME TYPE [= DEFAULT]  description``: a parameter the query takes (``$NAME``). TYPE is
  STRING, INT64, DOUBLE, BOOL or LIST<STRING>; it is used to convert ``--param name=value`` from
  the command line, and a parameter without a default must be given.
* ``// dialect: NAME`` (first line): the file is the variant of a query for stores of that dialect.

A file may hold several statements separated by ``;``: they run one after the other with the same
parameters (each gets those it uses) and their rows are concatenated, a portable ``UNION ALL`` (Ladybug
cannot UNION paths of different shapes, and Bolt runs one statement per call).

Dialects. The text in ``<name>.cypher`` is shared by every store. Where the dialects cannot share
one text (Ladybug's ``label(x)`` against Neo4j's ``labels(n)``/``type(r)``), a file
``<name>.<dialect>.cypher`` beside it (first line ``// dialect: <dialect>``) replaces it for stores
of that dialect (``EmbeddedStore.dialect == "embedded"``, ``Neo4jStore.dialect == "neo4j"``).

Values are always passed to the store as query parameters, never formatted into the text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from kgrec.errors import InputError, KgrecError

CYPHER_DIR = Path(__file__).resolve().parents[2] / "cypher"
PARAM_TYPES = ("STRING", "INT64", "DOUBLE", "BOOL", "LIST<STRING>", "LIST<INT64>", "MAP", "ANY")

_PARAM = re.compile(r"^\s*//\s*@param\s+(\w+)\s+([\w<>]+)(?:\s*=\s*(\S+))?\s*(.*)$")
_DIALECT = re.compile(r"^\s*//\s*dialect:\s*(\w+)\s*$")
_USED = re.compile(r"\$(\w+)")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any = None
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class Query:
    name: str
    text: str
    path: Path
    dialect: str | None = None
    params: dict[str, Param] = field(default_factory=dict)
    description: str = ""

    @cached_property
    def statements(self) -> list[str]:
        """The statements of the file (comments removed), split at top-level ``;``."""
        return split_statements(self.text)

    def run(self, store: Any, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Bind ``params`` and run every statement on ``store`` (each gets the parameters it uses)."""
        bound = self.bind(params)
        rows: list[dict[str, Any]] = []
        for stmt in self.statements:
            used = set(_USED.findall(stmt))
            rows.extend(store.query(stmt, {k: v for k, v in bound.items() if k in used}))
        return rows

    def bind(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The parameter dict for this query: defaults filled in, declared types checked/converted
        (strings from the command line are parsed), missing required parameters an error."""
        given = dict(params or {})
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            if name in given:
                out[name] = coerce(given.pop(name), p.type, name)
            elif p.required:
                raise KgrecError(f"query {self.name} needs parameter {name} ({p.type}): pass --param {name}=VALUE")
            else:
                out[name] = p.default
        used = set(_USED.findall(self.text))
        for name, value in given.items():
            if name not in used:
                raise KgrecError(f"query {self.name} has no parameter {name!r} (it takes: {', '.join(sorted(used)) or 'none'})")
            out[name] = value
        return out


def split_statements(text: str) -> list[str]:
    """Split Cypher text at ``;`` outside strings, identifiers in backticks and ``//`` comments;
    comments are dropped."""
    out, buf, i, n = [], [], 0, len(text)
    quote = None
    while i < n:
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == "\\" and quote != "`" and i + 1 < n:
                buf.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            buf.append(ch)
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [s.strip() for s in out if s.strip()]


def coerce(value: Any, type_: str, name: str = "value") -> Any:
    """Convert ``value`` to ``type_`` (strings as typed on a command line; other values checked)."""
    try:
        if type_ == "STRING":
            return value if isinstance(value, str) else str(value)
        if type_ == "INT64":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if type_ == "DOUBLE":
            return float(value)
        if type_ == "BOOL":
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("true", "1", "yes"):
                return True
            if s in ("false", "0", "no"):
                return False
            raise ValueError
        if type_.startswith("LIST<"):
            inner = type_[5:-1]
            if isinstance(value, str):
                s = value.strip()
                items = json.loads(s) if s.startswith("[") else [x.strip() for x in s.split(",") if x.strip()]
            else:
                items = list(value)
            return [coerce(x, inner, name) for x in items]
        if type_ == "MAP" and isinstance(value, str):
            return json.loads(value)
        return value
    except (ValueError, TypeError) as exc:
        raise KgrecError(f"parameter {name}: {value!r} is not a {type_}") from exc


def parse_query(text: str, path: Path, name: str | None = None) -> Query:
    params: dict[str, Param] = {}
    description: list[str] = []
    dialect = None
    for i, line in enumerate(text.splitlines()):
        s = line.strip()
        if not s:
            continue
        if not s.startswith("//"):
            break
        if i == 0 and (m := _DIALECT.match(s)):
            dialect = m.group(1)
            continue
        if m := _PARAM.match(s):
            pname, ptype, default, desc = m.groups()
            ptype = ptype.upper()
            if ptype not in PARAM_TYPES:
                raise InputError(f"@param {pname}: unknown type {ptype} (use {', '.join(PARAM_TYPES)})", path=path, line=i + 1)
            params[pname] = Param(
                pname, ptype, coerce(default, ptype, pname) if default is not None else None, default is None, desc
            )
            continue
        description.append(s[2:].strip())
    used = set(_USED.findall(text))
    for pname in params:
        if pname not in used:
            raise InputError(f"@param {pname} is declared but the query never uses ${pname}", path=path)
    return Query(name or path.stem.split(".")[0], text, path, dialect, params, " ".join(description).strip())


def list_queries() -> list[str]:
    """Names of the queries in ``cypher/`` (dialect variants folded into their query)."""
    return sorted({p.name.split(".")[0] for p in CYPHER_DIR.glob("*.cypher")})


def _variant(base: Path, dialect: str | None) -> Path:
    if dialect:
        v = base.with_name(f"{base.name[: -len('.cypher')]}.{dialect}.cypher")
        if v.exists():
            return v
    return base


def load_query(name_or_path: str | Path, dialect: str | None = None) -> Query:
    """A query by name (``rationale_indication``) from ``cypher/``, or from a file path; the
    ``<name>.<dialect>.cypher`` variant when the store's dialect has one."""
    s = str(name_or_path)
    p = Path(s)
    if s.endswith(".cypher") or p.parent != Path(".") or p.exists():
        base = p
        if not base.exists() and not p.is_absolute() and (CYPHER_DIR / p.name).exists() and p.parent == Path("."):
            base = CYPHER_DIR / p.name
        if not base.exists():
            raise InputError("query file not found", path=p)
    else:
        if not re.fullmatch(r"\w+", s):
            raise KgrecError(f"{s!r} is neither a query name nor a .cypher file")
        base = CYPHER_DIR / f"{s}.cypher"
        if not base.exists():
            raise KgrecError(f"no query named {s!r}; known: {', '.join(list_queries())}")
    path = _variant(base, dialect)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", path=path) from exc
    if not text.strip():
        raise InputError("query file is empty", path=path)
    q = parse_query(text, path, name=base.name.split(".")[0])
    if path != base and q.dialect != dialect:
        raise InputError(f"dialect variant must start with '// dialect: {dialect}'", path=path, line=1)
    return q


def run_query(store: Any, name_or_path: str | Path, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Load a query for ``store``'s dialect, bind ``params`` (as parameters) and run it."""
    return load_query(name_or_path, getattr(store, "dialect", None)).run(store, params)


__all__ = ["CYPHER_DIR", "Param", "Query", "coerce", "list_queries", "split_statements", "load_query", "parse_query", "run_query"]
