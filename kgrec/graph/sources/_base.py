"""Shared machinery of the graph sources: the strict row reader, id checks, licences, the build
context (cached lookups that several sources share) and the :class:`SourceTables` a source returns.

Every source module turns its file(s) into node/edge DataFrames in the shape of
``graph_schema/schema.yaml``: node frames keyed by ``id`` with a ``source`` column, edge frames with
``src``, ``dst``, ``source``, ``licence`` and the relationship's properties.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import pandas as pd

from kgrec.errors import InputError
from kgrec.tables import check_header, read_checked_text

# ---- licences (as stated in ../shared/data/README.md) ----
LIC_WHO_ATC = "WHO ATC names"
LIC_CC0 = "CC0 1.0"
LIC_DRUGBANK_SLIM = "CC BY-NC 4.0"
LIC_DRUGCENTRAL = "CC BY 4.0"
LIC_MEDI = "CC BY-NC-SA 3.0"
LIC_PUBLIC_DOMAIN = "public domain"
LIC_TRIALS = "CC0 1.0 + ClinicalTrials.gov terms"
LIC_SAFEDRUG = "no licence stated"
LIC_CHCH = "CC BY-NC 4.0 (DrugBank-derived)"
LIC_ODBL = "ODbL 1.0"
LIC_PHYSIONET = "PhysioNet Credentialed Health Data License 1.5.0"
LIC_MIT = "MIT"


def is_nc(licence: str) -> bool:
    """True for a non-commercial licence string (``CC BY-NC 4.0``, ``CC BY-NC-SA 3.0``...)."""
    return bool(re.search(r"(^|[\s(-])NC([\s)-]|$)", str(licence)))


# ---- id formats (key columns) ----
RE_DRUGBANK = r"DB\d{5}"
RE_DOID = r"DOID:\d+"
RE_NCT = r"NCT\d{8}"
RE_ATC = r"[A-Z](\d{2}([A-Z]{1,2}(\d{2})?)?)?"
RE_ATC3 = r"[A-Z]\d{2}[A-Z]"
RE_RXCUI = r"\d+"


def norm_name(s: str) -> str:
    """Normalised drug/chemical name for matching: lower case, runs of non-alphanumerics -> one space."""
    return re.sub(r"[^a-z0-9]+", " ", str(s).lower()).strip()


# ---- strict reading ----
def _read_text(path: Path) -> str:
    # the one checked read of kgrec.tables: entry type, gzip, NUL bytes and UTF-8, chunk by chunk
    text = read_checked_text(path)
    if not text.strip():
        raise InputError("file is empty", path=path)
    return text


def read_text(path: Path) -> str:
    """The file as text: strict UTF-8, gzip by suffix; errors name the file (and line)."""
    return _read_text(Path(path))


def read_rows(
    path: Path,
    required: list[str] | tuple[str, ...],
    optional: list[str] | tuple[str, ...] = (),
    sep: str | None = None,
    quoted: bool = True,
) -> pd.DataFrame:
    """Read a delimited file strictly: every row must have as many fields as the header.

    Args:
        path: the file (``.csv``/``.tsv``, optionally ``.gz``).
        required: lower-case column names that must be present.
        optional: lower-case column names kept when present.
        sep: delimiter; default tab for ``.tsv`` and comma otherwise.
        quoted: honour ``"``-quoting (fields with embedded delimiters/newlines). Off for plain TSVs
            whose text may hold stray quote characters.

    Returns:
        A DataFrame of stripped ``str`` cells (only the wanted columns) plus ``_line``: the line on
        which each record starts (header = line 1). ``attrs['path']`` holds the path.

    Raises:
        InputError: missing file/column, bad encoding, or a row with the wrong number of fields
            (naming the file and line).
    """
    path = Path(path)
    text = _read_text(path)
    if sep is None:
        sep = "\t" if ".tsv" in path.name.lower() else ","
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=sep,
        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
        strict=quoted,
    )
    try:
        header = check_header(next(reader), path)  # a name twice (ignoring case) is an error
    except csv.Error as exc:
        raise InputError(f"cannot parse the header: {exc}", path=path, line=1) from exc
    for col in required:
        if col not in header:
            raise InputError(f"missing column (found: {', '.join(header)})", path=path, column=col)
    wanted = [c for c in dict.fromkeys([*required, *optional]) if c in header]
    idx = [header.index(c) for c in wanted]
    cols: list[list[str]] = [[] for _ in wanted]
    lines: list[int] = []
    n = len(header)
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"cannot parse the row: {exc}", path=path, line=start) from exc
        if not row or (len(row) == 1 and not row[0].strip()):
            start = reader.line_num + 1
            continue  # blank line
        if len(row) != n:
            raise InputError(f"expected {n} fields (as in the header), found {len(row)}", path=path, line=start)
        for j, i in enumerate(idx):
            cols[j].append(row[i].strip())
        lines.append(start)
        start = reader.line_num + 1
    df = pd.DataFrame({c: pd.Series(v, dtype="str") for c, v in zip(wanted, cols)}, columns=wanted)
    df["_line"] = lines
    df.attrs["path"] = str(path)
    return df


def check_ids(df: pd.DataFrame, column: str, pattern: str, allow_empty: bool = False, what: str = "id") -> None:
    """Every cell of ``column`` must match ``pattern`` (fully); else an InputError naming file, line, column."""
    s = df[column]
    ok = s.str.fullmatch(pattern)
    if allow_empty:
        ok = ok | (s == "")
    if not ok.all():
        i = (~ok).idxmax()
        raise InputError(
            f"bad {what} {s.loc[i]!r} (expected the form {pattern})",
            path=df.attrs.get("path"),
            column=column,
            line=int(df.loc[i, "_line"]),
        )


# ---- what a source returns ----
@dataclass
class SourceTables:
    """Node and edge frames of one source, its notes for the build report, and the relationship
    types whose edges may point at nodes that no selected source defines (dropped and counted)."""

    nodes: dict[str, pd.DataFrame] = field(default_factory=dict)
    edges: dict[str, pd.DataFrame] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    droppable: set[str] = field(default_factory=set)

    def add_nodes(self, label: str, df: pd.DataFrame) -> None:
        if len(df):
            self.nodes[label] = pd.concat([self.nodes[label], df], ignore_index=True) if label in self.nodes else df.reset_index(drop=True)

    def add_edges(self, rel: str, df: pd.DataFrame) -> None:
        if len(df):
            self.edges[rel] = pd.concat([self.edges[rel], df], ignore_index=True) if rel in self.edges else df.reset_index(drop=True)

    def counts(self) -> dict:
        return {
            "nodes": {k: int(len(v)) for k, v in self.nodes.items()},
            "edges": {k: int(len(v)) for k, v in self.edges.items()},
        }


def edges_frame(src, dst, source: str, licence: str, **props) -> pd.DataFrame:
    """An edge frame: ``src``, ``dst``, the properties, ``source`` and ``licence``."""
    df = pd.DataFrame({"src": list(src), "dst": list(dst), **{k: list(v) for k, v in props.items()}})
    df["source"] = source
    df["licence"] = licence
    return df


class Context:
    """What a build shares between sources: paths, options, and cached lookups read once.

    Args:
        data_dir: the open-data root (``../shared/data``).
        workspace: a kgrec workspace (its ``cohort/`` feeds the EHR source), or None.
        exclude_nc: leave out everything under a non-commercial licence.
    """

    def __init__(self, data_dir: Path, workspace: Path | None = None, exclude_nc: bool = False):
        self.data_dir = Path(data_dir)
        self.workspace = Path(workspace) if workspace is not None else None
        self.exclude_nc = exclude_nc

    def path(self, rel: str) -> Path:
        p = self.data_dir / rel
        if not p.exists():
            raise InputError("source file not found; pass --data-dir (or set KGREC_DATA) to the open-data folder", path=p)
        return p

    # -- ATC --
    @cached_property
    def atc_table(self) -> pd.DataFrame:
        """WHO ATC codes and names (all levels); a code listed twice keeps its first name."""
        df = read_rows(self.path("mappings/atc_coding.csv.gz"), ["atc_code", "atc_name"])
        df["atc_code"] = df["atc_code"].str.upper()
        check_ids(df, "atc_code", RE_ATC, what="ATC code")
        return df

    @cached_property
    def atc_names(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for c, n in zip(self.atc_table["atc_code"], self.atc_table["atc_name"]):
            out.setdefault(c, n)
        return out

    # -- DrugBank open vocabulary (CC0) --
    @cached_property
    def vocabulary(self) -> pd.DataFrame:
        df = read_rows(
            self.path("kg/drugbank/drugbank_vocabulary.csv"),
            ["drugbank id", "common name"],
            ["unii", "synonyms", "standard inchi key"],
        )
        check_ids(df, "drugbank id", RE_DRUGBANK, what="DrugBank id")
        dup = df["drugbank id"].duplicated()
        if dup.any():
            i = dup.idxmax()
            raise InputError(f"DrugBank id {df.loc[i, 'drugbank id']!r} listed twice", path=df.attrs["path"], line=int(df.loc[i, "_line"]), column="drugbank id")
        return df

    @cached_property
    def ingredient_ids(self) -> set[str]:
        return set(self.vocabulary["drugbank id"])

    @cached_property
    def unii_to_drugbank(self) -> dict[str, str]:
        v = self.vocabulary
        return {u: d for d, u in zip(v["drugbank id"], v.get("unii", pd.Series("", index=v.index))) if u}

    @cached_property
    def ingredient_names(self) -> dict[str, set[str]]:
        """DrugBank id -> normalised common name and synonyms (open vocabulary)."""
        v = self.vocabulary
        syn = v["synonyms"] if "synonyms" in v else pd.Series("", index=v.index)
        out: dict[str, set[str]] = defaultdict(set)
        for d, name, s in zip(v["drugbank id"], v["common name"], syn):
            for x in [name, *s.split(" | ")]:
                if (k := norm_name(x)):
                    out[d].add(k)
        return dict(out)

    @cached_property
    def name_to_ingredients(self) -> dict[str, set[str]]:
        """Normalised name/synonym -> DrugBank ids carrying it (open vocabulary)."""
        out: dict[str, set[str]] = defaultdict(set)
        for d, names in self.ingredient_names.items():
            for k in names:
                out[k].add(d)
        return dict(out)

    # -- Disease Ontology (CC0) --
    @cached_property
    def do_terms(self) -> pd.DataFrame:
        df = read_rows(self.path("kg/disease-ontology/HumanDO.tsv"), ["id", "label", "subclassof"])
        check_ids(df, "id", RE_DOID, what="DOID")
        return df

    @cached_property
    def do_xrefs(self) -> pd.DataFrame:
        df = read_rows(self.path("kg/disease-ontology/allXREFinDO.tsv"), ["id", "label", "xref"])
        check_ids(df, "id", RE_DOID, what="DOID")
        return df

    @cached_property
    def do_label_to_id(self) -> dict[str, str]:
        """Term label -> DOID, from HumanDO.tsv and then the xref table (which also names the root)."""
        out: dict[str, str] = {}
        for frame in (self.do_terms, self.do_xrefs):
            for i, lab in zip(frame["id"], frame["label"]):
                out.setdefault(lab, i)
        return out

    @cached_property
    def mesh_to_doids(self) -> dict[str, list[str]]:
        """MeSH id (``D009270``) -> DOIDs carrying the ``MESH:`` xref."""
        x = self.do_xrefs
        m = x[x["xref"].str.startswith("MESH:")]
        out: dict[str, list[str]] = defaultdict(list)
        for i, ref in zip(m["id"], m["xref"]):
            mesh = ref.split(":", 1)[1].strip()
            if i not in out[mesh]:
                out[mesh].append(i)
        return dict(out)

    # -- cohort --
    @cached_property
    def cohort(self):
        from kgrec.cohort.base import Cohort

        if self.workspace is None or not (self.workspace / "cohort" / "visits.parquet").exists():
            return None  # the ehr source says so; others (icd names) do without
        return Cohort.load(self.workspace / "cohort")


class Source:
    """One open source: ``build(ctx)`` turns its files into :class:`SourceTables`.

    Class attributes (mirrored in the registry, :mod:`kgrec.graph.sources`):
        name: registry name (``--sources``) and the ``source`` value of what it defines.
        licence: the licence of its main file.
        nc: the whole source is non-commercial (skipped with ``exclude_nc``).
        nc_parts: what of it is non-commercial when ``nc`` is False (dropped with ``exclude_nc``).
        requires: sources that define the nodes its edges point at (added to a selection).
        derived: runs after the others and reads their output (``icd``).
        files: the data files it reads (relative to the data folder), for docs and errors.
    """

    name: ClassVar[str]
    licence: ClassVar[str]
    nc: ClassVar[bool] = False
    nc_parts: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    derived: ClassVar[bool] = False
    files: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def build(self, ctx: Context, previous: list[SourceTables] | None = None) -> SourceTables:  # pragma: no cover
        raise NotImplementedError
