"""Scale run: how kgrec's pipeline and `kgrec benchmark` grow with the number of visits.

For each N in --visits: `kgrec synth --visits N` (a synthetic MIMIC-III-format cohort drawn from the open
graph), `kgrec prepare`, and, when the teacher or the student is benchmarked, `kgrec load-graph` and the
KGE and GNN stages; then `kgrec benchmark` on the saved split. Every step runs as its own process, and
its wall clock, CPU seconds (user + system, children included) and peak resident memory come from
wait4(). Per-model training time, inference speed and peak memory come from the benchmark's JSON.

    KGREC_DATA=../shared/data python scripts/bench_scale.py --visits 10000 50000 -o /tmp/scale \\
        --models baselines,pyhealth,teacher,student --models-at 50000=baselines,pyhealth --epochs 5

Writes OUT/scale.json and OUT/scale.md (the tables). Synthetic cohorts measure cost, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

KGREC = [sys.executable, "-m", "kgrec"]
CPU_TEACHER = ["lora_r=0", "fuse_codes=true", "graph_prompt=false"]


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


def one_scale(n: int, out: Path, models: str, args) -> dict:
    synth, ws = out / f"synth-{n}", out / f"ws-{n}"
    logs = out / f"logs-{n}"
    logs.mkdir(parents=True, exist_ok=True)
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    steps = [
        ("synth", [*KGREC, "synth", "--visits", str(n), "-o", str(synth), "--seed", str(args.seed), *data, "--json"]),
        ("prepare", [*KGREC, "prepare", "-s", "mimic3", "--source-dir", str(synth), "-w", str(ws), *data, "--json"]),
    ]
    needs_graph = args.graph_steps or any(m in models.split(",") for m in ("teacher", "student", "kgrec", "all"))
    if needs_graph:
        steps += [
            ("load-graph", [*KGREC, "load-graph", "-w", str(ws), *data, "--json"]),
            ("kge", [*KGREC, "train", "--stage", "kge", "-w", str(ws), "--json"]),
            ("gnn", [*KGREC, "train", "--stage", "gnn", "-w", str(ws), "--json"]),
        ]
    bench = [*KGREC, "benchmark", "-w", str(ws), "--models", models, "--epochs", str(args.epochs), "--patience", "0", "--no-plots", "--json", *data]
    for opt in CPU_TEACHER if needs_graph else []:
        bench += ["--teacher-option", opt]
    steps.append(("benchmark", bench))
    rec: dict = {"visits": n, "models": models, "steps": []}
    for name, cmd in steps:
        done = logs / f"{name}.json"
        if args.resume and done.exists() and json.loads(done.read_text()).get("rc") == 0:
            r = {**json.loads(done.read_text()), "reused": True}  # measured by an earlier, interrupted run
            print(f"  {name}: done before ({r['wall_s']} s wall, {r['cpu_s']} s CPU)", flush=True)
        else:
            r = run_step(name, cmd, logs / f"{name}.log")
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


def write_md(records: list[dict], path: Path) -> None:
    lines = ["# Scale run (synthetic MIMIC-III-format cohorts)", "",
             "## Steps (wall s / CPU s / peak RSS MB)", "", "| visits | step | wall s | CPU s | peak RSS MB | rc |", "|---|---|---|---|---|---|"]
    for r in records:
        for s in r["steps"]:
            lines.append(f"| {r['visits']:,} | {s['step']} | {s['wall_s']} | {s['cpu_s']} | {s['peak_rss_mb']:,.0f} | {s['rc']} |")
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
    ap.add_argument("--visits", type=int, nargs="+", default=[10000, 50000])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--models", default="baselines,pyhealth,teacher,student", help="`kgrec benchmark --models` at every size")
    ap.add_argument("--models-at", action="append", default=[], metavar="N=MODELS", help="other models at size N (e.g. 50000=baselines,pyhealth)")
    ap.add_argument("--epochs", type=int, default=5, help="PyHealth epochs (fixed: no early stopping, so sizes compare)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=os.environ.get("KGREC_DATA"))
    ap.add_argument("--graph-steps", action="store_true", help="run load-graph, kge and gnn at every size (the graph holds the cohort's visits)")
    ap.add_argument("--resume", action="store_true", help="keep the steps an interrupted run finished (their figures included)")
    args = ap.parse_args()
    at = dict(x.split("=", 1) for x in args.models_at)
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for n in args.visits:
        models = at.get(str(n), args.models)
        print(f"{n:,} visits: {models}", flush=True)
        records.append(one_scale(n, args.out, models, args))
        (args.out / "scale.json").write_text(json.dumps(records, indent=1))
        write_md(records, args.out / "scale.md")
    print((args.out / "scale.md").read_text())


if __name__ == "__main__":
    main()
