"""ICD-9-CM / ICD-10-CM diagnosis codes: a DiagnosisCode node for every ICD code any other source
references (MAPS_TO, GEM, INDICATION_ICD, HAS_DIAGNOSIS...), its three-character category, and
CODE_PARENT (code -> category). Runs after the other sources (``derived``).

ICD-10-CM codes are also placed in the tabular list's own hierarchy (:mod:`kgrec.cohort.icd10cm`):
CODE_BROADER, one level up at a time, code -> subcategory -> category -> block -> chapter
(``ICD10CM:I5020`` -> ``ICD10CM:I502`` -> ``ICD10CM:I50`` -> ``ICD10CM:I30-I5A`` -> ``ICD10CM:9``), the
ancestors added as DiagnosisCode nodes with their names. CODE_PARENT stays the shortcut the model and the
rationale queries read (code -> category); CODE_BROADER is the full placement, for queries and the page
(left out of the embeddings: :data:`kgrec.embed.export.NOT_EMBEDDED`).

Category: the first three characters (``ICD9CM:4019`` -> ``ICD9CM:401``, ``ICD10CM:E889`` ->
``ICD10CM:E88``); ICD-9 E codes have four (``ICD9CM:E8791`` -> ``ICD9CM:E879``). Names come from the
workspace cohort's code table where known, else for ICD-10-CM from CMS's tabular list
(:mod:`kgrec.cohort.icd10cm`). The code systems are US government works: public domain.
"""

from __future__ import annotations

import pandas as pd

from kgrec.cohort import icd10cm
from kgrec.cohort.codes import icd_category  # noqa: F401  (re-exported: the graph's CODE_PARENT rule)
from kgrec.graph.schema import load_schema
from kgrec.graph.sources._base import LIC_PUBLIC_DOMAIN, Context, Source, SourceTables, edges_frame

SYSTEMS = ("ICD9CM", "ICD10CM")


class IcdSource(Source):
    name = "icd"
    licence = LIC_PUBLIC_DOMAIN
    derived = True
    description = "ICD-9-CM/ICD-10-CM DiagnosisCode nodes for every referenced code + CODE_PARENT to the category + the ICD-10-CM hierarchy (CODE_BROADER)"

    def build(self, ctx: Context, previous: list[SourceTables] | None = None) -> SourceTables:
        schema = load_schema()
        ends = [(rel, end) for rel, spec in schema.relationships.items() for end, lab in (("src", spec.src), ("dst", spec.dst)) if lab == "DiagnosisCode"]
        seen: set[str] = set()
        for st in previous or []:
            if "DiagnosisCode" in st.nodes:
                seen.update(st.nodes["DiagnosisCode"]["id"])
            for rel, end in ends:
                if rel in st.edges:
                    seen.update(st.edges[rel][end])
        codes, placed, cats, broader = placement(seen)
        all_ids = sorted(codes | placed | {c for c in cats.values() if c})
        names = {}
        cohort = ctx.cohort
        if cohort is not None:
            names = {str(c): n for c, n in cohort.names().items() if n and str(n) != str(c)}
        from_list = {c: n for c in all_ids if c not in names and c.startswith(icd10cm.PREFIX) and (n := icd10cm.name(c))}
        names.update(from_list)
        out = SourceTables()
        out.add_nodes(
            "DiagnosisCode",
            pd.DataFrame(
                {
                    "id": all_ids,
                    "name": [names.get(c) for c in all_ids],
                    "system": [c.partition(":")[0] for c in all_ids],
                    "source": self.name,
                }
            ),
        )
        child = sorted(c for c, p in cats.items() if p and p != c)  # the referenced codes (a placed ancestor: CODE_BROADER only)
        out.add_edges("CODE_PARENT", edges_frame(child, [cats[c] for c in child], self.name, self.licence))
        if broader:
            out.add_edges("CODE_BROADER", edges_frame([a for a, _ in broader], [b for _, b in broader], self.name, self.licence))
        out.report = {"referenced_codes": len(codes), "categories_added": len(all_ids) - len(codes),
                      "icd10cm_named_from_tabular_list": len(from_list), "icd10cm_names": f"{icd10cm.SOURCE} {icd10cm.version()}",
                      "unnamed_codes": sum(1 for c in all_ids if not names.get(c)),
                      "icd10cm_hierarchy_edges": len(broader), "icd10cm_ancestors_added": len(placed)}
        return out


def placement(referenced) -> tuple[set[str], set[str], dict[str, str | None], list[tuple[str, str]]]:
    """What this source adds for the ids other sources reference: the ICD codes, each code's category
    (CODE_PARENT), the ICD-10-CM ancestors above them that are neither (subcategories, blocks, chapters:
    placed by CODE_BROADER alone) and the CODE_BROADER pairs. :func:`derived_ids` is the set of node ids."""
    codes = {c for c in referenced if c.partition(":")[0] in SYSTEMS}
    cats = {c: icd_category(c) for c in codes}
    broader = _icd10_hierarchy(c for c in codes | set(cats.values()) if c and c.startswith(icd10cm.PREFIX))  # a retired code's category too
    placed = {c for edge in broader for c in edge} - codes - set(cats.values())
    return codes, placed, cats, broader


def derived_ids(referenced) -> set[str]:
    """The DiagnosisCode ids this source defines for ``referenced`` ids."""
    codes, placed, cats, _ = placement(referenced)
    return codes | placed | {c for c in cats.values() if c}


def _icd10_hierarchy(codes) -> list[tuple[str, str]]:
    """(child, parent) for every ICD-10-CM code of ``codes`` and each of its tabular-list ancestors, sorted;
    a code not in the tabular list (a site's local or retired code) has none."""
    pairs: set[tuple[str, str]] = set()
    todo = list(codes)
    done: set[str] = set()
    while todo:
        c = todo.pop()
        if c in done:
            continue
        done.add(c)
        up = icd10cm.parent(c)
        if up is not None:
            pairs.add((c, up))
            todo.append(up)
    return sorted(pairs)
