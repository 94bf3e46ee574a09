"""Faithfulness of the explanations and evidence coverage, on a workspace's saved split.

    python scripts/bench_faithfulness.py --workspace WS [--workspace WS2 ...] [--models student,teacher]
                                         [--k 3] [--n-random 3] [--max-visits N] [--json]

For every workspace and model: ``recommend`` (top 10 at the model's threshold, attributions, faithful
paths) on the saved split's test visits, then the deletion test of :mod:`kgrec.explain.faithfulness`
(the top-k attributed codes of each recommended drug against k random codes of the same visit; the
starting codes of the paths shown against as many random codes) with 95 % bootstrap intervals over
visits, and the evidence coverage (share of recommended drugs with a path, by kind; share whose top
attributed code starts a path). Writes ``WS/reports/explanations.json`` (one entry per model; the
benchmark report shows its coverage table) and prints markdown tables.

Single-threaded on a shared machine (``OMP_NUM_THREADS=1``); the teacher encodes one MiniLM prompt per
removal set, so ``--max-visits`` bounds its time on large test splits (the visits are then the first N).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(workspace: Path, models: list[str], k: int, n_random: int, max_visits: int | None, seed: int) -> dict:
    from kgrec.explain.faithfulness import evaluate_explanations, split_test_visits
    from kgrec.explain.recommend import RecommendService

    out: dict = {"workspace": str(workspace), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "models": {}}
    for m in models:
        with RecommendService(workspace, m, "embedded") as svc:
            visits = split_test_visits(svc.cohort)
            out["dataset"] = svc.cohort.source
            out["n_test_visits"] = len(visits)
            if max_visits:
                visits = visits[:max_visits]
            print(f"{workspace.name}: {m} on {len(visits)} test visits ...", file=sys.stderr, flush=True)
            t0, c0 = time.perf_counter(), time.process_time()
            res = evaluate_explanations(svc, visits, k=k, n_random=n_random, seed=seed)
            res["wall_s"], res["cpu_s"] = round(time.perf_counter() - t0, 1), round(time.process_time() - c0, 1)
            out["models"][m] = res
    rep = workspace / "reports"
    rep.mkdir(parents=True, exist_ok=True)
    path = rep / "explanations.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    merged = {**old, **out, "models": {**old.get("models", {}), **out["models"]}}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=1))
    tmp.replace(path)
    return merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", "-w", type=Path, action="append", required=True)
    ap.add_argument("--models", default="student,teacher")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--n-random", type=int, default=3)
    ap.add_argument("--max-visits", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from kgrec.benchmark.report import coverage_markdown, faithfulness_markdown

    results = [run(ws, [m.strip() for m in a.models.split(",") if m.strip()], a.k, a.n_random, a.max_visits, a.seed) for ws in a.workspace]
    if a.json:
        print(json.dumps(results, indent=1))
        return 0
    print(faithfulness_markdown(results))
    print()
    print(coverage_markdown(results))
    try:
        load = os.getloadavg()[0]
        print(f"\n(1-minute load average at the end: {load:.1f})")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
