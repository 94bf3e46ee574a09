#!/usr/bin/env python
"""One table from two `kgrec run` workspaces (e.g. `--recipe kgrec` and `--recipe leader`): each model's
K-fold CV metrics (mean ± std), single- and multi-visit PRAUC, and each run's stage times.

    python scripts/compare_recipes.py kgrec=WS1 leader=WS2 [--out table.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cell(v) -> str:
    if isinstance(v, dict):
        return f"{v['mean']:.4f} ± {v['std']:.4f}" if v.get("mean") is not None else "–"
    return "–" if v is None else f"{v:.4f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="NAME=WORKSPACE (its reports/run.json is read)")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    lines = ["| recipe | model | Jaccard | F1 | PRAUC | single-visit PRAUC | multi-visit PRAUC |", "|---|---|---|---|---|---|---|"]
    times = ["| recipe | " + " | ".join(("prepare", "load_graph", "train", "evaluate", "total")) + " |", "|---|---|---|---|---|---|"]
    for spec in a.runs:
        name, ws = spec.split("=", 1)
        run = json.loads((Path(ws) / "reports" / "run.json").read_text())
        for model, s in run["evaluation"]["models"].items():
            m, g = s.get("metrics", {}), s.get("groups", {})
            sv = g.get("single_visit", {}).get("metrics", {}).get("prauc")
            mv = g.get("multi_visit", {}).get("metrics", {}).get("prauc")
            lines.append(f"| {name} | {model} | {cell(m.get('jaccard'))} | {cell(m.get('f1'))} | {cell(m.get('prauc'))} | {cell(sv)} | {cell(mv)} |")
        sec = run["seconds"]
        times.append(f"| {name} | " + " | ".join(f"{sec.get(k, 0):.0f} s" for k in ("prepare", "load_graph", "train", "evaluate", "total")) + " |")
    md = "\n".join(lines) + "\n\n" + "\n".join(times) + "\n"
    print(md)
    if a.out:
        a.out.write_text(md)


if __name__ == "__main__":
    main()
