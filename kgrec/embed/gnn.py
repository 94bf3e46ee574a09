"""A relational GCN (Schlichtkrull et al., ESWC 2018) in PyG for indication link prediction.

Full-batch over the export's ``HeteroData`` (no NeighborLoader: pyg-lib/torch-sparse are not available
prebuilt). Each layer is the R-GCN update ``h_i' = h_i + ReLU(W_0 h_i + sum_r mean_{j in N_r(i)} W_r h_j)``
(:class:`RelationalLayer`), with one relation per schema type and one per inverse (``rev_<rel>``) so
messages flow both ways: per-relation weights, no basis decomposition, aggregation by PyG's ``scatter``.
(PyG's ``RGCNConv`` keeps N x d buffers per relation and needed ~10 GB on the 104k-node open graph; a
``HeteroConv`` of ``GraphConv`` transforms every destination node once per relation, 4x slower here.)
A DistMult decoder scores (ingredient, INDICATION, disease). Node inputs are learned embeddings,
optionally initialised from the KGE vectors. Trained with BCE against type-consistent corrupted
heads and tails.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from safetensors.torch import load_file, save_file
from torch import nn
from torch_geometric.utils import scatter

from kgrec.embed.export import GraphExport
from kgrec.metrics.ranking import rank_evaluate


class RelationalLayer(nn.Module):
    """One R-GCN layer: ``h_i' = W_0[type(i)] h_i + sum_r mean_{j in N_r(i)} W_r h_j``.

    ``W_r`` is applied to the distinct source nodes of relation r only (then gathered per edge and
    mean-aggregated with PyG's ``scatter``), and the self term once per node type: the cost is
    ``(sum_r |src(r)| + N) d^2`` instead of the ``|relations| * N * d^2`` of one ``GraphConv`` per relation
    in a ``HeteroConv`` (each of which transforms every destination node).
    """

    def __init__(self, node_types: list[str], edge_types: list[tuple[str, str, str]], dim: int):
        super().__init__()
        self.edge_types = list(edge_types)
        self.rel = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in self.edge_types)
        self.root = nn.ModuleDict({t: nn.Linear(dim, dim) for t in node_types})

    def forward(self, x: dict[str, torch.Tensor], plan: dict) -> dict[str, torch.Tensor]:
        out = {t: self.root[t](v) for t, v in x.items()}
        for lin, et in zip(self.rel, self.edge_types):
            if et not in plan:
                continue
            uniq, inv, dst = plan[et]
            src_t, _, dst_t = et
            msg = lin(x[src_t][uniq])[inv]
            out[dst_t] = out[dst_t] + scatter(msg, dst, dim=0, dim_size=x[dst_t].shape[0], reduce="mean")
        return out


def message_plan(edge_index: dict) -> dict:
    """Per edge type: (distinct source nodes, edge -> position in them, destination per edge)."""
    plan = {}
    for et, ei in edge_index.items():
        if ei.shape[1] == 0:
            continue
        uniq, inv = torch.unique(ei[0], return_inverse=True)
        plan[et] = (uniq, inv, ei[1])
    return plan


class RGCNEncoder(nn.Module):
    """Embedding table over the shared entity index -> ``num_layers`` relational layers with residuals.

    Args:
        edge_types: the (src label, relation, dst label) triples of the message graph.
        init: (n_entities, k) vectors to start from (projected to ``dim``); None = random embeddings.
    """

    def __init__(self, num_nodes: int, node_types: list[str], edge_types: list[tuple[str, str, str]], dim: int, num_layers: int = 2, dropout: float = 0.1, init: torch.Tensor | None = None):
        super().__init__()
        if init is not None:
            self.input = nn.Sequential(nn.Embedding.from_pretrained(init, freeze=False), nn.Linear(init.shape[1], dim))
        else:
            self.input = nn.Embedding(num_nodes, dim)
            nn.init.xavier_uniform_(self.input.weight)
        self.layers = nn.ModuleList(RelationalLayer(node_types, edge_types, dim) for _ in range(num_layers))
        self.dropout = dropout

    def forward(self, global_ids: dict[str, torch.Tensor], plan: dict, num_nodes: int) -> torch.Tensor:
        x = {label: self.input(ids) for label, ids in global_ids.items()}
        for layer in self.layers:
            h = layer(x, plan)
            x = {label: v + nn.functional.dropout(torch.relu(h[label]), self.dropout, self.training) for label, v in x.items()}
        first = next(iter(x.values()))
        z = torch.zeros(num_nodes, first.shape[1], device=first.device)
        for label, ids in global_ids.items():
            z = z.index_copy(0, ids, x[label])
        return z


@dataclass
class GNNResult:
    entity_vectors: np.ndarray
    entities: list[str]
    relation_vector: np.ndarray
    metrics: dict
    config: dict
    seconds: float
    losses: list[float]

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"entity": torch.as_tensor(self.entity_vectors).contiguous(), "target_relation": torch.as_tensor(self.relation_vector).contiguous()}, str(folder / "vectors.safetensors"))
        (folder / "index.json").write_text(json.dumps({"entities": self.entities}))
        (folder / "metrics.json").write_text(json.dumps({"metrics": self.metrics, "config": self.config, "seconds": self.seconds, "losses": self.losses}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> GNNResult:
        folder = Path(folder)
        t = load_file(str(folder / "vectors.safetensors"))
        meta = json.loads((folder / "metrics.json").read_text())
        ents = json.loads((folder / "index.json").read_text())["entities"]
        return cls(t["entity"].numpy(), ents, t["target_relation"].numpy(), meta["metrics"], meta["config"], meta["seconds"], meta["losses"])


def _message_graph(export: GraphExport) -> tuple[dict, dict]:
    """Global ids per label and edge indices per edge type (with ``rev_<rel>`` inverses)."""
    data = export.hetero_data()
    global_ids = {label: data[label].global_id for label in data.node_types}
    edges = {}
    for (src, rel, dst) in data.edge_types:
        ei = data[src, rel, dst].edge_index
        edges[(src, rel, dst)] = ei
        edges[(dst, f"rev_{rel}", src)] = ei.flip(0)
    return global_ids, edges


def _drop_edges(edges: dict, edge_type: tuple[str, str, str], drop: torch.Tensor) -> dict:
    """A copy of ``edges`` without the columns ``drop`` (bool mask) of ``edge_type`` and of its inverse."""
    src, rel, dst = edge_type
    keep = ~drop
    out = dict(edges)
    out[edge_type] = edges[edge_type][:, keep]
    out[(dst, f"rev_{rel}", src)] = edges[(dst, f"rev_{rel}", src)][:, keep]
    return out


def train_gnn(
    export: GraphExport,
    dim: int = 64,
    epochs: int = 100,
    lr: float = 0.01,
    num_layers: int = 2,
    num_negs: int = 4,
    init_vectors: np.ndarray | None = None,
    seed: int = 42,
    progress: bool = True,
    evaluate: bool = True,
    supervision_ratio: float = 0.3,
    degree_prior: bool = False,
    weight_decay: float = 0.0,
    eval_every: int = 5,
    patience: int = 4,
    device: str = "auto",
) -> GNNResult:
    """Train the R-GCN on the export's training triples; rank the held-out indications.

    Each epoch, a random ``supervision_ratio`` of the training target edges is the supervision set and is
    removed from that epoch's message graph (PyG's ``RandomLinkSplit(disjoint_train_ratio=...)`` idea): the
    model cannot score an edge by reading it back through message passing, which is what held-out edges look
    like at test time. At evaluation all training edges pass messages. ``degree_prior`` adds
    ``w_head * log(1 + deg_head(h)) + w_tail * log(1 + deg_tail(t))`` to the DistMult score (deg: the node's
    number of target edges among the message edges; w learned), so the decoder starts from the popularity
    ranking and the message passing has to add to it.

    Every ``eval_every`` epochs the validation indications are ranked (never the test ones); the weights
    with the best validation MRR are kept, and training stops after ``patience`` checks without a better
    one (0: no early stopping).

    Args:
        init_vectors: (n_entities, k) vectors (e.g. the KGE ones) to initialise node inputs; None = random.
        device: ``auto`` (a GPU where PyTorch sees one), ``cpu`` or ``cuda[:N]``; recorded in ``config.device``.
    """
    from kgrec.embed.device import device_info, resolve_device

    dev = resolve_device(device)
    if not 0.0 <= supervision_ratio < 1.0:
        raise ValueError(f"supervision_ratio must be in [0, 1), got {supervision_ratio}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(export.entities)
    global_ids, edges = _message_graph(export)
    global_ids = {k: v.to(dev) for k, v in global_ids.items()}
    edges = {k: v.to(dev) for k, v in edges.items()}
    init = torch.as_tensor(init_vectors, dtype=torch.float) if init_vectors is not None else None
    enc = RGCNEncoder(n, sorted(global_ids), list(edges), dim, num_layers, init=init).to(dev)
    full_plan = message_plan(edges)
    rel_vec = nn.Parameter(torch.ones(dim, device=dev))
    deg_w = nn.Parameter(torch.ones(2, device=dev)) if degree_prior else None
    params = list(enc.parameters()) + [rel_vec] + ([deg_w] if deg_w is not None else [])
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    rel_id = export.target_relation
    pos_all = torch.as_tensor(export.train[export.train[:, 1] == rel_id][:, [0, 2]], dtype=torch.long, device=dev)
    head_label = export.labels[int(pos_all[0, 0])]
    tail_label = export.labels[int(pos_all[0, 1])]
    heads_pool = export.label_ids(head_label)
    tails_pool = export.label_ids(tail_label)
    target_type = next(et for et in edges if et[1] == export.relations[rel_id] and et[0] == head_label and et[2] == tail_label)
    # column j of edges[target_type] is training target edge j (same order as the export's train rows)
    n_sup = max(1, int(round(len(pos_all) * supervision_ratio))) if supervision_ratio > 0 else len(pos_all)

    def log_degrees(pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.log1p(torch.bincount(pairs[:, 0], minlength=n).float()), torch.log1p(torch.bincount(pairs[:, 1], minlength=n).float())

    full_deg = log_degrees(pos_all)

    def score_pairs(z: torch.Tensor, pairs: torch.Tensor, deg: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        s = (z[pairs[:, 0]] * rel_vec * z[pairs[:, 1]]).sum(-1)
        return s + deg_w[0] * deg[0][pairs[:, 0]] + deg_w[1] * deg[1][pairs[:, 1]] if deg_w is not None else s

    def embed() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        enc.eval()
        with torch.no_grad():
            return enc(global_ids, full_plan, n), rel_vec.detach().clone(), (deg_w.detach().clone() if deg_w is not None else torch.zeros(2, device=dev))

    def scorer(z: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
        def score(anchors: torch.Tensor, rel: int, side: str) -> torch.Tensor:
            prior = b[1] * full_deg[1] if side == "tail" else b[0] * full_deg[0]
            return ((z[anchors.to(dev)] * w) @ z.T + prior[None, :]).cpu()

        return score

    check = eval_every > 0 and len(export.valid) > 0
    best: tuple = (-1.0, 0, None, None, None)
    bad = 0
    history: list[dict] = []
    losses: list[float] = []
    t0 = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("R-GCN epochs", total=epochs)
        for epoch in range(epochs):
            enc.train()
            opt.zero_grad()
            if supervision_ratio > 0:
                drop = torch.zeros(len(pos_all), dtype=torch.bool, device=dev)
                drop[torch.as_tensor(rng.choice(len(pos_all), n_sup, replace=False), device=dev)] = True
                msg, pos, deg = _drop_edges(edges, target_type, drop), pos_all[drop], log_degrees(pos_all[~drop])
            else:
                msg, pos, deg = edges, pos_all, full_deg
            z = enc(global_ids, message_plan(msg) if msg is not edges else full_plan, n)
            k = len(pos) * num_negs
            neg_t = torch.as_tensor(rng.choice(tails_pool, k), device=dev)
            neg_h = torch.as_tensor(rng.choice(heads_pool, k), device=dev)
            rep = pos.repeat(num_negs, 1)
            half = k // 2
            neg = torch.cat([torch.stack([rep[:half, 0], neg_t[:half]], 1), torch.stack([neg_h[half:], rep[half:, 1]], 1)])
            s_pos, s_neg = score_pairs(z, pos, deg), score_pairs(z, neg, deg)
            loss = nn.functional.binary_cross_entropy_with_logits(torch.cat([s_pos, s_neg]), torch.cat([torch.ones_like(s_pos), torch.zeros_like(s_neg)]))
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            bar.advance(task)
            if check and (epoch + 1) % eval_every == 0:
                z, w, b = embed()
                mrr = rank_evaluate(scorer(z, w, b), export, "valid", seed=seed)["mrr"]
                history.append({"epoch": epoch + 1, "valid_mrr": round(mrr, 5)})
                if mrr > best[0]:
                    best = (mrr, epoch + 1, copy.deepcopy(enc.state_dict()), rel_vec.detach().clone(), deg_w.detach().clone() if deg_w is not None else None)
                    bad = 0
                else:
                    bad += 1
                    if patience and bad >= patience:
                        break
    seconds = time.perf_counter() - t0
    if best[2] is not None:
        enc.load_state_dict(best[2])
        with torch.no_grad():
            rel_vec.copy_(best[3])
            if deg_w is not None:
                deg_w.copy_(best[4])
    z, w, b = embed()
    metrics = rank_evaluate(scorer(z, w, b), export, "test", seed=seed) if evaluate else {}
    if history:
        metrics = {**metrics, "best_epoch": best[1], "valid_mrr": best[0] if best[2] is not None else None}
    config = {"dim": dim, "epochs": epochs, "lr": lr, "num_layers": num_layers, "num_negs": num_negs, "layer": "R-GCN (per-relation W_r, mean aggregation, per-type self term, residual)", "init": "kge" if init is not None else "random", "supervision_ratio": supervision_ratio, "degree_prior": degree_prior, "weight_decay": weight_decay, "eval_every": eval_every, "patience": patience, "seed": seed, "validation": history, **device_info(dev)}
    return GNNResult(z.cpu().numpy().astype(np.float32), export.entities, w.cpu().numpy(), metrics, config, round(seconds, 2), losses)
