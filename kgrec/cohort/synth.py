"""Synthetic MIMIC-III cohorts whose diagnosis -> drug structure follows the open knowledge graph.

:func:`synthesize_mimic3` writes the tables kgrec's MIMIC-III loader reads (``ADMISSIONS``,
``DIAGNOSES_ICD``, ``PROCEDURES_ICD``, ``PRESCRIPTIONS``, ``D_ICD_DIAGNOSES``, ``D_ICD_PROCEDURES``)
plus ``PATIENTS``, with MIMIC-III v1.4 headers and ISO timestamps in MIMIC's shifted years (2100-2200).
It is for scale runs (time and memory against the number of visits), not for accuracy claims: a model
that reads the same graph will find the structure it was generated from.

Where the structure comes from (all open data under ``KGREC_DATA``):

* **Treatments**: the graph's indication edges, built by :func:`kgrec.graph.build.build_graph`:
  ``Ingredient -INDICATION(treats|palliates|indication)-> Disease`` (PharmacotherapyDB, DrugCentral)
  with the disease's ICD-9-CM codes (Disease Ontology ``MAPS_TO``; ICD-10-CM xrefs reach ICD-9 through
  the CMS GEMs; an indication also covers the disease's subtypes two ``DISEASE_PARENT`` levels down
  when that adds at most :data:`MAX_DESCENDANT_CODES` codes), and ``Ingredient -INDICATION_ICD->``
  ICD-9 (MEDI high-precision pairs; non-commercial, left out with ``exclude_nc``). A category code
  (``ICD9CM:250``) stands for its billable codes (``25000`` ... ``25093``).
* **Drug -> prescription row**: the ingredient's ATC class (``IN_CLASS``) and a GSN of the open GSN
  map (``mappings/gsn_atc_ndc_mapping.csv.gz``) whose ATC level-5 code is the ingredient's, so the row
  maps back to the ingredient's ATC3 class through the loader's own GSN route; ``DRUG`` is the
  ingredient's DrugBank name. Ingredients without such a GSN are not prescribed.
* **Trial-linked co-prescriptions**: ``Trial -STUDIES-> Ingredient`` twice plus ``Trial -TARGETS->
  Disease``: a treated condition sometimes also gets a drug studied together with the first one in a
  trial on that disease.
* **Background and noise**: most inpatient orders do not follow a diagnosis (heparin, docusate,
  saline...). With the MIMIC-III demo in ``KGREC_DATA/mimic-iii-demo`` the background formulary is
  its prescription products, weighted by how often the demo orders them (unmapped fluids included,
  as in MIMIC), and the ICD dictionaries, noise-diagnosis and procedure frequencies come from it too;
  without it, GSN-map products, a few unmapped fluids and a short built-in procedure list stand in.
  Noise drugs are random indicated products unrelated to the visit.

Patients and history: each patient has chronic conditions (a fixed drug each, continued at most
visits) and each visit adds acute conditions; a condition of the previous visit recurs sometimes, with
the same drug. Admissions of a patient follow each other in time (stay 1 h - 60 days, gaps of weeks to
years). Everything is drawn from one ``numpy`` generator seeded by ``seed``: the same inputs give
byte-identical files.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from kgrec.cohort.base import _replace_dir
from kgrec.cohort.codes import Mappings, atc3, normalise_ndc
from kgrec.errors import InputError, KgrecError
from kgrec.tables import find_table, read_table

#: graph sources the generator reads (their dependencies are added by the builder)
GRAPH_SOURCES = ("pharmacotherapydb", "drugcentral", "medi", "trials", "gems")
GSN_MAP = "mappings/gsn_atc_ndc_mapping.csv.gz"
# files only the non-commercial part of a mixed source reads (skipped with exclude_nc)
NC_PART_FILES = frozenset({"kg/drugbank/drugbank.tsv"})
DEMO = "mimic-iii-demo"
MAX_DESCENDANT_CODES = 60
SUMMARY_FILE = "synth.json"
INDICATION_FILE = "SYNTH_INDICATIONS.csv"
TABLES = ("PATIENTS", "ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")

# MIMIC-III v1.4 headers (as in the demo)
H_PATIENTS = ["ROW_ID", "SUBJECT_ID", "GENDER", "DOB", "DOD", "DOD_HOSP", "DOD_SSN", "EXPIRE_FLAG"]
H_ADMISSIONS = [
    "ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME", "ADMISSION_TYPE", "ADMISSION_LOCATION",
    "DISCHARGE_LOCATION", "INSURANCE", "LANGUAGE", "RELIGION", "MARITAL_STATUS", "ETHNICITY", "EDREGTIME", "EDOUTTIME",
    "DIAGNOSIS", "HOSPITAL_EXPIRE_FLAG", "HAS_CHARTEVENTS_DATA",
]
H_CODES = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
H_DICT = ["ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE"]
H_PRESCRIPTIONS = [
    "ROW_ID", "SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "STARTDATE", "ENDDATE", "DRUG_TYPE", "DRUG", "DRUG_NAME_POE",
    "DRUG_NAME_GENERIC", "FORMULARY_DRUG_CD", "GSN", "NDC", "PROD_STRENGTH", "DOSE_VAL_RX", "DOSE_UNIT_RX",
    "FORM_VAL_DISP", "FORM_UNIT_DISP", "ROUTE",
]
# the product columns of a prescription row (everything but ids and dates)
PRODUCT_COLS = H_PRESCRIPTIONS[6:]

# Fallbacks when the MIMIC-III demo is absent: common ICU procedures (ICD-9-CM vol. 3) and fluids that
# no code map reaches (as MIMIC's most frequent unmapped orders are).
FALLBACK_PROCEDURES = {
    "3893": "Venous catheterization, not elsewhere classified",
    "9604": "Insertion of endotracheal tube",
    "9671": "Continuous invasive mechanical ventilation for less than 96 consecutive hours",
    "9672": "Continuous invasive mechanical ventilation for 96 consecutive hours or more",
    "3995": "Hemodialysis",
    "9915": "Parenteral infusion of concentrated nutritional substances",
    "3722": "Left heart cardiac catheterization",
    "8856": "Coronary arteriography using two catheters",
    "9904": "Transfusion of packed cells",
    "3891": "Arterial catheterization",
}
FALLBACK_FLUIDS = ["Iso-Osmotic Dextrose", "Sterile Water", "NS (Mini Bag Plus)", "D5W", "Sodium Chloride 0.9%  Flush"]

# Model parameters (rates per visit unless said otherwise).
P = {
    "chronic_per_patient": 1.2,  # Poisson mean of chronic treated conditions of a patient
    "chronic_present": 0.9,  # a chronic condition is coded at a visit
    "chronic_treated": 0.85,  # ... and its drug given
    "acute_extra": 2.0,  # acute treated conditions: 1 + Poisson(this)
    "acute_treated": 0.85,
    "recur": 0.3,  # an acute condition of the previous visit recurs (same drug)
    "second_drug": 0.4,  # a treated condition gets a second indicated drug
    "trial_partner": 0.25,  # ... and a trial partner of its drug where the graph has one
    "noise_dx": 9.0,  # Poisson mean of diagnoses unrelated to any drug
    "background": 16.0,  # Poisson mean of background products
    "noise_drugs": 0.7,  # Poisson mean of random indicated products
    "rows_per_drug": 0.5,  # extra order rows per product: Poisson(this)
    "no_drug_visit": 0.04,  # visits without any prescription
    "procedures": 2.0,  # Poisson mean of procedures
    "no_procedure_visit": 0.12,
}
SOURCE_WEIGHT = {"treats": 3.0, "palliates": 2.0, "indication": 2.0, "medi": 1.0}

Progress = Callable[[str, float], None]


# ----------------------------------------------------------------------------------------------
# the knowledge the generator samples from
# ----------------------------------------------------------------------------------------------
@dataclass
class Knowledge:
    """What the generator draws from: built once per data folder (and ``exclude_nc``).

    Attributes:
        products: one row per prescribable product: the :data:`PRODUCT_COLS` strings, ``atc3`` (None for
            unmapped fluids), ``ingredient`` (DrugBank id, "" for background products).
        treat: ``code`` (bare ICD-9, e.g. ``4019``), ``product`` (row of ``products``), ``weight``,
            ``source``, sorted by code; the drugs the graph indicates for a code.
        codes: the treatable codes, with ``weight`` (how often a condition is drawn).
        partners: ``code``, ``product``, ``partner`` (product rows): trial-linked co-prescriptions.
        background: ``product`` rows and ``weight`` of the background formulary.
        dx_dict / proc_dict: ``code``, ``short``, ``long``, ``weight`` (noise sampling weights).
    """

    products: pd.DataFrame
    treat: pd.DataFrame
    codes: pd.DataFrame
    partners: pd.DataFrame
    background: pd.DataFrame
    dx_dict: pd.DataFrame
    proc_dict: pd.DataFrame
    report: dict = field(default_factory=dict)


def required_files(data_dir: Path, exclude_nc: bool = False) -> list[str]:
    """The data files the generator needs (relative to ``data_dir``): the graph sources' and the GSN map."""
    from kgrec.graph.build import select_sources
    from kgrec.graph.sources import REGISTRY

    chosen, _ = select_sources(list(GRAPH_SOURCES), None, exclude_nc)
    files = [f for n in chosen for f in REGISTRY[n].files if not (exclude_nc and f in NC_PART_FILES)]
    return list(dict.fromkeys(files + [GSN_MAP]))


def check_data_dir(data_dir: Path, exclude_nc: bool = False) -> None:
    """An :class:`InputError` naming every missing file the generator needs."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError("open-data folder not found (pass --data-dir or set KGREC_DATA)", path=data_dir)
    missing = [f for f in required_files(data_dir, exclude_nc) if not (data_dir / f).exists()]
    if missing:
        open_ok = not exclude_nc and all((data_dir / f).exists() for f in required_files(data_dir, True))
        hint = "; or pass --exclude-nc to do without the non-commercial ones" if open_ok else ""
        raise InputError(
            f"{len(missing)} graph source file(s) missing: {', '.join(missing)} (fetch them with `kgrec fetch-data`{hint})",
            path=data_dir,
        )


def _prefix_expand(pairs: pd.DataFrame, col: str, universe: np.ndarray) -> pd.DataFrame:
    """Replace ``pairs[col]`` (a code or a code prefix) by every ``universe`` code it is a prefix of.

    ``universe`` is sorted; one row per (original row, matched code); ``_n`` = matches of that row."""
    keys = pairs[col].to_numpy().astype(str)
    lo = np.searchsorted(universe, keys, side="left")
    hi = np.searchsorted(universe, np.char.add(keys, "~"), side="left")
    n = hi - lo
    rep = np.repeat(np.arange(len(pairs)), n)
    starts = np.repeat(lo, n)
    offs = np.arange(len(rep)) - np.repeat(np.cumsum(n) - n, n)
    out = pairs.iloc[rep].reset_index(drop=True)
    out[col] = universe[starts + offs]
    out["_n"] = np.repeat(n, n)
    return out


def _bare(codes: pd.Series, prefix: str) -> pd.Series:
    c = codes.astype(str)
    return c[c.str.startswith(prefix)].str[len(prefix):]


def _demo_dicts(data_dir: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
    """(diagnosis dictionary, procedure dictionary, prescriptions) of the MIMIC-III demo, or Nones."""
    folder = data_dir / DEMO
    if not folder.is_dir():
        return None, None, None
    try:
        out = []
        for d, c in (("D_ICD_DIAGNOSES", "DIAGNOSES_ICD"), ("D_ICD_PROCEDURES", "PROCEDURES_ICD")):
            dic = read_table(find_table(folder, d), ["icd9_code", "short_title", "long_title"])
            used = read_table(find_table(folder, c), ["icd9_code"])
            cnt = used["icd9_code"].value_counts()
            dic = dic[dic["icd9_code"] != ""].drop_duplicates("icd9_code")
            out.append(
                pd.DataFrame(
                    {
                        "code": dic["icd9_code"].to_numpy(),
                        "short": dic["short_title"].to_numpy(),
                        "long": dic["long_title"].to_numpy(),
                        "count": dic["icd9_code"].map(cnt).fillna(0).to_numpy(dtype=float),
                    }
                )
            )
        rx = read_table(find_table(folder, "PRESCRIPTIONS"), ["drug", "gsn", "ndc"], [c.lower() for c in PRODUCT_COLS])
        return out[0], out[1], rx
    except KgrecError:
        return None, None, None


def build_knowledge(data_dir: Path, exclude_nc: bool = False, graph=None, world_seed: int = 0) -> Knowledge:
    """Read the graph and maps into the tables the generator samples from (see :class:`Knowledge`).

    Args:
        data_dir: the open-data root.
        exclude_nc: leave out MEDI and DrugBank-slim ATC codes (non-commercial).
        graph: prebuilt :class:`~kgrec.graph.tables.GraphTables` holding at least the edges of
            :data:`GRAPH_SOURCES` (default: built here from ``data_dir``).
        world_seed: seeds the per-code and per-drug popularity noise (the "world" every cohort is
            drawn from; :func:`synthesize_mimic3`'s ``seed`` draws the cohort).
    """
    from kgrec.graph.build import build_graph

    data_dir = Path(data_dir)
    rng = np.random.default_rng([world_seed, 1])
    if graph is None:
        check_data_dir(data_dir, exclude_nc)
        graph = build_graph(data_dir, sources=list(GRAPH_SOURCES), exclude_nc=exclude_nc, progress=False).tables
    E = graph.edges

    def edges(name: str) -> pd.DataFrame:
        df = E.get(name)
        if df is None:
            return pd.DataFrame(columns=["src", "dst"])
        return df.astype({"src": object, "dst": object})

    dx_demo, proc_demo, rx_demo = _demo_dicts(data_dir)

    # --- the ICD-9 universe: the demo dictionary, else every ICD-9 code of the GEMs
    gem = edges("GEM")
    if dx_demo is not None:
        dx_dict = dx_demo
    else:
        g9 = sorted(set(_bare(gem["src"], "ICD9CM:")))
        dx_dict = pd.DataFrame({"code": g9, "short": [f"ICD-9-CM {c}" for c in g9], "long": [f"ICD-9-CM {c}" for c in g9], "count": 0.0})
    universe = np.array(sorted(dx_dict["code"]), dtype=object).astype(str)

    # --- Disease -> ICD-9 codes (direct xrefs, ICD-10 xrefs through the GEMs), prefixes expanded
    maps = edges("MAPS_TO")
    m9 = pd.DataFrame({"doid": maps["dst"], "code": maps["src"]})
    m9 = m9[m9["code"].str.startswith("ICD9CM:")].assign(code=lambda d: d["code"].str[7:])
    m10 = maps[maps["src"].str.startswith("ICD10CM:")]
    g10 = gem.sort_values("dst")
    g10_dst = g10["dst"].to_numpy().astype(str)
    via10 = _prefix_expand(pd.DataFrame({"doid": m10["dst"].to_numpy(), "icd10": m10["src"].to_numpy()}), "icd10", g10_dst)
    via10 = via10.merge(g10[["src", "dst"]].rename(columns={"src": "code", "dst": "icd10"}).drop_duplicates(), on="icd10")
    via10 = via10.assign(code=via10["code"].str[7:])[["doid", "code"]]
    d2c = _prefix_expand(pd.concat([m9, via10], ignore_index=True).drop_duplicates(), "code", universe)[["doid", "code"]]
    d2c = d2c.drop_duplicates()

    # --- Ingredient -> Disease indications, extended to subtypes two levels down where that stays small
    ind = edges("INDICATION")
    if "kind" in ind:
        ind = ind[ind["kind"].astype(str) != "non_indication"]
    ind = pd.DataFrame({"ingredient": ind["src"], "doid": ind["dst"], "source": ind.get("kind", "indication").astype(str)})
    par = edges("DISEASE_PARENT")[["src", "dst"]].rename(columns={"src": "child", "dst": "doid"})
    roots = pd.DataFrame({"doid": ind["doid"].unique()})
    desc = [roots.assign(sub=roots["doid"], depth=0)]
    cur = roots.assign(sub=roots["doid"])
    for depth in (1, 2):
        cur = cur.merge(par.rename(columns={"doid": "sub", "child": "sub2"}), on="sub")[["doid", "sub2"]].rename(columns={"sub2": "sub"})
        desc.append(cur.assign(depth=depth))
    desc = pd.concat(desc, ignore_index=True).drop_duplicates(["doid", "sub"])
    dcodes = desc.merge(d2c.rename(columns={"doid": "sub"}), on="sub")
    direct = dcodes[dcodes["depth"] == 0][["doid", "code"]].drop_duplicates()
    n_sub = dcodes[dcodes["depth"] > 0].groupby("doid")["code"].nunique()
    small = set(n_sub[n_sub <= MAX_DESCENDANT_CODES].index)
    sub = dcodes[(dcodes["depth"] > 0) & dcodes["doid"].isin(small)][["doid", "code"]].drop_duplicates()
    doid_codes = pd.concat([direct.assign(scale=1.0), sub.assign(scale=0.5)]).sort_values("scale", ascending=False)
    doid_codes = doid_codes.drop_duplicates(["doid", "code"])
    pairs = ind.merge(doid_codes, on="doid")
    pairs["w"] = pairs["source"].map(SOURCE_WEIGHT).fillna(1.0) * pairs["scale"]
    parts = [pairs[["ingredient", "code", "w", "source"]]]
    medi = edges("INDICATION_ICD")
    if len(medi):
        if "high_precision" in medi:
            medi = medi[medi["high_precision"].fillna(False).astype(bool)]
        mp = pd.DataFrame({"ingredient": medi["src"], "code": medi["dst"]})
        mp = mp[mp["code"].str.startswith("ICD9CM:")].assign(code=lambda d: d["code"].str[7:])
        mp = _prefix_expand(mp, "code", universe)
        mp = mp.assign(w=SOURCE_WEIGHT["medi"] / np.sqrt(mp["_n"]), source="medi")
        parts.append(mp[["ingredient", "code", "w", "source"]])
    ind_pairs = pd.concat(parts, ignore_index=True)
    # one row per (ingredient, code): weights summed, sources listed ("medi|treats")
    names_ = sorted(set(ind_pairs["source"]))
    bit = {n: 1 << i for i, n in enumerate(names_)}
    ind_pairs = ind_pairs.assign(bit=ind_pairs["source"].map(bit).astype(np.int64))
    flags = ind_pairs.drop_duplicates(["ingredient", "code", "source"]).groupby(["ingredient", "code"])["bit"].sum()
    ind_pairs = ind_pairs.groupby(["ingredient", "code"])["w"].sum().to_frame().join(flags).reset_index()
    label = {b: "|".join(n for n in names_ if b & bit[n]) for b in range(1 << len(names_))}
    ind_pairs["source"] = ind_pairs["bit"].map(label)

    # --- Ingredient -> product: a GSN whose level-5 ATC code is one of the ingredient's
    mappings = Mappings(data_dir)
    gsn_to_atc3 = mappings.gsn_to_atc3
    gm = read_table(data_dir / GSN_MAP, ["gsn", "atc", "ndc"])
    gm = gm[(gm["gsn"] != "") & gm["atc"].map(lambda c: atc3(c) is not None)]
    gm = gm.assign(gsn=gm["gsn"].str.zfill(6), atc=gm["atc"].str.upper()).drop_duplicates("gsn")  # first row per GSN
    gm = gm[gm["gsn"].map(gsn_to_atc3) == gm["atc"].str[:4]]  # exactly what the loader maps it to
    gm = gm.assign(ndc=gm["ndc"].map(lambda n: normalise_ndc(n) or "0"))
    n_gsn = gm.groupby("atc").size()
    in_class = edges("IN_CLASS")
    ic = pd.DataFrame({"ingredient": in_class["src"], "atc": in_class.get("atc_code", pd.Series("", index=in_class.index)).astype(str)})
    ic = ic.assign(atc=ic["atc"].str.split("|")).explode("atc")
    ic = ic[ic["atc"].isin(n_gsn.index)].drop_duplicates()
    # one product per ingredient: its most common ATC-5 code in the GSN map, that code's first GSN
    ic = ic.assign(n=ic["atc"].map(n_gsn)).sort_values(["ingredient", "n", "atc"], ascending=[True, False, True])
    ic = ic.drop_duplicates("ingredient")
    first_gsn = gm.sort_values("gsn").drop_duplicates("atc").set_index("atc")
    ing_nodes = graph.nodes.get("Ingredient")
    ing_names = dict(zip(ing_nodes["id"].astype(str), ing_nodes["name"].astype(str))) if ing_nodes is not None else {}
    ic = ic[ic["ingredient"].map(lambda i: bool(ing_names.get(i)) and ing_names.get(i) != "<NA>")]
    names = ic["ingredient"].map(ing_names)
    gsn = ic["atc"].map(first_gsn["gsn"])
    ind_products = pd.DataFrame(
        {
            "DRUG_TYPE": "MAIN",
            "DRUG": names.str.slice(0, 1).str.upper() + names.str.slice(1),
            "DRUG_NAME_POE": names.str.slice(0, 1).str.upper() + names.str.slice(1),
            "DRUG_NAME_GENERIC": names,
            "FORMULARY_DRUG_CD": names.str.replace(r"[^A-Za-z]", "", regex=True).str.upper().str.slice(0, 6),
            "GSN": gsn,
            "NDC": ic["atc"].map(first_gsn["ndc"]),
            "PROD_STRENGTH": "",
            "DOSE_VAL_RX": rng.choice(["1", "2", "5", "10", "20", "25", "40", "50", "100", "250", "500"], len(ic)),
            "DOSE_UNIT_RX": "mg",
            "FORM_VAL_DISP": "1",
            "FORM_UNIT_DISP": "TAB",
            "ROUTE": rng.choice(["PO", "PO", "PO", "IV", "PO/NG", "SC"], len(ic)),
            "atc3": ic["atc"].str[:4],
            "ingredient": ic["ingredient"],
            "popularity": np.log1p(ic["n"].to_numpy(dtype=float)) + 1.0,
        }
    ).reset_index(drop=True)

    # --- background formulary
    if rx_demo is not None:
        rx = rx_demo.copy()
        rx.columns = [c.upper() for c in rx.columns]
        for c in PRODUCT_COLS:
            if c not in rx:
                rx[c] = ""
        rx = rx[PRODUCT_COLS]
        bg = rx.groupby(PRODUCT_COLS, sort=True).size().rename("weight").reset_index()
        # the GSN route only (the loader's NDC -> RxNorm fallback reads the non-commercial DrugBank slim table)
        bg["atc3"] = bg["GSN"].map(lambda g: next((a for x in str(g).split() if (a := gsn_to_atc3.get(x.zfill(6)))), None))
        bg_source = "mimic-iii-demo prescriptions"
    else:
        top = gm.assign(a3=gm["atc"].str[:4]).drop_duplicates("atc")
        prior = mappings.atc3_prior
        top = top.assign(weight=top["a3"].map(prior).fillna(0) ** 1.5).sort_values(["weight", "atc"], ascending=[False, True]).head(120)
        atc_names = mappings.atc_names
        nm = top["atc"].map(lambda c: str(atc_names.get(c, c)).capitalize())
        bg = pd.DataFrame(
            {
                "DRUG_TYPE": "MAIN", "DRUG": nm, "DRUG_NAME_POE": nm, "DRUG_NAME_GENERIC": nm,
                "FORMULARY_DRUG_CD": nm.str.replace(r"[^A-Za-z]", "", regex=True).str.upper().str.slice(0, 6),
                "GSN": top["gsn"], "NDC": top["ndc"], "PROD_STRENGTH": "", "DOSE_VAL_RX": "1", "DOSE_UNIT_RX": "mg",
                "FORM_VAL_DISP": "1", "FORM_UNIT_DISP": "TAB", "ROUTE": "PO", "weight": top["weight"].to_numpy(), "atc3": top["a3"],
            }
        )
        fluids = pd.DataFrame(
            {
                "DRUG_TYPE": "BASE", "DRUG": FALLBACK_FLUIDS, "DRUG_NAME_POE": FALLBACK_FLUIDS, "DRUG_NAME_GENERIC": FALLBACK_FLUIDS,
                "FORMULARY_DRUG_CD": "", "GSN": "", "NDC": "0", "PROD_STRENGTH": "", "DOSE_VAL_RX": "100", "DOSE_UNIT_RX": "ml",
                "FORM_VAL_DISP": "100", "FORM_UNIT_DISP": "ml", "ROUTE": "IV", "atc3": None,
                "weight": float(bg["weight"].sum()) * 0.15 / len(FALLBACK_FLUIDS),
            }
        )
        bg = pd.concat([bg, fluids], ignore_index=True)
        bg_source = "GSN map (no mimic-iii-demo folder)"
    bg = bg.assign(ingredient="", popularity=1.0)
    products = pd.concat([ind_products, bg.drop(columns="weight")], ignore_index=True)
    products = products.astype({c: str for c in PRODUCT_COLS})
    background = pd.DataFrame({"product": np.arange(len(ind_products), len(products)), "weight": bg["weight"].to_numpy(dtype=float)})

    # --- treatments: (code, product) with weights; only codes of the universe
    prod_of = pd.Series(np.arange(len(ind_products)), index=ind_products["ingredient"].to_numpy())
    treat = ind_pairs[ind_pairs["ingredient"].isin(prod_of.index)].copy()
    treat["product"] = treat["ingredient"].map(prod_of).to_numpy()
    pop = ind_products["popularity"].to_numpy()
    noise = rng.lognormal(0.0, 1.25, len(ind_products))
    treat["weight"] = treat["w"].to_numpy() * pop[treat["product"].to_numpy()] * noise[treat["product"].to_numpy()]
    treat = treat.sort_values(["code", "product"]).reset_index(drop=True)[["code", "product", "ingredient", "weight", "source"]]
    tcode = treat["code"].to_numpy().astype(str)
    uniq = np.unique(tcode)
    starts = np.searchsorted(tcode, uniq, side="left")
    codes = pd.DataFrame({"code": uniq, "n": np.diff(np.append(starts, len(tcode))), "start": starts})
    dx_count = dict(zip(dx_dict["code"], dx_dict["count"]))
    codes["weight"] = (1.0 + 5.0 * codes["code"].map(dx_count).fillna(0).to_numpy()) * np.sqrt(codes["n"]) * rng.lognormal(0.0, 1.0, len(codes))

    # --- trial partners: ingredients studied together in a trial that targets the treated disease
    stu, tgt = edges("STUDIES"), edges("TARGETS")
    partners = pd.DataFrame(columns=["code", "product", "partner"])
    if len(stu) and len(tgt):
        s = pd.DataFrame({"trial": stu["src"], "ingredient": stu["dst"]})
        s = s[s["ingredient"].isin(prod_of.index)]
        multi = s.groupby("trial")["ingredient"].transform("size")
        s = s[(multi >= 2) & (multi <= 6)]
        ab = s.merge(s.rename(columns={"ingredient": "partner"}), on="trial")
        ab = ab[ab["ingredient"] != ab["partner"]]
        t = pd.DataFrame({"trial": tgt["src"], "doid": tgt["dst"]}).merge(d2c, on="doid")
        ab = ab.merge(t[["trial", "code"]], on="trial")[["code", "ingredient", "partner"]].drop_duplicates()
        ab = ab.merge(treat[["code", "ingredient"]], on=["code", "ingredient"])  # only treatments the generator gives
        partners = pd.DataFrame(
            {"code": ab["code"], "product": ab["ingredient"].map(prod_of), "partner": ab["partner"].map(prod_of)}
        ).sort_values(["code", "product", "partner"]).reset_index(drop=True)

    # --- procedure dictionary
    if proc_demo is not None:
        proc_dict = proc_demo
    else:
        proc_dict = pd.DataFrame(
            {"code": list(FALLBACK_PROCEDURES), "short": [v[:24] for v in FALLBACK_PROCEDURES.values()],
             "long": list(FALLBACK_PROCEDURES.values()), "count": 1.0}
        )
    dx_dict = dx_dict.assign(weight=0.05 + 20.0 * dx_dict["count"].to_numpy())
    proc_dict = proc_dict.assign(weight=1.0 + 20.0 * proc_dict["count"].to_numpy())

    report = {
        "graph_edges": {k: len(v) for k, v in E.items() if k in ("INDICATION", "INDICATION_ICD", "IN_CLASS", "MAPS_TO", "STUDIES", "TARGETS", "GEM")},
        "indication_pairs": len(treat),
        "treatable_codes": len(codes),
        "indicated_ingredients": int(treat["ingredient"].nunique()),
        "indicated_atc3": int(ind_products.loc[treat["product"].unique(), "atc3"].nunique()),
        "pairs_by_source": {k: int(v) for k, v in treat["source"].str.split("|").explode().value_counts().sort_index().items()},
        "trial_partner_pairs": len(partners),
        "background_products": len(background),
        "background_from": bg_source,
        "diagnosis_dictionary": "mimic-iii-demo D_ICD_DIAGNOSES" if dx_demo is not None else "ICD-9 codes of the CMS GEMs",
        "exclude_nc": bool(exclude_nc),
    }
    return Knowledge(products, treat, codes, partners, background, dx_dict, proc_dict, report)


# ----------------------------------------------------------------------------------------------
# sampling helpers
# ----------------------------------------------------------------------------------------------
def _grouped_choice(rng: np.random.Generator, group_start: np.ndarray, weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """For each entry of ``groups`` (a group index), one row of that group drawn by ``weights``.

    Rows of group ``g`` are ``group_start[g]:group_start[g+1]`` of ``weights``."""
    n_groups = len(group_start) - 1
    gid = np.repeat(np.arange(n_groups), np.diff(group_start))
    cw = np.cumsum(weights)
    base = np.concatenate([[0.0], cw])[group_start[:-1]]
    tot = cw[group_start[1:] - 1] - base
    norm = (cw - base[gid]) / tot[gid] + gid  # in (g, g+1]
    u = rng.random(len(groups))
    idx = np.searchsorted(norm, groups + u, side="left")
    return np.minimum(idx, group_start[groups + 1] - 1)


def _draw(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cw = np.cumsum(weights)
    return np.minimum(np.searchsorted(cw, rng.random(n) * cw[-1], side="right"), len(weights) - 1)


_CSV_OPTIONS = pacsv.WriteOptions(quoting_style="needed", include_header=True)


def _str(values) -> pa.Array:
    """Strings; an empty one is written as an empty field (as MIMIC's missing values)."""
    arr = np.asarray(values, dtype=object)
    return pa.array(arr, type=pa.string(), mask=(arr == "") | pd.isna(arr))


def _null(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


def _dict(indices, labels) -> pa.Array:
    """``labels[indices]`` as a dictionary array (fast to write); index -1 or an empty label: empty field."""
    idx = np.asarray(indices, dtype=np.int32)
    lab = _str(np.asarray(labels, dtype=object))
    return pa.DictionaryArray.from_arrays(pa.array(idx, mask=idx < 0), lab)


def _table(columns: dict) -> pa.Table:
    return pa.table({k: v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(v) for k, v in columns.items()})


def _write_csv(path: Path, columns: dict) -> None:
    """One CSV: strings quoted, as in the MIMIC-III v1.4 release; missing values empty."""
    pacsv.write_csv(_table(columns), str(path), write_options=_CSV_OPTIONS)


def _day_codes(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dates as (index, labels ``2146-07-21 00:00:00``): each distinct day is formatted once."""
    d = np.asarray(t).astype("datetime64[D]")
    uniq, inv = np.unique(d, return_inverse=True)
    return inv.astype(np.int64), _fmt_days(uniq).astype(object)


def _fmt_times(t: np.ndarray) -> np.ndarray:
    """datetime64[s] -> ``2146-07-21 14:33:00``."""
    s = np.datetime_as_string(t.astype("datetime64[s]"), unit="s")
    return np.char.replace(s, "T", " ")


def _fmt_days(t: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(t.astype("datetime64[D]"), unit="D"), " 00:00:00")


# ----------------------------------------------------------------------------------------------
# the generator
# ----------------------------------------------------------------------------------------------
def _validate(visits, patients, visits_per_patient) -> tuple[int, int]:
    if isinstance(visits, bool) or not isinstance(visits, (int, np.integer)) or visits <= 0:
        raise KgrecError(f"--visits must be a positive whole number, got {visits!r}")
    if patients is not None:
        if isinstance(patients, bool) or not isinstance(patients, (int, np.integer)) or patients <= 0:
            raise KgrecError(f"--patients must be a positive whole number, got {patients!r}")
        if patients > visits:
            raise KgrecError(f"--patients ({patients}) cannot exceed --visits ({visits}): every patient has at least one visit")
        return int(visits), int(patients)
    if not np.isfinite(visits_per_patient) or visits_per_patient < 1:
        raise KgrecError(f"--visits-per-patient must be at least 1, got {visits_per_patient!r}")
    return int(visits), max(1, min(int(visits), int(round(visits / float(visits_per_patient)))))  # noqa: RUF046


def check_request(
    out_dir: Path | str,
    visits: int,
    patients: int | None = None,
    visits_per_patient: float = 2.0,
    data_dir: Path | str | None = None,
    exclude_nc: bool = False,
) -> tuple[int, int]:
    """Check a request before any work: sizes, the output folder and (given ``data_dir``) the data
    files. Returns ``(visits, patients)``; raises :class:`KgrecError` / :class:`InputError`."""
    sizes = _validate(visits, patients, visits_per_patient)
    _check_out_dir(Path(out_dir))
    if data_dir is not None:
        check_data_dir(Path(data_dir), exclude_nc)
    return sizes


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError("output path exists and is not a folder", path=out_dir)
        if any(out_dir.iterdir()) and not (out_dir / SUMMARY_FILE).exists():
            raise InputError(
                "output folder is not empty and holds no earlier synthetic cohort (synth.json); "
                "choose a new folder or empty this one",
                path=out_dir,
            )


def synthesize_mimic3(
    out_dir: Path | str,
    visits: int,
    seed: int = 0,
    data_dir: Path | str | None = None,
    patients: int | None = None,
    visits_per_patient: float = 2.0,
    exclude_nc: bool = False,
    knowledge: Knowledge | None = None,
    progress: Progress | None = None,
    chunk_rows: int = 250_000,
) -> dict:
    """Write a synthetic MIMIC-III cohort of ``visits`` admissions into ``out_dir``.

    Args:
        out_dir: folder to write (created; replaced atomically if it holds an earlier synthetic cohort;
            any other non-empty folder is refused).
        visits: number of admissions (> 0).
        seed: the random seed; the same seed, sizes and data give byte-identical files.
        data_dir: the open-data root (graph sources, GSN map; the MIMIC-III demo if present).
        patients: number of patients (1 .. visits); default ``round(visits / visits_per_patient)``.
        visits_per_patient: mean admissions per patient when ``patients`` is not given (>= 1).
        exclude_nc: do without the non-commercial sources (MEDI, DrugBank-slim ATC codes).
        knowledge: a prebuilt :class:`Knowledge` (tests and repeated runs), else built from ``data_dir``.
        progress: ``progress(stage, fraction_done)`` callback.
        chunk_rows: prescription rows written per chunk.

    Returns:
        A summary: sizes, row counts per table, drug rows by origin, files, timings, peak memory,
        the ``kgrec prepare`` command that loads the folder. Also written to ``out_dir/synth.json``.

    Raises:
        KgrecError: bad sizes. InputError: missing data files, or an output folder in the way.
    """
    t0 = time.perf_counter()
    visits, n_pat = _validate(visits, patients, visits_per_patient)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    say = progress or (lambda stage, frac: None)
    if knowledge is None:
        if data_dir is None:
            raise InputError("no data folder: pass data_dir (CLI: --data-dir or KGREC_DATA)")
        data_dir = Path(data_dir)
        check_data_dir(data_dir, exclude_nc)
        say("building the graph's indication tables", 0.0)
        knowledge = build_knowledge(data_dir, exclude_nc=exclude_nc)
    K = knowledge
    t_know = time.perf_counter() - t0
    say("patients and admissions", 0.25)
    rng = np.random.default_rng([seed, 2])
    pr = P

    # ---- patients -> visits (each patient >= 1 visit, heavy tail)
    w = rng.gamma(0.5, 1.0, n_pat)
    extra = rng.multinomial(visits - n_pat, w / w.sum()) if visits > n_pat else np.zeros(n_pat, dtype=int)
    n_vis = 1 + extra
    pat = np.repeat(np.arange(n_pat), n_vis)  # patient index of each visit, visits grouped by patient
    first = np.concatenate([[0], np.cumsum(n_vis)[:-1]])
    order = np.arange(visits) - first[pat]
    has_prev = order > 0

    # dates: first admission 2100-2200, age 18-90, stays lognormal, gaps lognormal
    start = np.datetime64("2100-01-01T00:00:00", "s")
    first_adm = start + (rng.random(n_pat) * 100 * 365.25 * 86400).astype("timedelta64[s]")
    age_days = (rng.uniform(18, 90, n_pat) * 365.25).astype(np.int64)
    dob = (first_adm.astype("datetime64[D]") - age_days.astype("timedelta64[D]")).astype("datetime64[s]")
    los = (np.clip(rng.lognormal(np.log(4 * 86400), 0.8, visits), 3600, 60 * 86400) // 60 * 60).astype(np.int64)
    gap = np.clip(rng.lognormal(np.log(150 * 86400), 1.1, visits), 86400, 8 * 365 * 86400).astype(np.int64)
    step = np.where(has_prev, np.roll(los, 1) + gap, 0)
    # cumulative offset within patient
    cum = np.cumsum(step)
    offset = cum - cum[first[pat]]
    admit = (first_adm[pat] + offset.astype("timedelta64[s]")).astype("datetime64[m]").astype("datetime64[s]")
    disch = admit + los.astype("timedelta64[s]")
    death_last = rng.random(n_pat) < 0.08
    last = np.zeros(visits, bool)
    last[first + n_vis - 1] = True
    died = last & death_last[pat]

    # ---- treated conditions: (visit, code index, product row, origin)
    codes_w = K.codes["weight"].to_numpy()
    n_codes = len(K.codes)
    if n_codes == 0:
        raise InputError("the graph gives no diagnosis -> drug indication with a prescribable product", path=data_dir)
    tw = K.treat["weight"].to_numpy()
    gstart = np.concatenate([K.codes["start"].to_numpy(), [len(K.treat)]]).astype(np.int64)
    tprod = K.treat["product"].to_numpy()

    # chronic: per patient, fixed code and drug
    n_chr = rng.poisson(pr["chronic_per_patient"], n_pat)
    chr_pat = np.repeat(np.arange(n_pat), n_chr)
    chr_code = _draw(rng, codes_w, len(chr_pat))
    chr_row = _grouped_choice(rng, gstart, tw, chr_code)
    # expand to visits of the patient
    cv_n = n_vis[chr_pat]
    cv_visit = np.repeat(first[chr_pat], cv_n) + (np.arange(cv_n.sum()) - np.repeat(np.cumsum(cv_n) - cv_n, cv_n))
    cv_code = np.repeat(chr_code, cv_n)
    cv_row = np.repeat(chr_row, cv_n)
    present = rng.random(len(cv_visit)) < pr["chronic_present"]
    cv_visit, cv_code, cv_row = cv_visit[present], cv_code[present], cv_row[present]
    cv_treated = rng.random(len(cv_visit)) < pr["chronic_treated"]

    # acute: per visit 1 + Poisson
    n_ac = 1 + rng.poisson(pr["acute_extra"], visits)
    ac_visit = np.repeat(np.arange(visits), n_ac)
    ac_code = _draw(rng, codes_w, len(ac_visit))
    ac_row = _grouped_choice(rng, gstart, tw, ac_code)
    ac_treated = rng.random(len(ac_visit)) < pr["acute_treated"]
    # recurrence: an acute condition of the previous visit comes back with the same drug
    nxt = ac_visit + 1
    ok = (nxt < visits) & (rng.random(len(ac_visit)) < pr["recur"])
    ok[ok] = pat[nxt[ok]] == pat[ac_visit[ok]]
    re_visit, re_code, re_row, re_treated = nxt[ok], ac_code[ok], ac_row[ok], ac_treated[ok]

    cond_visit = np.concatenate([ac_visit, re_visit, cv_visit])
    cond_code = np.concatenate([ac_code, re_code, cv_code])
    cond_row = np.concatenate([ac_row, re_row, cv_row])
    cond_treated = np.concatenate([ac_treated, re_treated, cv_treated])
    cond_kind = np.concatenate([np.zeros(len(ac_visit), np.int8), np.ones(len(re_visit), np.int8), np.full(len(cv_visit), 2, np.int8)])
    say("diagnoses and procedures", 0.35)

    # ---- diagnoses: treated conditions first (acute, recurring, chronic), then noise codes, de-duplicated
    code_str = K.codes["code"].to_numpy().astype(object)
    dx_codes = K.dx_dict["code"].to_numpy().astype(object)
    n_noise = rng.poisson(pr["noise_dx"], visits)
    nz_visit = np.repeat(np.arange(visits), n_noise)
    nz_code = dx_codes[_draw(rng, K.dx_dict["weight"].to_numpy(), len(nz_visit))]
    dx = pd.DataFrame(
        {
            "v": np.concatenate([cond_visit, nz_visit]),
            "k": np.concatenate([cond_kind, np.full(len(nz_visit), 3, np.int8)]),
            "r": rng.random(len(cond_visit) + len(nz_visit)),
            "code": np.concatenate([code_str[cond_code], nz_code]),
        }
    )
    # the first acute condition is the primary diagnosis; the rest in random order
    dx["k"] = np.where(dx["k"] == 0, 0, 1)
    dx = dx.sort_values(["v", "k", "r"], kind="stable")
    dx = dx.drop_duplicates(["v", "code"])
    dx["seq"] = dx.groupby("v").cumcount() + 1

    n_proc = np.where(rng.random(visits) < pr["no_procedure_visit"], 0, 1 + rng.poisson(pr["procedures"] - 1, visits))
    pv = np.repeat(np.arange(visits), n_proc)
    pcode = K.proc_dict["code"].to_numpy().astype(object)[_draw(rng, K.proc_dict["weight"].to_numpy(), len(pv))]
    proc = pd.DataFrame({"v": pv, "code": pcode}).drop_duplicates(["v", "code"])
    proc["seq"] = proc.groupby("v").cumcount() + 1
    say("prescriptions", 0.45)

    # ---- prescriptions: products per visit with their origin
    t_v = cond_visit[cond_treated]
    t_code = cond_code[cond_treated]
    t_prod = tprod[cond_row[cond_treated]]
    origin_treat = np.where(cond_kind[cond_treated] == 2, 1, 0)  # 0 acute/recurring indication, 1 chronic
    # a second indicated drug for some treated conditions
    sec = rng.random(len(t_v)) < pr["second_drug"]
    s_v, s_code = t_v[sec], t_code[sec]
    s_prod = tprod[_grouped_choice(rng, gstart, tw, s_code)]
    # trial partners
    tp_v = np.empty(0, np.int64)
    tp_prod = np.empty(0, np.int64)
    if len(K.partners):
        keyed = pd.DataFrame({"i": np.arange(len(t_v)), "code": code_str[t_code], "product": t_prod})
        keyed = keyed[rng.random(len(keyed)) < pr["trial_partner"]]
        m = keyed.merge(K.partners, on=["code", "product"], how="inner")
        if len(m):
            m["r"] = rng.random(len(m))
            m = m.sort_values(["i", "r"]).drop_duplicates("i")
            tp_v = t_v[m["i"].to_numpy()]
            tp_prod = m["partner"].to_numpy(dtype=np.int64)
    # background and noise
    n_bg = rng.poisson(pr["background"], visits)
    bg_v = np.repeat(np.arange(visits), n_bg)
    bg_prod = K.background["product"].to_numpy()[_draw(rng, K.background["weight"].to_numpy(), len(bg_v))]
    n_nd = rng.poisson(pr["noise_drugs"], visits)
    nd_v = np.repeat(np.arange(visits), n_nd)
    n_ind_products = int((K.products["ingredient"] != "").sum())
    nd_prod = rng.integers(0, n_ind_products, len(nd_v))

    rx = pd.DataFrame(
        {
            "v": np.concatenate([t_v, s_v, tp_v, bg_v, nd_v]),
            "p": np.concatenate([t_prod, s_prod, tp_prod, bg_prod, nd_prod]).astype(np.int64),
            "origin": np.concatenate(
                [origin_treat, np.full(len(s_v), 2), np.full(len(tp_v), 3), np.full(len(bg_v), 4), np.full(len(nd_v), 5)]
            ).astype(np.int8),
        }
    )
    rx = rx.sort_values(["v", "origin"], kind="stable").drop_duplicates(["v", "p"])
    no_drug = rng.random(visits) < pr["no_drug_visit"]
    rx = rx[~no_drug[rx["v"].to_numpy()]]
    reps = 1 + rng.poisson(pr["rows_per_drug"], len(rx))
    rx = rx.loc[rx.index.repeat(reps)].reset_index(drop=True)
    rv = rx["v"].to_numpy()
    # dates: start within the stay, end start..discharge
    stay_days = np.maximum(1, (disch.astype("datetime64[D]") - admit.astype("datetime64[D]")).astype(np.int64) + 1)
    sd = (rng.random(len(rx)) * stay_days[rv]).astype(np.int64)
    ed = sd + (rng.random(len(rx)) * (stay_days[rv] - sd)).astype(np.int64)
    rx["start"] = admit[rv].astype("datetime64[D]") + sd.astype("timedelta64[D]")
    rx["end"] = admit[rv].astype("datetime64[D]") + ed.astype("timedelta64[D]")
    rx = rx.sort_values(["v", "start", "p"], kind="stable").reset_index(drop=True)
    say("writing tables", 0.55)

    # ---- write
    subject = 100_000 + np.arange(n_pat)
    hadm = 200_000 + np.arange(visits)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the cohort folder is an ordinary one
    try:
        gender = np.where(rng.random(n_pat) < 0.56, "M", "F")
        last_v = first + n_vis - 1
        dod_idx, dod_lab = _day_codes(disch[last_v])
        dod = _dict(np.where(death_last, dod_idx, -1), dod_lab)
        dob_idx, dob_lab = _day_codes(dob)
        _write_csv(
            tmp / "PATIENTS.csv",
            {
                "ROW_ID": np.arange(1, n_pat + 1), "SUBJECT_ID": subject, "GENDER": _str(gender), "DOB": _dict(dob_idx, dob_lab),
                "DOD": dod, "DOD_HOSP": dod, "DOD_SSN": _null(n_pat), "EXPIRE_FLAG": death_last.astype(np.int64),
            },
        )
        primary = dx[dx["seq"] == 1].set_index("v")["code"]
        short = dict(zip(K.dx_dict["code"], K.dx_dict["short"]))
        diag_text = pd.Series(np.arange(visits)).map(primary).map(short).fillna("").str.upper().to_numpy(dtype=object)
        types = np.array(["EMERGENCY", "ELECTIVE", "URGENT"], dtype=object)
        adm_type = _draw(rng, np.array([0.75, 0.2, 0.05]), visits)
        insurance = _draw(rng, np.array([0.5, 0.3, 0.12, 0.05, 0.03]), visits)
        _write_csv(
            tmp / "ADMISSIONS.csv",
            {
                "ROW_ID": np.arange(1, visits + 1), "SUBJECT_ID": subject[pat], "HADM_ID": hadm,
                "ADMITTIME": _str(_fmt_times(admit)), "DISCHTIME": _str(_fmt_times(disch)),
                "DEATHTIME": _str(np.where(died, _fmt_times(disch), "")),
                "ADMISSION_TYPE": _dict(adm_type, types),
                "ADMISSION_LOCATION": _dict((adm_type == 1).astype(np.int64), ["EMERGENCY ROOM ADMIT", "PHYS REFERRAL/NORMAL DELI"]),
                "DISCHARGE_LOCATION": _dict(died.astype(np.int64), ["HOME", "DEAD/EXPIRED"]),
                "INSURANCE": _dict(insurance, ["Medicare", "Private", "Medicaid", "Government", "Self Pay"]),
                "LANGUAGE": _null(visits), "RELIGION": _null(visits), "MARITAL_STATUS": _null(visits),
                "ETHNICITY": _dict(np.zeros(visits, np.int64), ["UNKNOWN/NOT SPECIFIED"]),
                "EDREGTIME": _null(visits), "EDOUTTIME": _null(visits), "DIAGNOSIS": _str(diag_text),
                "HOSPITAL_EXPIRE_FLAG": died.astype(np.int64), "HAS_CHARTEVENTS_DATA": np.ones(visits, np.int64),
            },
        )
        say("writing DIAGNOSES_ICD, PROCEDURES_ICD", 0.6)
        for name, df in (("DIAGNOSES_ICD", dx), ("PROCEDURES_ICD", proc)):
            v = df["v"].to_numpy()
            ci, cl = np.unique(df["code"].to_numpy(dtype=object).astype(str), return_inverse=True)
            _write_csv(
                tmp / f"{name}.csv",
                {"ROW_ID": np.arange(1, len(df) + 1), "SUBJECT_ID": subject[pat[v]], "HADM_ID": hadm[v],
                 "SEQ_NUM": df["seq"].to_numpy(dtype=np.int64), "ICD9_CODE": _dict(cl, ci)},
            )
        for name, dic, used in (("D_ICD_DIAGNOSES", K.dx_dict, dx), ("D_ICD_PROCEDURES", K.proc_dict, proc)):
            d = dic[dic["code"].isin(set(used["code"]))].sort_values("code")
            _write_csv(
                tmp / f"{name}.csv",
                {"ROW_ID": np.arange(1, len(d) + 1), "ICD9_CODE": _str(d["code"]), "SHORT_TITLE": _str(d["short"]), "LONG_TITLE": _str(d["long"])},
            )

        prod_cols = {c: K.products[c].to_numpy(dtype=object) for c in PRODUCT_COLS}
        n_rx = len(rx)
        days = np.concatenate([rx["start"].to_numpy(), rx["end"].to_numpy()])
        day_idx, day_lab = _day_codes(days)
        rx_p, rx_v = rx["p"].to_numpy(), rx["v"].to_numpy()
        writer = None
        try:
            for lo in range(0, max(n_rx, 1), chunk_rows):
                hi = min(n_rx, lo + chunk_rows)
                p, v = rx_p[lo:hi], rx_v[lo:hi]
                table = _table(
                    {
                        "ROW_ID": np.arange(lo + 1, hi + 1), "SUBJECT_ID": subject[pat[v]], "HADM_ID": hadm[v],
                        "ICUSTAY_ID": pa.nulls(hi - lo, pa.int64()),
                        "STARTDATE": _dict(day_idx[lo:hi], day_lab), "ENDDATE": _dict(day_idx[n_rx + lo : n_rx + hi], day_lab),
                        **{c: _dict(p, prod_cols[c]) for c in PRODUCT_COLS},
                    }
                )
                if writer is None:
                    writer = pacsv.CSVWriter(str(tmp / "PRESCRIPTIONS.csv"), table.schema, write_options=_CSV_OPTIONS)
                writer.write_table(table)
                say("writing PRESCRIPTIONS", 0.62 + 0.36 * (hi / max(n_rx, 1)))
        finally:
            if writer is not None:
                writer.close()

        # the indication pairs the generator used (for checks; the MIMIC loader ignores this file)
        used_pairs = pd.DataFrame({"code": code_str[t_code], "p": t_prod}).drop_duplicates()
        tr = K.treat.assign(code=K.treat["code"].astype(str))
        tr = tr.merge(used_pairs.rename(columns={"p": "product"}), on=["code", "product"])
        tr = pd.DataFrame(
            {"ICD9_CODE": tr["code"], "ATC3": K.products["atc3"].to_numpy()[tr["product"].to_numpy()], "INGREDIENT": tr["ingredient"], "SOURCE": tr["source"]}
        ).sort_values(["ICD9_CODE", "ATC3", "INGREDIENT"])
        _write_csv(tmp / INDICATION_FILE, {c: _str(tr[c]) for c in tr.columns})

        origin_names = ["indication (acute)", "indication (chronic)", "indication (second drug)", "trial partner", "background", "noise"]
        mapped = K.products["atc3"].notna().to_numpy()[rx["p"].to_numpy()]
        summary = {
            "format": "mimic3",
            "out_dir": str(out_dir),
            "seed": int(seed),
            "patients": int(n_pat),
            "visits": int(visits),
            "visits_per_patient": {"mean": round(visits / n_pat, 3), "max": int(n_vis.max()), "single_visit_patients": int((n_vis == 1).sum())},
            "rows": {
                "PATIENTS": int(n_pat), "ADMISSIONS": int(visits), "DIAGNOSES_ICD": len(dx),
                "PROCEDURES_ICD": len(proc), "PRESCRIPTIONS": int(n_rx),
            },
            "drug_rows_by_origin": {origin_names[k]: int(c) for k, c in sorted(rx["origin"].value_counts().items())},
            "drug_rows_with_mappable_gsn": round(float(mapped.mean()), 4) if n_rx else 0.0,
            "distinct_diagnosis_codes": int(dx["code"].nunique()),
            "distinct_products": int(rx["p"].nunique()),
            "knowledge": K.report,
            "parameters": dict(P),
            "prepare_command": f"kgrec prepare -s mimic3 --source-dir {out_dir} --data-dir DATA_DIR -w WORKSPACE",
        }
        t_gen = time.perf_counter() - t0 - t_know
        summary["seconds"] = {"knowledge": round(t_know, 3), "generate_and_write": round(t_gen, 3), "total": round(time.perf_counter() - t0, 3)}
        summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        summary["files"] = sorted(p.name for p in tmp.iterdir()) + [SUMMARY_FILE]
        (tmp / SUMMARY_FILE).write_text(json.dumps({k: v for k, v in summary.items() if k not in ("seconds", "peak_rss_mb", "out_dir", "prepare_command")}, indent=2, sort_keys=True) + "\n")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say("done", 1.0)
    return summary


