"""`kgrec train --stage ...`: the model-training stages."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from kgrec import api
from kgrec.cli.app import app
from kgrec.cli.common import DEFAULT_WORKSPACE, JsonOut, Workspace, console, emit_json, handle_errors


class Stage(str, Enum):
    kge = "kge"
    gnn = "gnn"


class PatientNodes(str, Enum):
    train = "train"
    none = "none"
    all = "all"


@app.command()
@handle_errors
def train(
    stage: Annotated[Stage, typer.Option(help="kge: PyKEEN knowledge-graph embeddings. gnn: R-GCN (PyG) link prediction, initialised from the KGE vectors when present.")],
    workspace: Workspace = DEFAULT_WORKSPACE,
    model: Annotated[str, typer.Option(help="PyKEEN model for --stage kge (RotatE, TransE, ComplEx, DistMult, ...).")] = "RotatE",
    dim: Annotated[int, typer.Option(help="Embedding dimension (complex models: complex dimension; vectors get 2·dim reals).")] = 64,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: 50 for kge, 100 for gnn).", show_default=False)] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: 0.005 kge, 0.01 gnn).", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(help="Triples per batch (kge).")] = 2048,
    init_from_kge: Annotated[bool, typer.Option("--init-from-kge/--no-init-from-kge", help="gnn: start node inputs from the KGE vectors.")] = True,
    patients: Annotated[PatientNodes, typer.Option(help="Patient/Visit nodes in the training graph: 'train' (training-split patients only), 'none', or 'all' (leaks test patients).")] = PatientNodes.train,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same numbers.")] = 42,
    json_out: JsonOut = False,
) -> None:
    """Train graph embeddings on the workspace graph and rank held-out drug -> disease indications.

    Needs `kgrec prepare` and `kgrec load-graph` first. 10% of the indication edges are held out;
    MRR and Hits@10 (filtered, type-restricted, both directions) are compared with a popularity
    baseline on the same edges. Vectors are saved as safetensors with their entity index.
    """
    if stage is Stage.kge:
        res = api.train_kge(workspace, model=model, dim=dim, epochs=epochs or 50, lr=lr or 0.005, batch_size=batch_size, seed=seed, patients=patients.value, progress=not json_out)
    else:
        res = api.train_gnn(workspace, dim=dim, epochs=epochs or 100, lr=lr or 0.01, init_from_kge=init_from_kge, seed=seed, patients=patients.value, progress=not json_out)
    if json_out:
        emit_json(res.to_json())
        return
    table = Table(title=f"{stage.value}: held-out indications ({res.metrics['n_triples']} edges)")
    table.add_column("metric")
    table.add_column(stage.value, justify="right")
    table.add_column("popularity", justify="right")
    for m in ("mrr", "hits_at_1", "hits_at_3", "hits_at_10", "auc"):
        table.add_row(m, f"{res.metrics[m]:.4f}", f"{res.baseline[m]:.4f}")
    console.print(table)
    console.print(f"trained in {res.seconds:.1f} s; saved in {res.path}")
