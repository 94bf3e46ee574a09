"""Embedding stages over a workspace: export the graph, train KGE or GNN, compare with popularity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kgrec.embed.export import GraphExport, export_graph
from kgrec.embed.vectors import embed_dir
from kgrec.errors import WorkspaceError
from kgrec.graph.tables import GraphTables
from kgrec.metrics.ranking import popularity_scores, rank_evaluate


def graph_tables_dir(workspace: Path | str) -> Path:
    return Path(workspace) / "graph" / "tables"


@dataclass
class EmbedStageResult:
    stage: str
    metrics: dict
    baseline: dict
    seconds: float
    export_info: dict
    path: Path
    device: str = "cpu"  # where it trained (config.device of the saved metrics.json)

    def to_json(self) -> dict:
        return {"stage": self.stage, "metrics": self.metrics, "popularity_baseline": self.baseline,
                "train_seconds": self.seconds, "export": self.export_info, "path": str(self.path), "device": self.device}


def prepare_export(workspace: Path | str, patients: str = "train", seed: int = 42, reuse: bool = False) -> GraphExport:
    """The workspace's graph export (rebuilt from ``graph/tables`` unless ``reuse`` and one exists)."""
    folder = embed_dir(workspace) / "export"
    if reuse and (folder / "export.json").exists():
        return GraphExport.load(folder)
    tables = GraphTables.load(graph_tables_dir(workspace))
    ex = export_graph(tables, patients=patients, seed=seed)
    ex.save(folder)
    return ex


def baseline_metrics(export: GraphExport, workspace: Path | str, seed: int = 42) -> dict:
    m = rank_evaluate(popularity_scores(export), export, "test", seed=seed)
    out = embed_dir(workspace) / "baseline"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"metrics": m}, indent=2))
    return m


def run_kge(workspace, model="RotatE", dim=32, epochs=30, batch_size=8192, lr=0.01, num_negs=4, seed=42, patients="train", progress=True, device="auto") -> EmbedStageResult:
    from kgrec.embed.kge import train_kge

    ex = prepare_export(workspace, patients=patients, seed=seed)
    res = train_kge(ex, model=model, dim=dim, epochs=epochs, batch_size=batch_size, lr=lr, num_negs=num_negs, seed=seed, progress=progress, device=device)
    path = res.save(embed_dir(workspace) / "kge")
    return EmbedStageResult("kge", res.metrics, baseline_metrics(ex, workspace, seed), res.seconds, ex.info, path, res.config["device"])


def run_gnn(workspace, dim=64, epochs=100, lr=0.01, num_layers=2, init_from_kge=True, seed=42, patients="train", progress=True, device="auto") -> EmbedStageResult:
    from kgrec.embed.gnn import train_gnn
    from kgrec.embed.kge import KGEResult

    kge_dir = embed_dir(workspace) / "kge"
    init = None
    if init_from_kge and (kge_dir / "vectors.safetensors").exists():
        ex = prepare_export(workspace, patients=patients, seed=seed, reuse=True)
        kge = KGEResult.load(kge_dir)
        if kge.entities != ex.entities:
            raise WorkspaceError("the KGE vectors do not match the graph export: rerun `kgrec train --stage kge`")
        init = kge.entity_vectors
    else:
        ex = prepare_export(workspace, patients=patients, seed=seed, reuse=(kge_dir / "vectors.safetensors").exists())
    res = train_gnn(ex, dim=dim, epochs=epochs, lr=lr, num_layers=num_layers, init_vectors=init, seed=seed, progress=progress, device=device)
    path = res.save(embed_dir(workspace) / "gnn")
    return EmbedStageResult("gnn", res.metrics, baseline_metrics(ex, workspace, seed), res.seconds, ex.info, path, res.config["device"])
