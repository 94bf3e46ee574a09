"""Graph tables -> one entity index shared by a PyKEEN ``TriplesFactory`` and a PyG ``HeteroData``.

Entities are keyed ``"<Label>:<id>"`` (``Drug:B01A``, ``Disease:DOID:10652``,
``DiagnosisCode:ICD9CM:4019``), relations by their schema type, except that ``INDICATION`` edges are
split by kind: ``INDICATION`` (treats or palliates: the link-prediction target) and ``NON_INDICATION``
(PharmacotherapyDB's curated non-indications, kept as their own relation, never as positives).

Held-out target edges: the unique (ingredient, disease) ``INDICATION`` pairs are split train/val/test
(seeded, 80/10/10); val and test pairs are removed from the training triples. Patient and Visit nodes:
``patients="train"`` keeps only Patient nodes whose ``split`` property is ``train`` (the cohort's saved
split) and their visits: validation and test patients never enter the graph the embeddings see;
``"none"`` drops them all (use this when a later stage cross-validates over patients); ``"all"`` keeps
everything (no held-out patients: leaks).

Not embedded: the relations in :data:`NOT_EMBEDDED` (the ICD-10-CM tabular list's CODE_BROADER chain:
navigation for queries and the page; the model reads a code's category through CODE_PARENT) and the
nodes that only they reach (blocks, chapters, subcategories no source references). The embeddings, and
the shared cache's keys, are those of the graph without them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.errors import WorkspaceError
from kgrec.graph.schema import load_schema
from kgrec.graph.tables import GraphTables

TARGET = "INDICATION"
PATIENT_LABELS = ("Patient", "Visit")
PATIENT_MODES = ("train", "none", "all")
NOT_EMBEDDED = ("CODE_BROADER",)


def entity_key(label: str, node_id: str) -> str:
    return f"{label}:{node_id}"


@dataclass
class GraphExport:
    """Triples over one entity index, with the held-out target edges.

    Attributes:
        entities: entity keys, position = index (shared by PyKEEN and PyG).
        labels: the node label of each entity.
        relations: relation names, position = index.
        train: (n, 3) int64 training triples (head, relation, tail).
        valid, test: (n, 3) int64 held-out ``INDICATION`` triples.
        info: what was used and dropped (documented in ``export.json``).
    """

    entities: list[str]
    labels: list[str]
    relations: list[str]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def entity_to_id(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.entities)}

    @property
    def relation_to_id(self) -> dict[str, int]:
        return {r: i for i, r in enumerate(self.relations)}

    @property
    def target_relation(self) -> int:
        return self.relations.index(TARGET)

    def label_ids(self, label: str) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.labels) == label)

    # ---- library views ----
    def triples_factory(self, which: str = "train"):
        """A PyKEEN ``CoreTriplesFactory`` over the shared index (all entities, even isolated ones)."""
        import torch
        from pykeen.triples import TriplesFactory

        return TriplesFactory(
            mapped_triples=torch.as_tensor(getattr(self, which), dtype=torch.long),
            entity_to_id=self.entity_to_id,
            relation_to_id=self.relation_to_id,
            create_inverse_triples=False,
        )

    def hetero_data(self):
        """A PyG ``HeteroData`` of the training triples; ``data[label].global_id`` maps back to the index."""
        import torch
        from torch_geometric.data import HeteroData

        data = HeteroData()
        labels = np.asarray(self.labels)
        local = np.zeros(len(labels), dtype=np.int64)
        for label in sorted(set(self.labels)):
            ids = np.flatnonzero(labels == label)
            local[ids] = np.arange(len(ids))
            data[label].global_id = torch.as_tensor(ids)
            data[label].num_nodes = len(ids)
        h, r, t = self.train.T
        for rel_id, rel in enumerate(self.relations):
            m = r == rel_id
            if not m.any():
                continue
            src_label, dst_label = labels[h[m][0]], labels[t[m][0]]
            data[src_label, rel, dst_label].edge_index = torch.as_tensor(np.stack([local[h[m]], local[t[m]]]))
        return data

    # ---- persistence ----
    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("train", "valid", "test"):
            pd.DataFrame(getattr(self, name), columns=["head", "relation", "tail"]).to_parquet(folder / f"{name}.parquet", index=False)
        pd.DataFrame({"entity": self.entities, "label": self.labels}).to_parquet(folder / "entities.parquet", index=False)
        (folder / "export.json").write_text(json.dumps({"relations": self.relations, "info": self.info}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> GraphExport:
        folder = Path(folder)
        if not (folder / "export.json").exists():
            raise WorkspaceError(f"no graph export in {folder}: run `kgrec train --stage kge` first")
        meta = json.loads((folder / "export.json").read_text())
        ents = pd.read_parquet(folder / "entities.parquet")
        tri = {n: pd.read_parquet(folder / f"{n}.parquet").to_numpy(dtype=np.int64) for n in ("train", "valid", "test")}
        return cls(ents["entity"].tolist(), ents["label"].tolist(), meta["relations"], tri["train"], tri["valid"], tri["test"], meta["info"])


def _only_unembedded(tables: GraphTables, schema) -> dict[str, set[str]]:
    """Per label, the node ids that have edges of :data:`NOT_EMBEDDED` relations and no other edge."""
    ends: dict[bool, dict[str, set[str]]] = {True: {}, False: {}}
    for rel, df in tables.edges.items():
        spec = schema.relationships[rel]
        side = ends[rel in NOT_EMBEDDED]
        side.setdefault(spec.src, set()).update(df["src"].astype(str).unique())
        side.setdefault(spec.dst, set()).update(df["dst"].astype(str).unique())
    return {label: ids - ends[False].get(label, set()) for label, ids in ends[True].items()}


def export_graph(
    tables: GraphTables,
    patients: str = "train",
    seed: int = 42,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> GraphExport:
    """Build the shared-index triples from graph tables (see the module docstring for the rules)."""
    if patients not in PATIENT_MODES:
        raise ValueError(f"patients must be one of {PATIENT_MODES}, got {patients!r}")
    if patients == "train" and "Patient" in tables.nodes and ("split" not in tables.nodes["Patient"] or tables.nodes["Patient"]["split"].isna().all()):
        raise WorkspaceError("patients='train' needs Patient nodes with the cohort's split: run `kgrec prepare` then `kgrec load-graph`, or use patients='none'")
    schema = load_schema()
    keep_nodes: dict[str, pd.Series] = {}
    dropped: dict[str, int] = {}
    for label, df in tables.nodes.items():
        ids = df["id"].astype(str)
        if label in PATIENT_LABELS and patients != "all":
            if patients == "none":
                ids = ids.iloc[:0]
            elif label == "Patient":
                ids = ids[df["split"].astype(str).eq("train").to_numpy()]
        keep_nodes[label] = ids
    only_unembedded = _only_unembedded(tables, schema)
    for label, drop in only_unembedded.items():
        if label in keep_nodes:
            keep_nodes[label] = keep_nodes[label][~keep_nodes[label].isin(drop)]
    # Visits follow their patient.
    if patients == "train" and "HAS_VISIT" in tables.edges and "Visit" in keep_nodes:
        hv = tables.edges["HAS_VISIT"]
        ok_visits = set(hv.loc[hv["src"].astype(str).isin(set(keep_nodes["Patient"])), "dst"].astype(str))
        keep_nodes["Visit"] = keep_nodes["Visit"][keep_nodes["Visit"].isin(ok_visits)]
    for label in PATIENT_LABELS:
        if label in tables.nodes:
            dropped[label] = int(len(tables.nodes[label]) - len(keep_nodes.get(label, [])))

    entities, labels = [], []
    # per label: its ids in index order, looked up by a hash index (offset + position), not key by key
    position: dict[str, tuple[int, pd.Index]] = {}
    for label in sorted(keep_nodes):
        ids = sorted(keep_nodes[label].unique())
        position[label] = (len(entities), pd.Index(ids, dtype=object))
        entities += [entity_key(label, i) for i in ids]
        labels += [label] * len(ids)

    def lookup(label: str, col: pd.Series) -> np.ndarray:
        """The entity index of each id in ``col`` (a node of ``label``), -1 where it is not an entity."""
        if label not in position:
            return np.full(len(col), -1, dtype=np.int64)
        offset, ids = position[label]
        at = ids.get_indexer(col.astype(str).to_numpy(dtype=object)).astype(np.int64)
        return np.where(at >= 0, at + offset, -1)

    triples: dict[str, np.ndarray] = {}
    for rel, df in tables.edges.items():
        if rel in NOT_EMBEDDED:
            continue
        spec = schema.relationships[rel]
        h, t = lookup(spec.src, df["src"]), lookup(spec.dst, df["dst"])
        ok = (h >= 0) & (t >= 0)
        if rel == TARGET and "kind" in df:
            neg = df["kind"].astype(str).eq("non_indication").to_numpy()
            triples["NON_INDICATION"] = np.stack([h[ok & neg], t[ok & neg]], 1)
            ok = ok & ~neg
        triples[rel] = np.stack([h[ok], t[ok]], 1)
    if TARGET not in triples or len(triples[TARGET]) == 0:
        raise WorkspaceError("the graph has no INDICATION (drug -> disease) edges: load a graph with indication sources")
    relations = sorted(k for k, v in triples.items() if len(v))
    rel_id = {r: i for i, r in enumerate(relations)}

    target = np.unique(triples[TARGET], axis=0)
    if len(target) < 10:
        raise WorkspaceError(f"only {len(target)} INDICATION edges: too few to hold any out")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(target))
    n_test = max(1, int(round(ratios[2] * len(target))))
    n_val = max(1, int(round(ratios[1] * len(target))))
    test_pairs, val_pairs, train_pairs = target[order[:n_test]], target[order[n_test:n_test + n_val]], target[order[n_test + n_val:]]

    def with_rel(pairs: np.ndarray, r: str) -> np.ndarray:
        return np.column_stack([pairs[:, 0], np.full(len(pairs), rel_id[r]), pairs[:, 1]]).astype(np.int64)

    train_parts = [with_rel(train_pairs, TARGET)] + [with_rel(np.unique(v, axis=0), r) for r, v in triples.items() if r != TARGET and len(v)]
    train = np.concatenate(train_parts)
    info = {
        "relations_used": {r: int(len(np.unique(v, axis=0))) for r, v in triples.items() if len(v)},
        "target_relation": TARGET,
        "target_split": {"train": int(len(train_pairs)), "valid": int(len(val_pairs)), "test": int(len(test_pairs))},
        "patients": patients,
        "patient_nodes_dropped": dropped,
        "n_entities": len(entities),
        "n_train_triples": int(len(train)),
        "seed": seed,
    }
    return GraphExport(entities, labels, relations, train, with_rel(val_pairs, TARGET), with_rel(test_pairs, TARGET), info)
