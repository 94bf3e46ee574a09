"""Code systems: ids for diagnoses/procedures, and prescriptions -> ATC level 3.

Code ids keep their system (and so the ICD version) in a prefix, with the dots removed, as in MIMIC:
``ICD9CM:4019``, ``ICD10CM:I10``, ``ICD9PROC:3605``, ``ICD10PCS:0DTJ4ZZ``. Drugs are bare ATC level-3
classes (``B01A``), the unit kgrec recommends.

Prescription mapping order (documented in docs/protocol.md): GSN (each of several space-separated GSNs
in turn) -> NDC (same table) -> NDC -> RxNorm -> UNII -> DrugBank -> ATC. Codes shorter than level 3
count as unmapped.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from functools import cached_property
from pathlib import Path

import pandas as pd

from kgrec.errors import InputError
from kgrec.tables import read_table

DIAG_PREFIX = {"9": "ICD9CM", "10": "ICD10CM"}
PROC_PREFIX = {"9": "ICD9PROC", "10": "ICD10PCS"}

# A cell that stands for "no code" in MIMIC's GSN/NDC columns.
PLACEHOLDERS = {"", "0", "?", "nan", "none", "null", "00000000000"}


# Code systems whose ids are procedures (graph label ProcedureCode); every other code is a diagnosis.
PROCEDURE_SYSTEMS = frozenset({"ICD9PROC", "ICD10PCS", "EICUTX", "SNOMEDPROC", "CPT4", "HCPCS", "OMOPPROC"})


def is_procedure(code: str) -> bool:
    """``is_procedure('ICD9PROC:3605') -> True``; diagnoses (``ICD9CM:4019``) -> False."""
    return code.split(":", 1)[0] in PROCEDURE_SYSTEMS


def graph_code_key(code: str) -> str:
    """The graph node key of a cohort code: ``DiagnosisCode:ICD9CM:4019`` or ``ProcedureCode:ICD9PROC:3605``."""
    return ("ProcedureCode:" if is_procedure(code) else "DiagnosisCode:") + code


def icd_category(code_id: str) -> str | None:
    """``ICD9CM:4019`` -> ``ICD9CM:401``; ``ICD9CM:E8791`` -> ``ICD9CM:E879``; ``ICD10CM:E889`` ->
    ``ICD10CM:E88``; other systems -> None (the graph's CODE_PARENT target)."""
    system, _, code = code_id.partition(":")
    if system not in ("ICD9CM", "ICD10CM") or not code:
        return None
    return f"{system}:{code[:4 if system == 'ICD9CM' and code.startswith('E') else 3]}"


def icd_id(code: str, version: str | int, kind: str = "diagnosis") -> str:
    """``icd_id('401.9', 9) -> 'ICD9CM:4019'``; ``icd_id('3605', 9, 'procedure') -> 'ICD9PROC:3605'``."""
    table = DIAG_PREFIX if kind == "diagnosis" else PROC_PREFIX
    v = str(version).strip()
    if v not in table:
        raise ValueError(f"unknown ICD version {version!r} (expected 9 or 10)")
    return f"{table[v]}:{str(code).strip().replace('.', '').upper()}"


def atc3(code: str) -> str | None:
    """ATC level 3 (4 characters, e.g. ``B01A``) of an ATC code at level 3 or deeper, else None."""
    c = str(code).strip().upper()
    if len(c) < 4 or not (c[0].isalpha() and c[1:3].isdigit() and c[3].isalpha()):
        return None
    return c[:4]


# ICD code forms (dots optional), for reading a code whose version is not written beside it
_ICD9_DX = re.compile(r"^(\d{3}(\.?\d{1,2})?|V\d{2}(\.?\d{1,2})?|E[89]\d{2}(\.?\d)?)$")  # E codes: E800-E999
_ICD10_DX = re.compile(r"^[A-Z]\d[0-9A-Z](\.?[0-9A-Z]{1,4})?$")
_ICD9_PX = re.compile(r"^\d{2}(\.?\d{1,2})?$")
_ICD10_PX = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")


def versions_by_form(code: str, kind: str = "diagnosis") -> list[int]:
    """The ICD versions whose code form ``code`` fits (``[]``: neither, ``[9, 10]``: ambiguous).

    Digits only: ICD-9 (``428.0``). A letter other than E/V: ICD-10 (``I10``). E and V codes exist in
    both: the dot position decides where there is one (ICD-9 ``E849.7``, ``V58.61``; ICD-10 ``E11.9``),
    E9xx is ICD-9 only (ICD-10 E codes end at E89), a letter after the number is ICD-10. Procedures:
    ICD-9 ``36.05``; ICD-10-PCS seven characters."""
    c = code.strip().upper()
    if kind == "procedure":
        return [v for v, rx in ((9, _ICD9_PX), (10, _ICD10_PX)) if rx.match(c)]
    out = []
    if _ICD9_DX.match(c) and not ("." in c and c[0] == "E" and c.index(".") != 4):
        out.append(9)
    if _ICD10_DX.match(c) and not c[0].isdigit() and not ("." in c and c.index(".") != 3) and not (c[0] == "E" and c[1] == "9"):
        out.append(10)
    return out


# Disease Ontology xrefs as kgrec code ids (the graph's MAPS_TO; the cohort's disease-reach report)
RE_ICD9 = re.compile(r"(?:[VE]?\d+)(?:\.\d+)?")
RE_ICD10 = re.compile(r"[A-Z][0-9A-Z]{2}(?:\.[0-9A-Z]+)?")
RE_SNOMED = re.compile(r"\d+")


def xref_to_code(xref: str) -> tuple[str | None, str]:
    """``ICD9CM:401.9`` -> ``('ICD9CM:4019', 'ok')``; ranges and malformed codes -> ``(None, reason)``;
    other vocabularies -> ``(None, 'other')``."""
    prefix, _, code = xref.partition(":")
    prefix, code = prefix.strip().upper(), code.strip()
    if prefix in ("ICD9CM", "ICD10CM"):
        if "-" in code:
            return None, "range"
        pat = RE_ICD9 if prefix == "ICD9CM" else RE_ICD10
        if not pat.fullmatch(code.upper()):
            return None, "malformed"
        return icd_id(code, 9 if prefix == "ICD9CM" else 10), "ok"
    if prefix.startswith("SNOMEDCT"):
        if not RE_SNOMED.fullmatch(code):
            return None, "malformed"
        return f"SNOMED:{code}", "ok"
    return None, "other"


def normalise_ndc(ndc: str) -> str | None:
    """11-digit NDC without dashes, or None for the placeholders seen in MIMIC (``0``, ``?``, empty)."""
    s = str(ndc).strip().replace("-", "")
    if s.lower() in PLACEHOLDERS or not s.isdigit() or int(s) == 0:
        return None
    return s.zfill(11)


class Mappings:
    """The open code maps in ``KGREC_DATA`` (``mappings/``, ``kg/``), loaded lazily.

    Args:
        data_dir: the open-data root (holds ``mappings/`` and ``kg/``).
    """

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def _path(self, rel: str) -> Path:
        p = self.data_dir / rel
        if not p.exists():
            raise InputError(
                "mapping file not found; pass --data-dir (or set KGREC_DATA) to the open-data folder",
                path=p,
            )
        return p

    @cached_property
    def gsn_to_atc3(self) -> dict[str, str]:
        df = read_table(self._path("mappings/gsn_atc_ndc_mapping.csv.gz"), ["gsn", "atc", "ndc"])
        out: dict[str, str] = {}
        for gsn, code in zip(df["gsn"], df["atc"]):
            a = atc3(code)
            if a and gsn:
                out.setdefault(gsn.zfill(6), a)
        return out

    @cached_property
    def ndc_to_atc3(self) -> dict[str, str]:
        df = read_table(self._path("mappings/gsn_atc_ndc_mapping.csv.gz"), ["gsn", "atc", "ndc"])
        out: dict[str, str] = {}
        for ndc, code in zip(df["ndc"], df["atc"]):
            n, a = normalise_ndc(ndc), atc3(code)
            if n and a:
                out.setdefault(n, a)
        return out

    @cached_property
    def ndc_to_rxcui(self) -> dict[str, str]:
        p = self._path("mappings/ndc2rxnorm_mapping.txt")
        try:
            raw = ast.literal_eval(p.read_text(encoding="utf-8"))  # a dict literal; never eval()
        except (ValueError, SyntaxError) as exc:
            raise InputError(f"not a Python dict literal ({exc})", path=p) from exc
        return {n: str(v) for k, v in raw.items() if (n := normalise_ndc(k))}

    @cached_property
    def drugbank_atc(self) -> dict[str, list[str]]:
        """DrugBank id -> ATC codes, from the slim DrugBank table (NC licence; used only for mapping)."""
        df = read_table(self._path("kg/drugbank/drugbank.tsv"), ["drugbank_id", "name", "atc_codes"])
        return {d: [c for c in codes.split("|") if c] for d, codes in zip(df["drugbank_id"], df["atc_codes"])}

    @cached_property
    def rxcui_to_atc3(self) -> dict[str, str]:
        """RxNorm -> UNII (rxcui-unii-map) -> DrugBank (open vocabulary) -> ATC3 (DrugBank slim)."""
        rx = read_table(self._path("kg/rxcui-unii-map.tsv"), ["rxnorm_id", "fdasrs_id"])
        vocab = read_table(self._path("kg/drugbank/drugbank_vocabulary.csv"), ["drugbank id", "unii"])
        unii_to_db = {u: d for d, u in zip(vocab["drugbank id"], vocab["unii"]) if u}
        out: dict[str, str] = {}
        for cui, unii in zip(rx["rxnorm_id"], rx["fdasrs_id"]):
            db = unii_to_db.get(unii)
            for code in self.drugbank_atc.get(db, []) if db else []:
                if a := atc3(code):
                    out.setdefault(cui, a)
                    break
        return out

    @cached_property
    def disease_codes(self) -> frozenset[str]:
        """Code ids (``ICD9CM:4019``, ``ICD10CM:I10``, ``SNOMED:<code>``) that a Disease Ontology xref maps
        to a disease term: the codes whose graph node has a MAPS_TO edge (``kg/disease-ontology``)."""
        refs = read_table(self._path("kg/disease-ontology/allXREFinDO.tsv"), ["id", "xref"])["xref"].tolist()
        for cell in read_table(self._path("kg/disease-ontology/ICD10inDO.tsv"), ["id", "xrefs"])["xrefs"]:
            refs += cell.split(",")
        return frozenset(code for r in refs if r.strip() and (code := xref_to_code(r.strip())[0]))

    @cached_property
    def atc_names(self) -> dict[str, str]:
        df = read_table(self._path("mappings/atc_coding.csv.gz"), ["atc_code", "atc_name"])
        return dict(zip(df["atc_code"].str.upper(), df["atc_name"]))

    @cached_property
    def atc3_prior(self) -> Counter:
        """How often each ATC3 class appears in the GSN map: a prior for ambiguous name matches."""
        return Counter(self.gsn_to_atc3.values())

    def atc3_name(self, code: str) -> str:
        return self.atc_names.get(code, code)

    def map_prescription(self, gsn: str = "", ndc: str = "") -> tuple[str | None, str]:
        """Map one prescription row to ATC3. Returns ``(atc3 or None, route)`` with route one of
        ``gsn``, ``ndc``, ``ndc-rxnorm``, ``unmapped``."""
        for g in str(gsn).split():
            if g.lower() in PLACEHOLDERS:
                continue
            if a := self.gsn_to_atc3.get(g.zfill(6)):
                return a, "gsn"
        n = normalise_ndc(ndc)
        if n:
            if a := self.ndc_to_atc3.get(n):
                return a, "ndc"
            cui = self.ndc_to_rxcui.get(n)
            if cui and (a := self.rxcui_to_atc3.get(cui)):
                return a, "ndc-rxnorm"
        return None, "unmapped"

    def map_prescriptions(self, gsn: pd.Series, ndc: pd.Series) -> pd.DataFrame:
        """Vectorised-by-uniques :meth:`map_prescription`: columns ``atc3``, ``route``."""
        pairs = pd.DataFrame({"gsn": gsn.fillna("").astype(str), "ndc": ndc.fillna("").astype(str)})
        uniq = pairs.drop_duplicates()
        res = [self.map_prescription(g, n) for g, n in zip(uniq["gsn"], uniq["ndc"])]
        uniq = uniq.assign(atc3=[r[0] for r in res], route=[r[1] for r in res])
        return pairs.merge(uniq, on=["gsn", "ndc"], how="left")[["atc3", "route"]].set_index(gsn.index)

