"""DrugBank: Ingredient nodes from the open vocabulary (CC0) and IN_CLASS edges to ATC level 3.

* ``Ingredient`` nodes: every id of ``kg/drugbank/drugbank_vocabulary.csv`` (CC0), with name, UNII and
  InChIKey; ``source = drugbank_vocabulary``. The ``groups`` property (approved, experimental...) comes
  from the slim table and is left empty with ``exclude_nc``. Ids only in the slim table become
  Ingredient nodes with ``source = drugbank_slim`` (non-commercial; gone with ``exclude_nc``).
* ``IN_CLASS`` from the ATC codes of ``kg/drugbank/drugbank.tsv`` (CC BY-NC 4.0, ``source =
  drugbank_slim``), cross-checked against the WHO level-5 names (README quirk: loratadine carries
  lisinopril's C09AA03): a code whose WHO name is a name of a *different* DrugBank drug and none of
  this drug's names is dropped as a conflict; a code whose name matches no drug is kept (combinations,
  salts). Dropped with ``exclude_nc``.
* ``IN_CLASS`` by name (``source = atc_name_match``, open): a WHO level-5 name equal (normalised) to the
  name or a synonym of exactly one vocabulary drug. This reaches drugs the slim table misses
  (acetaminophen = paracetamol N02BE01, lisinopril C09AA03) and stays with ``exclude_nc``.

One edge per (ingredient, ATC3 class, source); ``atc_code`` lists the level-5 codes behind it (``|``).
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from kgrec.cohort.codes import atc3
from kgrec.errors import InputError
from kgrec.graph.sources._base import (
    LIC_CC0,
    LIC_DRUGBANK_SLIM,
    LIC_WHO_ATC,
    RE_ATC,
    RE_DRUGBANK,
    Context,
    Source,
    SourceTables,
    check_ids,
    edges_frame,
    norm_name,
    read_rows,
)

SRC_VOCAB, SRC_SLIM, SRC_NAME = "drugbank_vocabulary", "drugbank_slim", "atc_name_match"
LIC_NAME_MATCH = f"{LIC_CC0} + {LIC_WHO_ATC}"


def _in_class(pairs: dict[tuple[str, str], set[str]], source: str, licence: str) -> pd.DataFrame:
    keys = sorted(pairs)
    return edges_frame(
        [k[0] for k in keys], [k[1] for k in keys], source, licence, atc_code=["|".join(sorted(pairs[k])) for k in keys]
    )


class DrugBankSource(Source):
    name = "drugbank"
    licence = f"{LIC_CC0} (vocabulary); {LIC_DRUGBANK_SLIM} (drugbank.tsv)"
    nc_parts = "IN_CLASS from drugbank.tsv, Ingredient.groups and slim-only Ingredient nodes (CC BY-NC 4.0)"
    requires = ("atc",)
    files = ("kg/drugbank/drugbank_vocabulary.csv", "kg/drugbank/drugbank.tsv", "mappings/atc_coding.csv.gz")
    description = "DrugBank open vocabulary (Ingredient) and ATC classes (IN_CLASS)"

    def read_slim(self, ctx: Context) -> pd.DataFrame:
        df = read_rows(ctx.path("kg/drugbank/drugbank.tsv"), ["drugbank_id", "name", "atc_codes"], ["groups", "inchikey"])
        check_ids(df, "drugbank_id", RE_DRUGBANK, what="DrugBank id")
        codes = df["atc_codes"].str.split("|").explode().str.strip()
        codes = codes[codes != ""]
        bad = ~codes.str.fullmatch(RE_ATC)
        if bad.any():
            i = bad.idxmax()
            raise InputError(f"bad ATC code {codes.loc[i]!r}", path=df.attrs["path"], column="atc_codes", line=int(df.loc[i, "_line"]))
        return df

    def build(self, ctx: Context, previous=None) -> SourceTables:
        out = SourceTables(droppable={"IN_CLASS"})
        v = ctx.vocabulary
        get = lambda c: v[c] if c in v else pd.Series("", index=v.index)  # noqa: E731
        ing = pd.DataFrame(
            {
                "id": v["drugbank id"],
                "name": v["common name"],
                "unii": get("unii"),
                "inchikey": get("standard inchi key"),
                "source": SRC_VOCAB,
            }
        )
        report: dict = {"vocabulary_ingredients": int(len(ing))}

        # WHO level-5 names, and open name-match IN_CLASS
        who5: dict[str, set[str]] = defaultdict(set)
        for c, n in zip(ctx.atc_table["atc_code"], ctx.atc_table["atc_name"]):
            if len(c) == 7:
                who5[c].add(norm_name(n))
        by_name = ctx.name_to_ingredients
        matched: dict[tuple[str, str], set[str]] = defaultdict(set)
        ambiguous = 0
        for code, names in who5.items():
            hits = set()
            for n in names:
                ids = by_name.get(n, set())
                if len(ids) == 1:
                    hits |= ids
                elif len(ids) > 1:
                    ambiguous += 1
            for d in hits:
                matched[(d, code[:4])].add(code)
        out.add_edges("IN_CLASS", _in_class(matched, SRC_NAME, LIC_NAME_MATCH))
        report["name_match_in_class"] = len(matched)
        report["name_match_ambiguous_names"] = ambiguous

        if ctx.exclude_nc:
            out.add_nodes("Ingredient", ing)
            out.report = report
            return out

        slim = self.read_slim(ctx)
        groups = dict(zip(slim["drugbank_id"], slim.get("groups", pd.Series("", index=slim.index))))
        ing["groups"] = ing["id"].map(groups)
        known = set(ing["id"])
        extra = slim[~slim["drugbank_id"].isin(known)]
        extra_nodes = pd.DataFrame(
            {
                "id": extra["drugbank_id"],
                "name": extra["name"],
                "groups": extra.get("groups"),
                "inchikey": extra.get("inchikey"),
                "source": SRC_SLIM,
            }
        )
        out.add_nodes("Ingredient", pd.concat([ing, extra_nodes], ignore_index=True))
        report["slim_only_ingredients"] = int(len(extra_nodes))

        # names per drug: open vocabulary + slim name; name -> drugs for the conflict check
        names_of = {d: set(s) for d, s in ctx.ingredient_names.items()}
        for d, n in zip(slim["drugbank_id"], slim["name"]):
            names_of.setdefault(d, set()).add(norm_name(n))
        drugs_named: dict[str, set[str]] = defaultdict(set)
        for d, ns in names_of.items():
            for n in ns:
                drugs_named[n].add(d)
        pairs: dict[tuple[str, str], set[str]] = defaultdict(set)
        stats = {"codes": 0, "verified": 0, "unverified": 0, "conflict_dropped": 0, "above_level3_skipped": 0}
        conflicts = []
        for d, codes in zip(slim["drugbank_id"], slim["atc_codes"]):
            for code in (c.strip() for c in codes.split("|")):
                if not code:
                    continue
                stats["codes"] += 1
                a3 = atc3(code)
                if a3 is None:
                    stats["above_level3_skipped"] += 1
                    continue
                who = who5.get(code)
                if who and not (who & names_of.get(d, set())):
                    others = set().union(*(drugs_named.get(n, set()) for n in who)) - {d}
                    if others:
                        stats["conflict_dropped"] += 1
                        if len(conflicts) < 10:
                            conflicts.append(f"{d} {code} ({'/'.join(sorted(who))} is {','.join(sorted(others)[:3])})")
                        continue
                    stats["unverified"] += 1
                elif who:
                    stats["verified"] += 1
                else:
                    stats["unverified"] += 1
                pairs[(d, a3)].add(code)
        out.add_edges("IN_CLASS", _in_class(pairs, SRC_SLIM, LIC_DRUGBANK_SLIM))
        report.update({f"slim_atc_{k}": v for k, v in stats.items()})
        report["slim_in_class"] = len(pairs)
        report["slim_atc_conflict_examples"] = conflicts
        out.report = report
        return out
