"""Scale run: every stage of kgrec's chain, each as its own process, at several cohort sizes.

For each N in --visits: `kgrec synth --visits N` (a synthetic MIMIC-III-format cohort drawn from the open
graph), then the main job's stages on the saved split, one process each: `prepare`, `load-graph`, `train
--stage kge`, `train --stage gnn`, `train --stage teacher` (kgrec run's CPU teacher: frozen backbone, code
fusion, no graph prompt), `train --stage distill`, `evaluate --folds 5` of the baselines (frequency,
logistic regression) and one `recommend --visit` of a test visit. Each step's wall clock, CPU seconds (user
+ system, children included) and peak resident memory come from wait4(). The report gives, per stage, the
growth exponent between consecutive sizes (b in cost ∝ visits^b: 1 is linear) and flags any stage above
the bounds of a 2-core machine (8 GiB peak; the whole chain within 2 hours).

    KGREC_DATA=../shared/data python scripts/bench_scale.py --visits 10000 30000 100000 -o /tmp/scale --resume

--stages picks a subset (e.g. ``--stages prepare,load-graph,kge,gnn,evaluate``), --stages-at another one at one
size; --benchmark-models adds the `kgrec benchmark` step (kgrec's and PyHealth's models on the saved split; the
run in docs/reports/scale-benchmark.md: ``--visits 10000 50000 --stages synth,prepare,load-graph,kge,gnn
--benchmark-models baselines,pyhealth,teacher,student --benchmark-models-at 50000=baselines,pyhealth``). Writes OUT/scale.json and OUT/scale.md.
Synthetic cohorts measure cost, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kgrec.teacher.config import CPU_TEACHER  # imports no torch

KGREC = [sys.executable, "-m", "kgrec"]
# kgrec run's CPU teacher (kgrec.teacher.config.CPU_TEACHER) as `train --stage teacher` flags and as `benchmark --teacher-option`s
TEACHER_FLAGS = [x for k, v in CPU_TEACHER.items() for x in
                 ([f"--{k.replace('_', '-')}", str(v)] if not isinstance(v, bool) else [f"--{'' if v else 'no-'}{k.replace('_', '-')}"])]
TEACHER_OPTIONS = [x for k, v in CPU_TEACHER.items() for x in ("--teacher-option", f"{k}={str(v).lower()}")]
STAGES = ("synth", "prepare", "load-graph", "kge", "gnn", "teacher", "distill", "evaluate", "recommend")
MEM_BOUND_MB = 8 * 1024
CHAIN_BOUND_S = 2 * 3600


def run_step(name: str, cmd: list[str], log: Path) -> dict:
    """Run ``cmd``; return wall s, CPU s and peak RSS (MB) of the process tree it waited for."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=fh, text=True)
        out = proc.stdout.read()
        _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    rec = {"step": name, "cmd": " ".join(cmd), "rc": proc.returncode, "wall_s": round(wall, 1),
           "cpu_s": round(ru.ru_utime + ru.ru_stime, 1), "peak_rss_mb": round(ru.ru_maxrss / 1024, 1)}
    try:
        rec["json"] = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        rec["json"] = None
        rec["stdout_tail"] = out[-500:]
    print(f"  {name}: rc {rec['rc']}, {rec['wall_s']} s wall, {rec['cpu_s']} s CPU, {rec['peak_rss_mb']} MB", flush=True)
    if proc.returncode != 0:
        rec["stderr_tail"] = log.read_text(errors="replace")[-1500:]
    return rec


def test_visit(ws: Path) -> str:
    """The first visit of the saved split's first test patient that has drugs and codes (what `recommend --visit` takes)."""
    from kgrec.workspace import load_cohort

    c = load_cohort(ws)
    v = c.visits[c.eval_mask()]
    test = set(c.split["test"])
    return str(v[v["patient_id"].isin(test)].iloc[0]["visit_id"])


def steps_for(n: int, out: Path, args) -> list[tuple[str, object]]:
    """The commands of the chosen stages at size ``n`` (``--stages``, or ``--stages-at N=...``), in chain order."""
    synth, ws = out / f"synth-{n}", out / f"ws-{n}"
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    steps = {
        "synth": [*KGREC, "synth", "--visits", str(n), "-o", str(synth), "--seed", str(args.seed), *data, "--json"],
        "prepare": [*KGREC, "prepare", "-s", "mimic3", "--source-dir", str(synth), "-w", str(ws), *data, "--json"],
        "load-graph": [*KGREC, "load-graph", "-w", str(ws), *data, "--json"],
        "kge": [*KGREC, "train", "--stage", "kge", "-w", str(ws), "--json"],
        "gnn": [*KGREC, "train", "--stage", "gnn", "-w", str(ws), "--json"],
        "teacher": [*KGREC, "train", "--stage", "teacher", "-w", str(ws), *TEACHER_FLAGS, "--json"],
        "distill": [*KGREC, "train", "--stage", "distill", "-w", str(ws), "--json"],
        "evaluate": [*KGREC, "evaluate", "-w", str(ws), "--folds", "5", "-m", "frequency", "-m", "logreg", "--json"],
        "recommend": lambda: [*KGREC, "recommend", "-w", str(ws), "--visit", test_visit(ws), "--json"],
    }
    wanted = args.stages_at.get(n, args.stages)
    chosen = [s for s in STAGES if s in wanted]
    out_steps = [(s, steps[s]) for s in chosen]
    models = args.benchmark_models_at.get(n, args.benchmark_models)
    if models:
        out_steps.append(("benchmark", [*KGREC, "benchmark", "-w", str(ws), "--models", models, "--epochs", str(args.epochs),
                                        "--patience", "0", "--no-plots", "--json", *data,
                                        *TEACHER_OPTIONS]))
    return out_steps


def one_scale(n: int, out: Path, args) -> dict:
    logs = out / f"logs-{n}"
    logs.mkdir(parents=True, exist_ok=True)
    rec: dict = {"visits": n, "steps": []}
    for name, cmd in steps_for(n, out, args):
        done = logs / f"{name}.json"
        if args.resume and done.exists() and json.loads(done.read_text()).get("rc") == 0:
            r = {**json.loads(done.read_text()), "reused": True}  # measured by an earlier, interrupted run
            print(f"  {name}: done before ({r['wall_s']} s wall, {r['cpu_s']} s CPU)", flush=True)
        else:
            r = run_step(name, cmd() if callable(cmd) else cmd, logs / f"{name}.log")
            done.write_text(json.dumps(r))
        rec["steps"].append(r)
        if r["rc"] != 0:
            break
    b = next((s["json"] for s in rec["steps"] if s["step"] == "benchmark" and s.get("json")), None)
    if b:
        rec["cohort"] = b["cohort"]
        rec["per_model"] = {}
        for m, row in b["models"].items():
            sp = row.get("split") or {}
            rec["per_model"][m] = {
                "status": row["status"], "reason": row.get("reason"), "prauc": (sp.get("metrics") or {}).get("prauc"),
                "train_s": sp.get("train_seconds"), "train_cpu_s": sp.get("train_cpu_seconds"), "teacher_s": sp.get("teacher_seconds"),
                "visits_per_s": sp.get("visits_per_second"), "peak_rss_mb": sp.get("peak_rss_mb"),
            }
    return rec


def exponents(records: list[dict]) -> dict[str, list[tuple[int, int, float | None, float | None]]]:
    """Per step: (n1, n2, b_wall, b_cpu) between consecutive sizes, with cost ∝ visits^b."""
    import math

    by = {r["visits"]: {s["step"]: s for s in r["steps"] if s["rc"] == 0} for r in records}
    sizes = sorted(by)
    out: dict[str, list] = {}
    for a, b in zip(sizes, sizes[1:]):
        for step in by[a]:
            if step not in by[b]:
                continue
            sa, sb = by[a][step], by[b][step]
            exp = lambda x, y: round(math.log(y / x) / math.log(b / a), 2) if x and y and x > 0.05 and y > 0.05 else None  # noqa: E731
            out.setdefault(step, []).append((a, b, exp(sa["wall_s"], sb["wall_s"]), exp(sa["cpu_s"], sb["cpu_s"])))
    return out


def write_md(records: list[dict], path: Path) -> None:
    lines = ["# Scale run (synthetic MIMIC-III-format cohorts)", "",
             "Each step is its own process (`scripts/bench_scale.py`); wall and CPU seconds (user + system) and peak RSS from wait4().", "",
             "## Steps", "", "| visits | step | wall s | CPU s | peak RSS MB | rc |", "|---|---|---|---|---|---|"]
    for r in records:
        chain = 0.0
        for s in r["steps"]:
            flag = " **over 8 GiB**" if s["peak_rss_mb"] > MEM_BOUND_MB else ""
            lines.append(f"| {r['visits']:,} | {s['step']} | {s['wall_s']:,} | {s['cpu_s']:,} | {s['peak_rss_mb']:,.0f}{flag} | {s['rc']} |")
            chain += s["wall_s"] if s["step"] not in ("synth", "benchmark") else 0.0
        peak = max((s["peak_rss_mb"] for s in r["steps"]), default=0)
        missing = [st for st in STAGES[1:] if st not in {s["step"] for s in r["steps"] if s["rc"] == 0}]
        over = "over" if chain > CHAIN_BOUND_S else "within"
        bound = f"{over} 2 h" if not missing else f"partial: {', '.join(missing)} not run"
        lines.append(f"| {r['visits']:,} | **chain** (prepare → recommend) | **{chain:,.1f}** ({bound}) | | {peak:,.0f} (max) | |")
    ex = exponents(records)
    if ex:
        lines += ["", "## Growth exponents (cost ∝ visits^b; 1 = linear)", "", "| step | sizes | b (wall) | b (CPU) |", "|---|---|---|---|"]
        for step in [s for s in (*STAGES, "benchmark") if s in ex]:
            for a, b, bw, bc in ex[step]:
                lines.append(f"| {step} | {a:,} → {b:,} | {'–' if bw is None else bw} | {'–' if bc is None else bc} |")
    if any(r.get("per_model") for r in records):
        lines += ["", "## Models in `kgrec benchmark` (saved split)", "",
                  "| visits (train/test) | model | train s (CPU s) | teacher s | infer visits/s | peak RSS MB | PRAUC | status |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        c = r.get("cohort") or {}
        size = f"{r['visits']:,}" + (f" ({c.get('n_test_visits')} test)" if c else "")
        for m, v in (r.get("per_model") or {}).items():
            f = lambda x, d=1: "–" if x is None else f"{x:,.{d}f}"  # noqa: E731
            lines.append(f"| {size} | {m} | {f(v['train_s'])} ({f(v['train_cpu_s'])}) | {f(v['teacher_s'])} | {f(v['visits_per_s'], 0)} | {f(v['peak_rss_mb'], 0)} | "
                         f"{f(v['prauc'], 4)} | {v['status'] if v['status'] == 'ok' else (v['reason'] or v['status'])[:120]} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--visits", type=int, nargs="+", default=[10000, 30000, 100000])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--stages", default=",".join(STAGES), type=lambda s: s.split(","), help=f"steps to run, in chain order (default: {','.join(STAGES)})")
    ap.add_argument("--stages-at", action="append", default=[], metavar="N=STAGES", help="other steps at size N (e.g. 100000=synth,prepare,load-graph,kge)")
    ap.add_argument("--benchmark-models", default="", help="also run `kgrec benchmark --models M` on the saved split (e.g. baselines,pyhealth)")
    ap.add_argument("--benchmark-models-at", action="append", default=[], metavar="N=MODELS", help="other benchmark models at size N (e.g. 50000=baselines,pyhealth)")
    ap.add_argument("--epochs", type=int, default=5, help="PyHealth epochs in the benchmark step (fixed: no early stopping, so sizes compare)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=os.environ.get("KGREC_DATA"))
    ap.add_argument("--resume", action="store_true", help="keep the steps an interrupted run finished (their figures included)")
    args = ap.parse_args()
    args.stages_at = {int(k): v.split(",") for k, v in (x.split("=", 1) for x in args.stages_at)}
    args.benchmark_models_at = {int(k): v for k, v in (x.split("=", 1) for x in args.benchmark_models_at)}
    bad = [s for s in [*args.stages, *(x for v in args.stages_at.values() for x in v)] if s not in STAGES]
    if bad:
        ap.error(f"unknown stage(s) {', '.join(bad)}; choose from {', '.join(STAGES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for n in args.visits:
        print(f"{n:,} visits", flush=True)
        records.append(one_scale(n, args.out, args))
        (args.out / "scale.json").write_text(json.dumps(records, indent=1))
        write_md(records, args.out / "scale.md")
    print((args.out / "scale.md").read_text())


if __name__ == "__main__":
    main()
