"""Human Disease Ontology (CC0): Disease nodes, DISEASE_PARENT, and MAPS_TO from diagnosis codes.

* ``Disease``: every DOID of ``HumanDO.tsv``; the root (``DOID:4`` "disease"), named only as a parent
  label, is added from the xref table.
* ``DISEASE_PARENT``: ``HumanDO.tsv``'s ``subClassOf`` holds the parent's *label*; it is resolved to
  the parent's DOID (a term may have several parents: one row each). Unresolvable labels are counted.
* ``MAPS_TO`` (code -> term) from the ``ICD10CM:``, ``ICD9CM:`` and ``SNOMEDCT_US_*:`` xrefs of
  ``allXREFinDO.tsv`` and the comma-separated xrefs of ``ICD10inDO.tsv``, as kgrec code ids:
  ``ICD10CM:E889`` (dots removed), ``ICD9CM:4019``, ``SNOMED:<code>``. Range xrefs
  (``ICD9CM:410-414.99``) and xrefs of terms not in ``HumanDO.tsv`` (obsolete) are skipped and
  counted. SNOMED codes become DiagnosisCode nodes here; ICD codes are defined by the ``icd`` source.
"""

from __future__ import annotations

import pandas as pd

from kgrec.cohort.codes import xref_to_code
from kgrec.graph.sources._base import LIC_CC0, RE_DOID, Context, Source, SourceTables, check_ids, edges_frame, read_rows

class DiseaseOntologySource(Source):
    name = "disease_ontology"
    licence = LIC_CC0
    requires = ("icd",)
    files = ("kg/disease-ontology/HumanDO.tsv", "kg/disease-ontology/allXREFinDO.tsv", "kg/disease-ontology/ICD10inDO.tsv")
    description = "Human Disease Ontology: Disease, DISEASE_PARENT, MAPS_TO (ICD-9/10, SNOMED xrefs)"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        out = SourceTables(droppable=set())
        terms = ctx.do_terms
        first = terms.drop_duplicates("id")
        ids = set(first["id"])
        lab2id = ctx.do_label_to_id
        # parents: labels -> ids (root named only as a parent comes from the xref table)
        parent_labels = terms["subclassof"]
        parent_ids = parent_labels.map(lambda lab: lab2id.get(lab) if lab else None)
        has_parent = parent_labels != ""
        unresolved = has_parent & parent_ids.isna()
        extra = sorted(set(parent_ids.dropna()) - ids)
        id2lab = {i: lab for lab, i in lab2id.items()}
        nodes = pd.concat(
            [
                pd.DataFrame({"id": first["id"], "name": first["label"]}),
                pd.DataFrame({"id": extra, "name": [id2lab.get(i, "") for i in extra]}),
            ],
            ignore_index=True,
        )
        nodes["source"] = self.name
        out.add_nodes("Disease", nodes)
        ok = has_parent & parent_ids.notna()
        par = pd.DataFrame({"src": terms.loc[ok, "id"], "dst": parent_ids[ok]}).drop_duplicates()
        out.add_edges("DISEASE_PARENT", edges_frame(par["src"], par["dst"], self.name, self.licence))
        node_ids = set(nodes["id"])

        # MAPS_TO
        x = ctx.do_xrefs
        icd10 = read_rows(ctx.path("kg/disease-ontology/ICD10inDO.tsv"), ["id", "xrefs"])
        check_ids(icd10, "id", RE_DOID, what="DOID")
        refs = pd.concat(
            [
                pd.DataFrame({"id": x["id"], "xref": x["xref"]}),
                pd.DataFrame({"id": icd10["id"], "xref": icd10["xrefs"].str.split(",")}).explode("xref"),
            ],
            ignore_index=True,
        )
        refs["xref"] = refs["xref"].fillna("").str.strip()
        refs = refs[refs["xref"] != ""].drop_duplicates()
        conv = {r: xref_to_code(r) for r in refs["xref"].unique()}
        refs["code"] = refs["xref"].map(lambda r: conv[r][0])
        refs["why"] = refs["xref"].map(lambda r: conv[r][1])
        coded = refs[refs["why"] != "other"]
        obsolete = ~coded["id"].isin(node_ids)
        good = coded[(coded["why"] == "ok") & ~obsolete].drop_duplicates(["code", "id"])
        out.add_edges("MAPS_TO", edges_frame(good["code"], good["id"], self.name, self.licence))
        snomed = sorted({c for c in good["code"] if c.startswith("SNOMED:")})
        out.add_nodes("DiagnosisCode", pd.DataFrame({"id": snomed, "system": "SNOMED", "source": self.name}))
        out.report = {
            "terms": int(len(first)),
            "root_terms_added": extra,
            "unresolved_parent_labels": int(unresolved.sum()),
            "maps_to": int(len(good)),
            "xrefs_range_skipped": int(((coded["why"] == "range") & ~obsolete).sum()),
            "xrefs_malformed_skipped": int(((coded["why"] == "malformed") & ~obsolete).sum()),
            "xrefs_of_obsolete_terms_skipped": int(obsolete.sum()),
        }
        return out
