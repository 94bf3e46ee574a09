"""Knowledge-graph embeddings with PyKEEN (RotatE by default; any PyKEEN model by name).

Complex-valued embeddings (RotatE, ComplEx) become real vectors by concatenating the real parts and
then the imaginary parts: ``[Re(e_1..e_d), Im(e_1..e_d)]``, so a dimension-d complex model gives 2d
reals and inner products of the real vectors equal the real part of the Hermitian product.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from kgrec.embed.export import GraphExport
from kgrec.metrics.ranking import rank_evaluate


def to_real(x: torch.Tensor) -> torch.Tensor:
    """The documented complex -> real rule: ``[real parts, imaginary parts]``; real tensors pass through."""
    if torch.is_complex(x):
        return torch.cat([x.real, x.imag], dim=-1)
    return x.reshape(x.shape[0], -1)


@dataclass
class KGEResult:
    """Entity (and relation) vectors over the export's index, with held-out metrics."""

    entity_vectors: np.ndarray
    relation_vectors: np.ndarray
    entities: list[str]
    relations: list[str]
    metrics: dict
    config: dict
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {"entity": torch.as_tensor(self.entity_vectors).contiguous(), "relation": torch.as_tensor(self.relation_vectors).contiguous()},
            str(folder / "vectors.safetensors"),
        )
        (folder / "index.json").write_text(json.dumps({"entities": self.entities, "relations": self.relations}))
        (folder / "metrics.json").write_text(json.dumps({"metrics": self.metrics, "config": self.config, "seconds": self.seconds, "losses": self.losses}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> KGEResult:
        folder = Path(folder)
        t = load_file(str(folder / "vectors.safetensors"))
        idx = json.loads((folder / "index.json").read_text())
        meta = json.loads((folder / "metrics.json").read_text())
        return cls(t["entity"].numpy(), t["relation"].numpy(), idx["entities"], idx["relations"], meta["metrics"], meta["config"], meta.get("seconds", 0.0), meta.get("losses", []))


def _epoch_report(total: int):
    """A PyKEEN training callback that reports ``kge: epoch i/N`` (:mod:`kgrec.progress`)."""
    from pykeen.training.callbacks import TrainingCallback

    from kgrec.progress import report

    class EpochReport(TrainingCallback):
        def post_epoch(self, epoch: int, epoch_loss: float, **kwargs) -> None:
            report(f"kge: epoch {epoch}/{total}, loss {epoch_loss:.4f}")

    return EpochReport()


BATCH = 8192  # triples per batch, at least
STEPS_PER_EPOCH = 32  # at most, with the automatic batch size (the open graph alone needs 29 at 8192)


def auto_batch_size(n_triples: int) -> int:
    """The default batch: 8192 triples, or more so that an epoch takes at most 32 optimiser steps.

    Each Adam step reads and writes the whole entity table (PyKEEN's embeddings have dense gradients),
    so with a fixed batch an epoch costs (triples / batch) × entities, and both grow with a cohort's
    visits: the KGE stage grew as visits^1.2 from 10k to 30k synthetic visits (1.8 for its visit-dependent
    part; docs/reports/scale.md). Holding the steps per epoch makes that cost linear in the entities. The open
    graph with a demo cohort stays at 8192 (about 240k triples), so its vectors are unchanged.
    """
    return max(BATCH, -(-int(n_triples) // STEPS_PER_EPOCH))


def train_kge(
    export: GraphExport,
    model: str = "RotatE",
    dim: int = 32,
    epochs: int = 30,
    batch_size: int | None = None,
    lr: float = 0.01,
    num_negs: int = 4,
    seed: int = 42,
    progress: bool = True,
    evaluate: bool = True,
    device: str = "auto",
) -> KGEResult:
    """Train a PyKEEN model on the export's training triples and rank the held-out indications.

    Args:
        model: any PyKEEN model name (``RotatE``, ``TransE``, ``ComplEx``, ``DistMult``, ...).
        dim: embedding dimension (complex models: complex dimension, vectors are 2·dim reals).
        epochs, batch_size, lr, num_negs: sLCWA training settings (Adam, ``num_negs`` negatives per positive);
            ``batch_size=None``: :func:`auto_batch_size` (recorded in ``config``, with ``batch_size_rule``).
            The defaults (complex dim 32, 4 negatives, batches of 8192) keep an epoch of the ~235k-triple
            open graph near 6 s on 2 cores; dim 64 with 16 negatives and batches of 2048 took ~6x longer
            per epoch (measured with scripts/bench_embed.py).
        evaluate: rank the held-out indications (off for timing runs on scaled graphs).
        device: ``auto`` (a GPU where PyTorch sees one), ``cpu`` or ``cuda[:N]``
            (:func:`kgrec.embed.device.resolve_device`); recorded in ``config.device``.
    """
    from pykeen.losses import loss_resolver
    from pykeen.models import model_resolver
    from pykeen.training import SLCWATrainingLoop
    from pykeen.utils import set_random_seed

    from kgrec.embed.device import device_info, large_blocks_from_heap, resolve_device

    dev = resolve_device(device)
    t0 = time.perf_counter()
    # PyKEEN's model, sLCWA training loop and negative sampler, as its ``pipeline`` builds them, without the
    # pipeline's own evaluation (every test triple against all ~104k entities, unrestricted: 22 s of the
    # stage on 2 cores); the held-out indications are ranked once, type-restricted, below
    set_random_seed(seed)
    training = export.triples_factory("train")
    rule = f"auto: max({BATCH}, triples / {STEPS_PER_EPOCH})" if batch_size is None else "given"
    batch_size = auto_batch_size(training.num_triples) if batch_size is None else int(batch_size)
    m = model_resolver.make(model, triples_factory=training, embedding_dim=dim, random_seed=seed, loss=loss_resolver.make(None)).to(dev)
    loop = SLCWATrainingLoop(model=m, triples_factory=training, optimizer="Adam", optimizer_kwargs={"lr": lr},
                             negative_sampler="basic", negative_sampler_kwargs={"num_negs_per_pos": num_negs})
    # an explicit batch size: PyKEEN's automatic search starts at 32 on CPU and probes memory (~1 min here)
    with large_blocks_from_heap(dev) as heap:  # the batch's tensors outgrow glibc's mmap threshold on large graphs
        losses = loop.train(triples_factory=training, num_epochs=epochs, batch_size=batch_size, use_tqdm=progress, use_tqdm_batch=False,
                            callbacks=[_epoch_report(epochs)])
    seconds = time.perf_counter() - t0
    m = m.eval()
    # type-restricted scoring: rank_evaluate ranks a held-out pair among the entities of its label only, so
    # only those are scored (RotatE's norm over every entity was most of the evaluation's time)
    labels = np.asarray(export.labels)
    rel_triples = export.train[export.train[:, 1] == export.target_relation]
    cand = {"tail": torch.as_tensor(np.flatnonzero(labels == labels[int(rel_triples[0, 2])])),
            "head": torch.as_tensor(np.flatnonzero(labels == labels[int(rel_triples[0, 0])]))} if len(rel_triples) else None

    def score(anchors: torch.Tensor, rel: int, side: str) -> torch.Tensor:
        anchors = anchors.to(dev)
        r = torch.full_like(anchors, rel)
        if cand is None or rel != export.target_relation:
            return (m.score_t(torch.stack([anchors, r], 1)) if side == "tail" else m.score_h(torch.stack([r, anchors], 1))).cpu()
        c = cand[side]
        out = torch.full((len(anchors), len(labels)), float("nan"))
        if side == "tail":
            out[:, c] = m.score_t(torch.stack([anchors, r], 1), tails=c.to(dev)).cpu()
        else:
            out[:, c] = m.score_h(torch.stack([r, anchors], 1), heads=c.to(dev)).cpu()
        return out

    metrics = rank_evaluate(score, export, "test", batch_size=16, seed=seed) if evaluate else {}
    with torch.no_grad():
        ent = to_real(m.entity_representations[0](indices=None)).cpu().numpy().astype(np.float32)
        rel = to_real(m.relation_representations[0](indices=None)).cpu().numpy().astype(np.float32)
    config = {"model": model, "dim": dim, "epochs": epochs, "batch_size": batch_size, "batch_size_rule": rule, "lr": lr,
              "large_blocks_from_heap": heap, "num_negs": num_negs, "seed": seed, "complex_to_real": "concat(real, imag)", **device_info(dev)}
    return KGEResult(ent, rel, export.entities, export.relations, metrics, config, round(seconds, 2), [float(x) for x in losses])


# PyKEEN model name -> (interaction class name in pykeen.nn.modules, complex-valued?, interaction kwargs from the config)
_INTERACTIONS = {
    "RotatE": ("RotatEInteraction", True, lambda cfg: {}),
    "ComplEx": ("ComplExInteraction", True, lambda cfg: {}),
    "DistMult": ("DistMultInteraction", False, lambda cfg: {}),
    "TransE": ("TransEInteraction", False, lambda cfg: {"p": int(cfg.get("scoring_fct_norm", 1)), "power_norm": bool(cfg.get("power_norm", False))}),
}


class KGEScore:
    """The saved KGE's own score for one relation, recomputed from its vectors with PyKEEN's interaction module.

    ``pairs(h, t)`` scores (h, r, t) for aligned head/tail ids; ``block(anchors, side, candidates)`` scores
    every candidate for each anchor (``side`` "tail": (anchor, r, ?); "head": (?, r, anchor)). For a RotatE
    KGE these are PyKEEN's ``-||h ∘ r - t||`` with the trained (unit-modulus) relation, so the ranking equals
    the one :func:`train_kge` reported (checked in ``tests/test_gnn_residual.py``).

    Raises:
        ValueError: a model whose interaction cannot be rebuilt from the saved vectors (supported:
            RotatE, ComplEx, DistMult, TransE).
    """

    def __init__(self, kge: KGEResult, relation: int, device: str = "cpu"):
        import pykeen.nn.modules as modules

        model = kge.config.get("model")
        if model not in _INTERACTIONS:
            raise ValueError(f"KGE model {model!r} (config.model of the saved KGE): its score cannot be rebuilt from the saved vectors; supported: {sorted(_INTERACTIONS)}")
        name, is_complex, kwargs = _INTERACTIONS[model]
        self.model = model
        self.interaction = getattr(modules, name)(**kwargs(kge.config))
        ent = torch.tensor(np.asarray(kge.entity_vectors), dtype=torch.float32, device=device)  # copies
        rel = torch.tensor(np.asarray(kge.relation_vectors[relation]), dtype=torch.float32, device=device)
        if is_complex:  # undo to_real: [real parts, imaginary parts]
            d = ent.shape[1] // 2
            ent, rel = torch.complex(ent[:, :d], ent[:, d:]), torch.complex(rel[:d], rel[d:])
        self.entity, self.relation = ent, rel

    def pairs(self, heads: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        return self.interaction(self.entity[heads], self.relation[None], self.entity[tails])

    def block(self, anchors: torch.Tensor, side: str, candidates: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        cand, r, out = self.entity[candidates][None], self.relation[None, None], []
        for i in range(0, len(anchors), chunk):
            a = self.entity[anchors[i:i + chunk]][:, None]
            out.append(self.interaction(a, r, cand) if side == "tail" else self.interaction(cand, r, a))
        return torch.cat(out) if out else torch.zeros(0, len(candidates), device=self.entity.device)
