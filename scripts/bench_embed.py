#!/usr/bin/env python
"""Benchmark the embedding stages: training time and peak memory on the open graph and on synthetic
graphs of 10x and 100x its edges (the PrimeKG-scale users reach).

Each measurement runs in a fresh subprocess so its peak RSS is its own. The full open graph is trained
with the CLI defaults' settings for the given epochs; the scaled graphs keep the open graph's relation
mix and degree profile (edges resampled with replacement, entities scaled by the same factor) and run
--scale-epochs epochs, reporting seconds per epoch.

    python scripts/bench_embed.py --workspace WS [--epochs-kge 30 --epochs-gnn 100] [--scales 10 100] [--json]

The open-graph GNN run starts from the workspace's KGE vectors when they exist (as `kgrec train --stage
gnn` does), so its MRR is the stage's. Each child runs under an address-space cap (--mem-gb, default 20)
and a wall-clock limit (--timeout); a run that exceeds either is reported with the reason, not dropped.

WS must hold a cohort and graph tables (`kgrec prepare`, `kgrec load-graph`).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _child(args: argparse.Namespace) -> None:
    """Runs inside the subprocess: one stage on one (possibly scaled) export; prints a JSON line."""
    import numpy as np

    from kgrec.embed.export import GraphExport
    from kgrec.embed.train import prepare_export

    ex = prepare_export(args.workspace, patients="train", seed=42)
    if args.scale > 1:
        rng = np.random.default_rng(0)
        n, k = len(ex.entities), args.scale
        tr = ex.train
        idx = rng.integers(0, len(tr), len(tr) * k)
        copy = rng.integers(0, k, len(idx))
        # entity e of copy c becomes e + c*n: same labels, same relation mix, k disjoint-ish copies
        # rewired by a 10% cross-copy shuffle of tails so the graph stays connected
        h = tr[idx, 0] + copy * n
        t_copy = np.where(rng.random(len(idx)) < 0.1, rng.integers(0, k, len(idx)), copy)
        t = tr[idx, 2] + t_copy * n
        big = np.column_stack([h, tr[idx, 1], t]).astype(np.int64)
        ex = GraphExport(
            [f"{e}#{c}" for c in range(k) for e in ex.entities], ex.labels * k, ex.relations,
            big, ex.valid, ex.test, {**ex.info, "scale": k},
        )
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = r0.ru_utime + r0.ru_stime
    t0 = time.perf_counter()
    if args.stage == "kge":
        from kgrec.embed.kge import train_kge

        res = train_kge(ex, epochs=args.epochs, progress=False, evaluate=args.scale == 1)
    else:
        from kgrec.embed.gnn import train_gnn

        init = None
        if args.scale == 1:
            from pathlib import Path as _P

            from kgrec.embed.kge import KGEResult

            kdir = _P(args.workspace) / "embed" / "kge"
            if (kdir / "vectors.safetensors").exists():
                k = KGEResult.load(kdir)
                init = k.entity_vectors if k.entities == ex.entities else None
        res = train_gnn(ex, epochs=args.epochs, progress=False, evaluate=args.scale == 1, init_vectors=init,
                        eval_every=5 if args.scale == 1 else 0)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = ru.ru_maxrss / 1024
    cpu_s = ru.ru_utime + ru.ru_stime - cpu0  # process CPU time of the training (+eval): comparable under load
    print(json.dumps({
        "best_epoch": res.metrics.get("best_epoch") if args.scale == 1 else None,
        "stage": args.stage, "scale": args.scale, "n_entities": len(ex.entities), "n_triples": int(len(ex.train)),
        "epochs": args.epochs, "train_seconds": res.seconds, "seconds_per_epoch": res.seconds / max(args.epochs, 1),
        "wall_seconds_incl_eval": round(wall, 2), "cpu_seconds_incl_eval": round(cpu_s, 1), "peak_rss_mb": round(peak_mb, 1),
        "mrr": res.metrics["mrr"] if args.scale == 1 else None, "hits_at_1": res.metrics["hits_at_1"] if args.scale == 1 else None, "hits_at_10": res.metrics["hits_at_10"] if args.scale == 1 else None,
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", "-w", required=True)
    p.add_argument("--epochs-kge", type=int, default=30)
    p.add_argument("--epochs-gnn", type=int, default=100)
    p.add_argument("--scales", type=int, nargs="*", default=[10, 100])
    p.add_argument("--scale-epochs", type=int, default=1)
    p.add_argument("--stages", nargs="+", choices=["kge", "gnn"], default=["kge", "gnn"], help="which stages to measure")
    p.add_argument("--json", action="store_true")
    p.add_argument("--mem-gb", type=float, default=20.0, help="address-space cap per run (GiB)")
    p.add_argument("--timeout", type=int, default=1200, help="wall-clock limit per run (s)")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stage", help=argparse.SUPPRESS)
    p.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        _child(args)
        return
    rows = []
    plan = [(st, 1, args.epochs_kge if st == "kge" else args.epochs_gnn) for st in ("kge", "gnn") if st in args.stages]
    plan += [(stage, s, args.scale_epochs) for s in args.scales for stage in ("kge", "gnn") if stage in args.stages]
    for stage, scale, epochs in plan:
        cmd = [sys.executable, __file__, "-w", args.workspace, "--_child", "--stage", stage, "--scale", str(scale), "--epochs", str(epochs)]
        print(f"running {stage} x{scale} ({epochs} epochs) ...", file=sys.stderr, flush=True)
        cap = int(args.mem_gb * 2**30)
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                 preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
        except subprocess.TimeoutExpired:
            rows.append({"stage": stage, "scale": scale, "error": f"did not finish within {args.timeout} s"})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            continue
        if out.returncode != 0:
            last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
            why = f"killed by signal {-out.returncode}" if out.returncode < 0 else f"exit {out.returncode}"
            rows.append({"stage": stage, "scale": scale, "error": f"{why}: {last}" if last else why})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| stage | scale | entities | triples | epochs | s/epoch | train s | CPU s | peak RSS MB | MRR | Hits@10 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['stage']} | x{r['scale']} | error: {r['error']} |")
            continue
        mrr = f"{r['mrr']:.4f}" if r["mrr"] is not None else "–"
        h10 = f"{r['hits_at_10']:.4f}" if r["hits_at_10"] is not None else "–"
        print(f"| {r['stage']} | x{r['scale']} | {r['n_entities']} | {r['n_triples']} | {r['epochs']} | {r['seconds_per_epoch']:.2f} | {r['train_seconds']:.1f} | {r.get('cpu_seconds_incl_eval', float('nan')):.0f} | {r['peak_rss_mb']:.0f} | {mrr} | {h10} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
