"""BioCreative V CDR corpus (PubTator format, public domain): the literature layer.

* ``Publication`` (id = PMID, with its title); ``Chemical`` (id = ``MESH:<MeSH id>``, name = the most
  frequent mention text).
* ``MENTIONS_CHEMICAL`` (count = mentions in title + abstract).
* ``MENTIONS_DISEASE``: disease MeSH ids reach DOIDs through the ``MESH:`` xrefs of the Disease Ontology
  (``allXREFinDO.tsv``); mentions whose MeSH id has no DOID are counted and skipped.
* ``INDUCES`` (chemical -> disease, with the PMID of the evidence) from the ``CID`` relation lines.
* ``SAME_AS`` (chemical -> DrugBank ingredient): mention texts equal (normalised) to the name or a
  synonym of exactly one drug of the open DrugBank vocabulary vote with their mention counts; the
  drug with the most votes wins (a tie is skipped and counted). Abbreviation-like texts (fewer than
  four characters, or upper case up to eight) do not vote: "DEX", "CC" hit other drugs' synonyms.

Mentions with id ``-1`` (not normalised) are skipped and counted; composite ids (``D001|D002``, the
seventh column naming the parts) count for each part. The corpus files repeat abstracts (the
training file holds the development set too): a PMID seen again is read once.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kgrec.errors import InputError
from kgrec.graph.sources._base import LIC_CC0, LIC_PUBLIC_DOMAIN, Context, Source, SourceTables, edges_frame, norm_name, read_text

FOLDER = "literature/bc5cdr"
RE_TITLE = re.compile(r"(\d+)\|([ta])\|(.*)")
RE_MESH = re.compile(r"-1|[CD]\d+")
TYPES = ("Chemical", "Disease")
LIC_DO_XREF = f"{LIC_PUBLIC_DOMAIN} + {LIC_CC0} (Disease Ontology xrefs)"
LIC_SAME_AS = f"{LIC_PUBLIC_DOMAIN} + {LIC_CC0} (DrugBank vocabulary)"


@dataclass
class Document:
    pmid: str
    line: int
    title: str = ""
    abstract: str = ""
    # (type, [mesh ids], [texts per id], line)
    mentions: list[tuple[str, list[str], list[str], int]] = field(default_factory=list)
    # (relation, chemical mesh, disease mesh, line)
    relations: list[tuple[str, str, str, int]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)


def _ids(cell: str, path: Path, line: int) -> list[str]:
    parts = [p.strip() for p in cell.split("|")]
    for p in parts:
        if not RE_MESH.fullmatch(p):
            raise InputError(f"bad MeSH id {p!r} in {cell!r} (expected D123456, C123456 or -1)", path=path, line=line)
    return parts


def parse_pubtator(path: Path) -> list[Document]:
    """Parse a PubTator file: ``PMID|t|title``, ``PMID|a|abstract``, mention lines
    ``PMID<TAB>start<TAB>end<TAB>text<TAB>type<TAB>ids[<TAB>texts]`` and relation lines
    ``PMID<TAB>CID<TAB>chemical<TAB>disease``; documents are separated by blank lines.
    Anything else is an :class:`InputError` naming the file and line."""
    path = Path(path)
    docs: list[Document] = []
    cur: Document | None = None
    for n, raw in enumerate(read_text(path).split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            cur = None
            continue
        m = RE_TITLE.match(line)
        if m:
            pmid, kind, text = m.groups()
            if kind == "t":
                if cur is not None and cur.pmid == pmid and cur.title:
                    raise InputError(f"second title line for PMID {pmid}", path=path, line=n)
                if cur is None or cur.pmid != pmid:
                    cur = Document(pmid, n)
                    docs.append(cur)
                cur.title = text
            else:
                if cur is None or cur.pmid != pmid:
                    raise InputError(f"abstract line for PMID {pmid} outside its document", path=path, line=n)
                cur.abstract = text
            cur.raw.append(line)
            continue
        f = line.split("\t")
        if cur is None or f[0] != cur.pmid:
            raise InputError(
                f"line for PMID {f[0]!r} outside its document (expected a 'PMID|t|title' line first)"
                if len(f) in (4, 6, 7)
                else "not a PubTator line (title, abstract, mention or relation)",
                path=path,
                line=n,
            )
        if len(f) == 4:
            rel, chem, dis = f[1], f[2].strip(), f[3].strip()
            _ids(chem, path, n)
            _ids(dis, path, n)
            cur.relations.append((rel, chem, dis, n))
        elif len(f) in (6, 7):
            if not (f[1].isdigit() and f[2].isdigit()):
                raise InputError(f"mention offsets must be integers, got {f[1]!r}, {f[2]!r}", path=path, line=n)
            if f[4] not in TYPES:
                raise InputError(f"unknown mention type {f[4]!r} (expected {' or '.join(TYPES)})", path=path, line=n)
            ids = _ids(f[5], path, n)
            texts = f[6].split("|") if len(f) == 7 else []
            if len(texts) != len(ids):
                texts = [f[3]] * len(ids)
            cur.mentions.append((f[4], ids, texts, n))
        else:
            raise InputError(f"expected 4 (relation) or 6-7 (mention) tab-separated fields, found {len(f)}", path=path, line=n)
        cur.raw.append(line)
    return docs


class Bc5cdrSource(Source):
    name = "bc5cdr"
    licence = LIC_PUBLIC_DOMAIN
    requires = ("disease_ontology", "drugbank")
    files = (f"{FOLDER}/CDR_TrainingSet.PubTator.txt", f"{FOLDER}/CDR_DevelopmentSet.PubTator.txt", f"{FOLDER}/CDR_TestSet.PubTator.txt")
    description = "BC5CDR literature: Publication, Chemical, MENTIONS_*, INDUCES, SAME_AS"

    def build(self, ctx: Context, previous=None) -> SourceTables:
        folder = ctx.path(FOLDER)
        files = sorted(p for p in folder.iterdir() if p.name.lower().endswith(".pubtator.txt"))
        if not files:
            raise InputError("no *.PubTator.txt files", path=folder)
        docs: dict[str, Document] = {}
        dup_same = dup_diff = 0
        for p in files:
            for d in parse_pubtator(p):
                if d.pmid in docs:
                    if docs[d.pmid].raw == d.raw:
                        dup_same += 1
                    else:
                        dup_diff += 1
                    continue
                docs[d.pmid] = d
        mesh2doid = ctx.mesh_to_doids
        texts: dict[str, Counter] = defaultdict(Counter)
        chem_counts: Counter = Counter()
        dis_counts: Counter = Counter()
        induces: set[tuple[str, str, str]] = set()
        stats = Counter()
        for d in docs.values():
            for typ, ids, txts, _ in d.mentions:
                for mesh, text in zip(ids, txts):
                    if mesh == "-1":
                        stats[f"{typ.lower()}_mentions_without_id"] += 1
                        continue
                    if typ == "Chemical":
                        cid = f"MESH:{mesh}"
                        texts[cid][text.strip()] += 1
                        chem_counts[(d.pmid, cid)] += 1
                    else:
                        doids = mesh2doid.get(mesh)
                        if not doids:
                            stats["disease_mentions_without_doid"] += 1
                            continue
                        for doid in doids:
                            dis_counts[(d.pmid, doid)] += 1
            for rel, chem, dis, _ in d.relations:
                if rel != "CID":
                    stats[f"relations_{rel}_ignored"] += 1
                    continue
                for c in chem.split("|"):
                    for m in dis.split("|"):
                        if c == "-1" or m == "-1":
                            continue
                        doids = mesh2doid.get(m)
                        if not doids:
                            stats["cid_relations_without_doid"] += 1
                            continue
                        texts.setdefault(f"MESH:{c}", Counter())
                        for doid in doids:
                            induces.add((f"MESH:{c}", doid, d.pmid))
        out = SourceTables(droppable={"MENTIONS_DISEASE", "INDUCES"})
        pmids = list(docs)
        out.add_nodes("Publication", pd.DataFrame({"id": pmids, "title": [docs[p].title for p in pmids], "source": self.name}))
        chems = sorted(texts)
        out.add_nodes(
            "Chemical",
            pd.DataFrame(
                {"id": chems, "name": [texts[c].most_common(1)[0][0] if texts[c] else None for c in chems], "source": self.name}
            ),
        )
        ck = sorted(chem_counts)
        out.add_edges("MENTIONS_CHEMICAL", edges_frame([k[0] for k in ck], [k[1] for k in ck], self.name, self.licence, count=[chem_counts[k] for k in ck]))
        dk = sorted(dis_counts)
        out.add_edges("MENTIONS_DISEASE", edges_frame([k[0] for k in dk], [k[1] for k in dk], self.name, LIC_DO_XREF, count=[dis_counts[k] for k in dk]))
        ik = sorted(induces)
        out.add_edges("INDUCES", edges_frame([k[0] for k in ik], [k[1] for k in ik], self.name, LIC_DO_XREF, pmid=[k[2] for k in ik]))
        # SAME_AS by name: mention texts weighted by frequency; abbreviations (short or upper-case
        # texts: "DEX", "CC", "PRO") are not names and would hit DrugBank synonyms of other drugs.
        by_name = ctx.name_to_ingredients
        same: set[tuple[str, str]] = set()
        ambiguous = 0
        for c in chems:
            votes: Counter = Counter()
            for t, n in texts[c].items():
                key = norm_name(t)
                if len(key) < 4 or (t.upper() == t and len(t) <= 8):
                    continue
                ids = by_name.get(key, set())
                if len(ids) == 1:
                    votes[next(iter(ids))] += n
            if not votes:
                continue
            top = votes.most_common()
            if len(top) > 1 and top[1][1] == top[0][1]:
                ambiguous += 1
                continue
            same.add((c, top[0][0]))
        sk = sorted(same)
        out.add_edges("SAME_AS", edges_frame([k[0] for k in sk], [k[1] for k in sk], self.name, LIC_SAME_AS))
        out.report = {
            "files": [p.name for p in files],
            "abstracts": len(docs),
            "duplicate_abstracts_skipped": dup_same,
            "conflicting_duplicate_abstracts_skipped": dup_diff,
            "chemicals": len(chems),
            "chemicals_matched_to_drugbank": len({c for c, _ in same}),
            "chemicals_with_tied_drug_matches": ambiguous,
            **dict(stats),
        }
        return out
