"""Plausibility report: what kgrec's rationale sentences rest on, per evidence class.

    python scripts/bench_evidence.py -w WS [-w WS2 ...] [--top-k 10] [--visits N] [--json]

For every test visit of each workspace (after ``kgrec run``: a cohort, a graph, a deployed student),
``recommend`` with explanations; every path sentence of every rationale is counted by the evidence
class of its path (curated indication, mined association, co-prescription, clinical trial, literature
caution). Checked, and a non-zero exit when violated: no sentence states a mined (low-precision) link
as an indication ("is an indication of", "is indicated for", "treats", "relieves"), and every mined
sentence is marked "Weak evidence". Also counted: drugs whose score comes mostly from the graph prior
(said so in the text) and paths left uncited because their code lowered the score.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

INDICATION_WORDS = ("is an indication of", "is indicated for", " treats ", "relieves the symptoms")


def audit(ws: Path, top_k: int, limit: int | None) -> dict:
    import pandas as pd

    from kgrec.explain.realise import realise_path
    from kgrec.explain.recommend import RecommendService

    visits = pd.read_parquet(ws / "cohort" / "visits.parquet")
    test_patients = set(map(str, json.loads((ws / "cohort" / "split.json").read_text())["test"]))
    test = visits[visits["patient_id"].astype(str).isin(test_patients)]["visit_id"].astype(str).tolist()[:limit]
    by_class: Counter = Counter()
    violations, unmarked, prior_led, uncited, drugs = [], 0, 0, 0, 0
    with RecommendService(ws) as svc:
        for vid in test:
            res = svc.recommend(visit_id=vid, top_k=top_k)
            for d in res.drugs:
                drugs += 1
                prior_led += "comes mostly from the graph prior" in d.rationale
                uncited += sum(1 for p in d.paths if p.extra.get("attribution", 0.0) < 0)
                for p in d.paths + d.cautions:
                    if p.extra.get("attribution", 0.0) < 0:
                        continue  # not in the text
                    text = realise_path(p).text
                    by_class[p.evidence_class] += 1
                    if p.evidence_class == "mined association":
                        if any(w in text for w in INDICATION_WORDS):
                            violations.append({"visit": vid, "drug": d.drug, "text": text})
                        unmarked += not text.startswith("Weak evidence")
    total = sum(by_class.values())
    return {
        "workspace": str(ws), "visits": len(test), "drugs": drugs, "sentences": total,
        "by_class": {k: {"n": n, "share": round(n / total, 4) if total else 0.0} for k, n in by_class.most_common()},
        "mined_stated_as_indication": len(violations), "mined_not_marked": unmarked,
        "drugs_led_by_graph_prior": prior_led, "paths_uncited_negative_code": uncited, "examples": violations[:3],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-w", "--workspace", type=Path, action="append", required=True)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--visits", type=int, default=None, help="at most this many test visits per workspace")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = [audit(ws, args.top_k, args.visits) for ws in args.workspace]
    bad = sum(r["mined_stated_as_indication"] + r["mined_not_marked"] for r in out)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="rationale sentences by evidence class")
        for c in ("workspace", "visits", "drugs", "sentences", "curated", "co-prescription", "trial", "mined", "literature",
                  "mined as indication", "graph-prior led"):
            t.add_column(c, justify="left" if c == "workspace" else "right")
        for r in out:
            share = lambda k: f"{r['by_class'].get(k, {}).get('share', 0):.1%}"  # noqa: E731
            t.add_row(Path(r["workspace"]).name, str(r["visits"]), str(r["drugs"]), str(r["sentences"]), share("curated indication"),
                      share("co-prescription"), share("clinical trial"), share("mined association"), share("literature (caution)"),
                      str(r["mined_stated_as_indication"]), str(r["drugs_led_by_graph_prior"]))
        Console().print(t)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
