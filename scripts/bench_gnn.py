#!/usr/bin/env python
"""Does the GNN stage add to the KGE it starts from? Held-out indication ranking, paired per edge.

Loads a graph export and a trained KGE (``<ws>/embed/export``, ``<ws>/embed/kge``: what `kgrec train --stage
kge` saved), trains the GNN with the given settings (residual decoder over the KGE by default; --plain for
the DistMult decoder of the earlier design), and prints validation/test MRR and Hits@10 of the KGE alone
and of the GNN, with the seconds. The comparison on the test indications is paired: per held-out edge,
the reciprocal rank (both sides averaged) of the GNN minus the KGE's, with a bootstrap 95% interval over
the edges, and how many edges got better/worse.

    python scripts/bench_gnn.py --export WS/embed/export --kge WS/embed/kge [--epochs 60]
        [--no-degree-prior] [--plain] [--seeds 42 43] [--save OUT] [--json]

Validation picks the checkpoint (epoch 0 = the KGE itself is one); test is ranked once at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def per_edge_rr(score_fn, export, which: str) -> np.ndarray:
    """(n_edges, 2) reciprocal realistic filtered ranks [tail side, head side], as ``rank_evaluate`` ranks."""
    import torch

    triples = np.array(getattr(export, which))  # a copy: the export's arrays are read-only
    rel = int(triples[0, 1])
    labels = np.asarray(export.labels)
    all_true = np.concatenate([export.train, export.valid, export.test])
    all_true = all_true[all_true[:, 1] == rel]
    known = {"tail": {}, "head": {}}
    for h, _, t in all_true:
        known["tail"].setdefault(int(h), set()).add(int(t))
        known["head"].setdefault(int(t), set()).add(int(h))
    out = np.zeros((len(triples), 2))
    for col, (side, anchor_col, true_col) in enumerate((("tail", 0, 2), ("head", 2, 0))):
        allowed = labels == labels[int(triples[0, true_col])]
        scores = score_fn(torch.as_tensor(triples[:, anchor_col]), rel, side).double().numpy()
        for i, (a, true) in enumerate(zip(triples[:, anchor_col], triples[:, true_col])):
            mask = allowed.copy()
            mask[[o for o in known[side].get(int(a), ()) if o != true]] = False
            s, st = scores[i][mask], scores[i, true]
            out[i, col] = 2.0 / (1 + (s > st).sum() + (s >= st).sum())
    return out


def paired(gnn: np.ndarray, kge: np.ndarray, n_boot: int = 10000, seed: int = 0) -> dict:
    d = gnn.mean(1) - kge.mean(1)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mrr_diff": float(d.mean()), "ci95": [float(lo), float(hi)], "better": int((d > 1e-12).sum()), "worse": int((d < -1e-12).sum()), "n": int(len(d))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export", type=Path, required=True)
    ap.add_argument("--kge", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--num-layers", type=int, default=2)
    ap.add_argument("--num-negs", type=int, default=4)
    ap.add_argument("--supervision-ratio", type=float, default=0.3)
    ap.add_argument("--eval-every", type=int, default=None, help="default: train_gnn's (1 with the KGE residual, 5 plain)")
    ap.add_argument("--patience", type=int, default=None, help="default: train_gnn's (5 with the KGE residual, 4 plain)")
    ap.add_argument("--no-degree-prior", action="store_true", help="default: on with the KGE residual, off --plain")
    ap.add_argument("--plain", action="store_true", help="the DistMult decoder from the KGE vectors (no residual)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--save", type=Path, help="save the (last seed's) GNNResult here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from kgrec.embed.export import GraphExport
    from kgrec.embed.gnn import GNNResult, train_gnn
    from kgrec.embed.kge import KGEResult
    from kgrec.metrics.ranking import rank_evaluate

    ex = GraphExport.load(args.export)
    kge = KGEResult.load(args.kge)
    runs = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        kw = dict(dim=args.dim, epochs=args.epochs, lr=args.lr, num_layers=args.num_layers, num_negs=args.num_negs, seed=seed, progress=False,
                  supervision_ratio=args.supervision_ratio, eval_every=args.eval_every, patience=args.patience,
                  degree_prior=False if args.no_degree_prior else None, device="cpu")
        res = train_gnn(ex, init_vectors=kge.entity_vectors, **kw) if args.plain else train_gnn(ex, kge=kge, **kw)
        wall = time.perf_counter() - t0
        # the KGE alone, through the residual decoder's untrained state (its scores, same ranking code)
        kge_only = GNNResult(res.entity_vectors, res.entities, res.relation_vector, {}, {"decoder": "kge_residual"}, 0, [], {"gate": np.zeros(1, np.float32)})
        kge_fn = kge_only.scorer(ex, kge=kge)
        gnn_fn = res.scorer(ex, kge=None if args.plain else kge)
        fns = {"kge": kge_fn, "gnn": gnn_fn}
        if "degree_weight" in res.decoder and not args.plain:  # ablation: the chosen model without its GNN term (gate 0)
            no_gnn = GNNResult(res.entity_vectors, res.entities, res.relation_vector, {}, {"decoder": "kge_residual"}, 0, [], {**res.decoder, "gate": np.zeros(1, np.float32)})
            fns["kge_prior"] = no_gnn.scorer(ex, kge=kge)
        out = {"seed": seed, "wall_s": round(wall, 1), "train_s": res.seconds, "best_epoch": res.metrics.get("best_epoch"), "checkpoint": res.metrics.get("checkpoint"),
               "decoder_weights": res.config.get("decoder_weights"), "validation": res.config["validation"]}
        for which in ("valid", "test"):
            out[which] = {}
            rr = {}
            for name, fn in fns.items():
                rr[name], m = per_edge_rr(fn, ex, which), rank_evaluate(fn, ex, which, seed=seed)
                assert abs(rr[name].mean() - m["mrr"]) < 1e-5, (name, rr[name].mean(), m["mrr"])
                out[which].update({f"{name}_mrr": round(m["mrr"], 4), f"{name}_hits_at_10": round(m["hits_at_10"], 4), f"{name}_tail_head_mrr": [round(m["tail_mrr"], 4), round(m["head_mrr"], 4)]})
            out[which]["paired"] = paired(rr["gnn"], rr["kge"])
            if "kge_prior" in rr:
                out[which]["paired_gnn_term"] = paired(rr["gnn"], rr["kge_prior"])
        if "kge_mrr_test" in res.metrics:
            assert abs(res.metrics["kge_mrr_test"] - out["test"]["kge_mrr"]) < 1e-4
        assert abs(res.metrics["mrr"] - out["test"]["gnn_mrr"]) < 1e-4, (res.metrics["mrr"], out["test"]["gnn_mrr"])
        out["recorded_kge_mrr_test"] = kge.metrics.get("mrr")
        out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        runs.append(out)
        if args.json:
            print(json.dumps(out), flush=True)
        else:
            v, t, p = out["valid"], out["test"], out["test"]["paired"]
            print(f"seed {seed}: {out['wall_s']} s (train {out['train_s']} s), checkpoint {out['checkpoint']} at epoch {out['best_epoch']}, weights {out['decoder_weights']}")
            print(f"  valid MRR  KGE {v['kge_mrr']:.4f}  GNN {v['gnn_mrr']:.4f}   Hits@10 KGE {v['kge_hits_at_10']:.4f}  GNN {v['gnn_hits_at_10']:.4f}")
            print(f"  test  MRR  KGE {t['kge_mrr']:.4f}  GNN {t['gnn_mrr']:.4f}   Hits@10 KGE {t['kge_hits_at_10']:.4f}  GNN {t['gnn_hits_at_10']:.4f}")
            print(f"  test paired GNN-KGE per edge: {p['mrr_diff']:+.4f} (95% bootstrap {p['ci95'][0]:+.4f} .. {p['ci95'][1]:+.4f}), better {p['better']}, worse {p['worse']} of {p['n']}")
            if "paired_gnn_term" in t:
                q = t["paired_gnn_term"]
                print(f"  without the GNN term (KGE + learned degree prior): valid MRR {v['kge_prior_mrr']:.4f}, test MRR {t['kge_prior_mrr']:.4f}; "
                      f"test paired GNN term {q['mrr_diff']:+.4f} (95% {q['ci95'][0]:+.4f} .. {q['ci95'][1]:+.4f})")
            print(f"  validation history {out['validation']}", flush=True)
        if args.save:
            res.save(args.save)
    if len(runs) > 1:
        d = [r["test"]["gnn_mrr"] - r["test"]["kge_mrr"] for r in runs]
        print(f"test MRR GNN-KGE over {len(runs)} seeds: mean {np.mean(d):+.4f}, min {min(d):+.4f}, max {max(d):+.4f}", file=sys.stderr if args.json else sys.stdout)


if __name__ == "__main__":
    main()
