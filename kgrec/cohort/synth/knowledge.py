"""The knowledge the generator samples from (:class:`Knowledge`): the graph's indication edges mapped to
ICD-9 codes and to prescribable products, trial partners, the background formulary and the code
dictionaries (see the package docstring for where each comes from)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.cohort.codes import Mappings, atc3, normalise_ndc
from kgrec.cohort.synth.settings import (
    DEMO, FALLBACK_FLUIDS, FALLBACK_PROCEDURES, GRAPH_SOURCES, GSN_MAP, MAX_DESCENDANT_CODES, NC_PART_FILES, PRODUCT_COLS,
    SOURCE_WEIGHT,
)
from kgrec.errors import InputError, KgrecError
from kgrec.tables import find_table, read_table


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
