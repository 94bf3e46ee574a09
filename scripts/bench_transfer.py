"""Cross-site benchmark: graph coverage of each cohort, then `kgrec transfer` for each source -> target pair.

    KGREC_DATA=../shared/data python scripts/bench_transfer.py \
        --ws mimic3=WS_M3 --ws eicu=WS_EICU --ws synthea=WS_SYN \
        --pair eicu:mimic3 --pair mimic3:eicu --pair synthea:mimic3 \
        --modes zero-shot,few-shot,pooled --models frequency,logreg,logreg-graph,site-ensemble,site-ensemble-names -o transfer-bench.md

Each workspace is one made by `kgrec prepare` + `kgrec load-graph`. For each pair the script runs the whole
protocol (in-domain, then the modes) and records wall and CPU seconds and the process's peak memory; the
full reports land in each target's `reports/transfer/`. The summary (Markdown, and JSON beside it) gives
per pair and mode the PRAUC mean ± std over the target's folds and the paired difference against in-domain
logistic regression.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def coverage(ws: Path) -> dict:
    from kgrec.cohort.base import Cohort
    from kgrec.graph.expand import CodeExpander
    from kgrec.graph.tables import GraphTables

    cohort = Cohort.load(ws / "cohort")
    ex = CodeExpander.from_tables(GraphTables.load(ws / "graph" / "tables"), names=cohort.names())
    return ex.coverage([list(d) for d in cohort.visits["diagnoses"]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ws", action="append", required=True, help="NAME=WORKSPACE (repeat)")
    ap.add_argument("--pair", action="append", default=[], help="SOURCE[+SOURCE...]:TARGET by workspace names (repeat)")
    ap.add_argument("--modes", default="zero-shot,few-shot,pooled")
    ap.add_argument("--models", default="frequency,logreg,logreg-graph,site-ensemble-names", help="kgrec models and PyHealth's (GAMENet, SafeDrug, RETAIN, MoleRec; their venv: kgrec benchmark --setup-pyhealth), comma-separated")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--zero-shot-vocab", default="shared", choices=("shared", "target"), help="zero-shot output space (see docs/protocol.md)")
    ap.add_argument("-o", "--out", type=Path, default=Path("transfer-bench.md"))
    args = ap.parse_args(argv)
    from kgrec.transfer import transfer

    ws = dict(x.split("=", 1) for x in args.ws)
    ws = {k: Path(v) for k, v in ws.items()}
    out: dict = {"coverage": {}, "pairs": {}}
    lines = ["# Cross-site transfer", "", "## Diagnosis codes reaching a Disease node (graph-grounded expansion, 3 hops)", "",
             "| cohort | distinct codes | codes reaching a disease | code occurrences | visits with ≥1 such code | by system |", "|---|---|---|---|---|---|"]
    for name, path in ws.items():
        c = out["coverage"][name] = coverage(path)
        systems = ", ".join(f"{s} {v['reaching_disease']:.0%} of {v['n_codes']}" for s, v in c["by_system"].items())
        lines.append(f"| {name} | {c['n_codes']} | {c['codes_reaching_disease']:.1%} | {c['code_occurrences_reaching_disease']:.1%} | {c['visits_with_a_code_reaching_disease']:.1%} | {systems} |")
    for pair in args.pair:
        srcs, _, tgt = pair.partition(":")
        t0, c0 = time.perf_counter(), time.process_time()
        res = transfer(ws[tgt], [ws[s] for s in srcs.split("+")], modes=tuple(args.modes.split(",")), models=tuple(args.models.split(",")),
                       folds=args.folds, zero_shot_vocab=args.zero_shot_vocab, progress=lambda m: print(time.strftime("%X"), pair, m, file=sys.stderr, flush=True))
        j = res.to_json()
        j["bench"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        out["pairs"][pair] = j
        lines += ["", f"## {srcs} → {tgt}", "", f"{j['bench']['wall_s']} s wall, {j['bench']['cpu_s']} CPU s, peak RSS {j['bench']['peak_rss_mb']} MB "
                  f"(the process so far); seconds per mode: {j['seconds']}", "",
                  "| mode | model | PRAUC mean ± std | Δ vs in-domain logreg (folds better) | Δ vs same model in-domain |", "|---|---|---|---|---|"]
        for mode, r in j["modes"].items():
            for m, s in (r.get("in_domain_same_vocabulary") or {}).items():
                p = s["metrics"]["prauc"]
                lines.append(f"| in-domain, zero-shot's {r['vocabulary']['n_zero_shot_drugs']} classes | {m} | {p['mean']:.4f} ± {p['std']:.4f} | – | – |")
            for m, s in r["models"].items():
                p = s["metrics"]["prauc"]
                d = (r.get("paired_differences") or {}).get(m, {}).get("prauc")
                e = (r.get("paired_vs_in_domain_same_model") or {}).get(m, {}).get("prauc")
                fmt = lambda x: f"{x['mean']:+.4f} ± {x['std']:.4f} ({x['n_better']}/{len(x['folds'])})" if x else "–"  # noqa: E731
                lines.append(f"| {mode} | {m} | {p['mean']:.4f} ± {p['std']:.4f} | {fmt(d)} | {fmt(e)} |")
        args.out.write_text("\n".join(lines) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(out, indent=1, default=float))
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1, default=float))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
