"""The benchmark report: ``benchmark.md`` (markdown tables), ``benchmark.json`` and PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from kgrec.models.base import THRESHOLDS

THRESHOLD_MIN = float(THRESHOLDS[0])
PLOT_METRICS = ("jaccard", "f1", "prauc", "ddi_rate")
LABELS = {"jaccard": "Jaccard", "f1": "F1", "prauc": "PRAUC", "ddi_rate": "DDI rate", "n_meds": "#meds"}


def _num(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def _ci(res: dict, m: str) -> str:
    v = res.get("metrics", {}).get(m)
    if v is None:
        return "–"
    ci = res.get("intervals", {}).get(m)
    return f"{v:.4f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.4f}"


def _group(res: dict, g: str, m: str = "prauc") -> str:
    grp = res.get("groups", {}).get(g, {})
    return _num(grp.get("metrics", {}).get(m)) if grp.get("n_visits") else "–"


def _speed(v) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _both(wall: str, cpu: str) -> str:
    return wall if cpu == "–" else f"{wall} ({cpu})"


def _secs(v) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def markdown(res) -> str:
    c = res.cohort
    lines = [
        f"# Benchmark: {res.dataset}",
        "",
        (f"Workspace `{res.workspace}`; {c['n_patients']} patients, {c['n_eval_visits']} target visits, {c['n_drugs']} ATC3 drugs, "
        f"{c['n_ddi_pairs']} DDI pairs. Saved split (patients train/val/test {c['split']['train']}/{c['split']['val']}/{c['split']['test']}): "
        f"{c['n_test_visits']} test visits ({c['n_test_single_visit']} of single-visit patients, {c['n_test_multi_visit']} of multi-visit patients)."),
        "",
        ("Every model gets the same visits, drug vocabulary and DDI matrix; thresholds are chosen on the validation "
        "visits (mean Jaccard); metrics are kgrec's (test visits, patient-bootstrap 95% intervals "
        f"with {res.config['n_boot']} resamples). Train s: wall clock, threshold choice included, with the process CPU "
        "seconds in brackets (on a shared machine the wall clock depends on the load, CPU seconds much less); infer: test "
        "visits per wall-clock second (per CPU second)."),
        "",
    ]
    folds = res.n_folds
    ref = res.reference
    head = ["model", "Jaccard [95% CI]", "F1 [95% CI]", "PRAUC [95% CI]", "DDI", "#meds",
            f"PRAUC single-visit (n={c['n_test_single_visit']})", f"PRAUC multi-visit (n={c['n_test_multi_visit']})", "train s (CPU s)", "infer visits/s (per CPU s)"]
    if folds:
        head.append(f"ΔPRAUC vs {ref} ({folds} folds)" if ref else f"ΔPRAUC ({folds} folds)")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    failed = []
    for name, row in res.rows.items():
        s = row.split
        if row.status != "ok" or not s:
            failed.append(row)
            cells = [name, f"not run ({'see below' if row.status == 'error' else row.reason})"] + ["–"] * (len(head) - 2)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        cells = [
            name, _ci(s, "jaccard"), _ci(s, "f1"), _ci(s, "prauc"), _num(s["metrics"].get("ddi_rate")), _num(s["metrics"].get("n_meds"), 2),
            _group(s, "single_visit"), _group(s, "multi_visit"), _both(_secs(s.get("train_seconds")), _secs(s.get("train_cpu_seconds"))), _both(_speed(s.get("visits_per_second")), _speed(s.get("visits_per_cpu_second"))),
        ]
        if folds:
            d = res.paired.get(name, {}).get("prauc")
            if name == ref:
                cells.append("reference")
            elif d:
                cells.append(f"{d['mean']:+.4f} ± {d['std']:.4f} ({d['n_better']}/{len(d['folds'])} better)")
            elif name not in res.config.get("fold_models", []):
                cells.append("split only")
            else:
                cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    if folds and any(r.summary for r in res.rows.values()):
        lines += ["", f"## {folds}-fold patient-level cross-validation", "",
                  f"Mean ± std over folds; paired differences are model − `{ref}` (the best baseline by mean PRAUC: kgrec's frequency and logistic-regression baselines and PyHealth's models) fold by fold.", ""]
        lines += ["| model | Jaccard | F1 | PRAUC | DDI | ΔJaccard | ΔF1 | ΔPRAUC | folds better (PRAUC) |", "|---|---|---|---|---|---|---|---|---|"]
        for name, row in res.rows.items():
            if not row.summary:
                continue
            m = row.summary["metrics"]
            cells = [name] + [f"{m[k]['mean']:.4f} ± {m[k]['std']:.4f}" if k in m else "–" for k in ("jaccard", "f1", "prauc", "ddi_rate")]
            p = res.paired.get(name)
            if name == ref:
                cells += ["reference"] * 3 + ["–"]
            elif p:
                cells += [f"{p[k]['mean']:+.4f} ± {p[k]['std']:.4f}" for k in ("jaccard", "f1", "prauc")] + [f"{p['prauc']['n_better']}/{len(p['prauc']['folds'])}"]
            else:
                cells += ["–"] * 4
            lines.append("| " + " | ".join(cells) + " |")
        partial = [r for r in res.rows.values() if r.fold_errors]
        for r in partial:
            lines.append(f"\n`{r.name}` failed in some folds: " + "; ".join(_short(e, 300) for e in r.fold_errors))
    if failed:
        lines += ["", "## Models that did not run", ""]
        for r in failed:
            lines.append(f"- **{r.name}** ({r.family}): {_short(r.reason or 'no reason recorded', 1500)}")
    notes = [(r.name, n) for r in res.rows.values() for n in r.notes]
    ph = res.pyhealth or {}
    if notes or ph:
        lines += ["", "## Notes", ""]
        v = ph.get("versions") or next((x.get("versions") for x in (ph.get("runs") or {}).values() if x.get("versions")), None)
        if v:
            lines.append(f"- PyHealth {v.get('pyhealth')} with torch {v.get('torch')} on Python {v.get('python')} ({v.get('executable')}); "
                         f"training: {json.dumps(res.config['pyhealth_training'])}; best epoch by validation PRAUC (PyHealth's Trainer).")
        for name, n in notes:
            lines.append(f"- {name}: {n}")
        for name, row in res.rows.items():
            if row.status == "ok" and row.split and row.split["metrics"].get("n_meds") == 0:
                lines.append(f"- {name}: predicts no drug on the test visits (every probability below the chosen threshold "
                             f"{row.split.get('threshold', float('nan')):.2f}; the lowest on the grid is {THRESHOLD_MIN:.2f}), so Jaccard and F1 are 0")
        th = ", ".join(f"{n} {r.split['threshold']:.2f}" for n, r in res.rows.items() if r.status == "ok" and r.split.get("threshold") is not None)
        if th:
            lines.append(f"- thresholds chosen on validation: {th}")
    explained = _explanations(res.workspace)
    if explained:
        lines += ["", "## Explanations: evidence coverage and faithfulness", "",
                  f"From `scripts/bench_faithfulness.py` ({explained.get('created', '?')}; `{res.workspace}/reports/explanations.json`): "
                  "the drugs `recommend` gives on the saved split's test visits.", "",
                  coverage_markdown([explained]), "", faithfulness_markdown([explained])]
    if res.files.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in res.files["plots"]]
    lines.append("")
    return "\n".join(lines)


def _explanations(workspace) -> dict | None:
    path = Path(str(workspace)) / "reports" / "explanations.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


COVERAGE_COLUMNS = (("indication", "indication"), ("code_indication", "MEDI indication"), ("trial", "trial"), ("similar_patients", "similar patients"),
                    ("literature", "literature (caution)"))


def coverage_markdown(results: list[dict]) -> str:
    """Evidence coverage per dataset and model: the share of recommended drugs with at least one
    supporting path, by path kind (literature: BC5CDR co-mentions, cautions only), and the share whose
    top attributed code starts a supporting path (``scripts/bench_faithfulness.py``)."""
    head = ["dataset", "model", "drugs", "any path"] + [label for _, label in COVERAGE_COLUMNS] + ["top attributed code starts a path"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        for m, e in r.get("models", {}).items():
            c = e["coverage"]
            cells = [r.get("dataset", "?"), m, str(c["n_drugs"]), _pct(c["any_path"])] + [_pct(c["by_kind"].get(k, 0.0)) for k, _ in COVERAGE_COLUMNS] + [_pct(c["top_code_starts_path"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def faithfulness_markdown(results: list[dict]) -> str:
    """The deletion test per dataset and model: mean drop in probability when the top-k attributed
    codes (or the paths' starting codes) are removed, against as many random codes of the visit; the
    gap with its 95 % bootstrap interval over visits."""
    head = ["dataset", "model", "removed", "visits", "drugs", "drop (explained)", "drop (random)", "gap [95% CI]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        for m, e in r.get("models", {}).items():
            for key, label in (("attribution_deletion", f"top-{e['k']} attributed codes"), ("path_start_deletion", "paths' starting codes")):
                d = e[key]
                gap = f"{d['gap']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]" if d["n_drugs"] else "–"
                lines.append("| " + " | ".join([r.get("dataset", "?"), m, label, str(d["n_visits"]), str(d["n_drugs"]), _num(d["drop_top"]), _num(d["drop_random"]), gap]) + " |")
    return "\n".join(lines)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * float(x):.0f} %"


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def plot(res, folder: Path) -> list[Path]:
    """Metric bars with 95% intervals, precision–recall curves, training and inference speed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    ok = [(n, r) for n, r in res.rows.items() if r.status == "ok" and r.split]
    paths: list[Path] = []
    if not ok:
        return paths
    colours = {n: plt.cm.tab10(i % 10) for i, (n, _) in enumerate(ok)}

    fig, axes = plt.subplots(1, len(PLOT_METRICS), figsize=(4 * len(PLOT_METRICS), 3.8))
    for ax, m in zip(axes, PLOT_METRICS):
        names = [n for n, _ in ok]
        vals = np.array([r.split["metrics"].get(m, np.nan) for _, r in ok])
        ci = [r.split.get("intervals", {}).get(m) for _, r in ok]
        lo = np.array([v - c[0] if c else 0 for v, c in zip(vals, ci)])
        hi = np.array([c[1] - v if c else 0 for v, c in zip(vals, ci)])
        ax.bar(range(len(names)), vals, yerr=np.vstack([np.clip(lo, 0, None), np.clip(hi, 0, None)]), capsize=3, color=[colours[n] for n in names])
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_title(LABELS[m] + (" (lower is better)" if m == "ddi_rate" else ""))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{res.dataset}: test split, 95% patient-bootstrap intervals")
    fig.tight_layout()
    paths.append(_save(fig, folder / "benchmark-metrics.png"))

    if res.curves:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        for n, (y, p) in res.curves.items():
            if n not in colours or not np.asarray(y).any():
                continue
            prec, rec, _ = precision_recall_curve(np.asarray(y).ravel(), np.asarray(p).ravel())
            ax.plot(rec, prec, label=f"{n} (PRAUC {res.rows[n].split['metrics']['prauc']:.3f})", color=colours[n])
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{res.dataset}: precision–recall over test visit × drug pairs\n(legend: PRAUC averaged over visits, as in the table)", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(_save(fig, folder / "benchmark-pr-curves.png"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    names = [n for n, _ in ok]
    panels = ((axes[0], "train_cpu_seconds", "train_seconds", "training time (CPU s, log)"),
              (axes[1], "visits_per_cpu_second", "visits_per_second", "inference (test visits per CPU s, log)"))
    for ax, key, wall, title in panels:
        # CPU time where recorded (robust to the machine's load); wall clock otherwise, hatched
        vals = [r.split.get(key) or r.split.get(wall) or np.nan for _, r in ok]
        bars = ax.bar(range(len(names)), vals, color=[colours[n] for n in names])
        for b, (n, r) in zip(bars, ok):
            if n in ("teacher", "student", "saved-teacher", "saved-student"):
                b.set_edgecolor("black")
                b.set_linewidth(2)
            if not r.split.get(key):
                b.set_hatch("//")
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    t = res.rows.get("teacher") or res.rows.get("saved-teacher")
    s = res.rows.get("student") or res.rows.get("saved-student")
    key = "visits_per_cpu_second" if t and s and t.split.get("visits_per_cpu_second") and s.split.get("visits_per_cpu_second") else "visits_per_second"
    if t and s and t.status == s.status == "ok" and t.split.get(key) and s.split.get(key):
        sub = f"student infers {s.split[key] / t.split[key]:.0f}× faster than the teacher"
    else:
        missing = [r.name for r in (t, s) if r is not None and r.status != "ok"]
        sub = "teacher vs student: " + (f"{' and '.join(missing)} did not run, see benchmark.md" if missing else "not both run here")
    fig.suptitle(f"{res.dataset}: speed ({sub})")
    fig.tight_layout()
    paths.append(_save(fig, folder / "benchmark-speed.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(res, plots: bool = True) -> dict:
    """Write plots, ``benchmark.md`` and ``benchmark.json`` into ``res.out``; returns the file map."""
    folder = Path(res.out)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict = {"markdown": str(folder / "benchmark.md"), "json": str(folder / "benchmark.json"), "plots": []}
    if plots:
        try:
            files["plots"] = [str(p) for p in plot(res, folder)]
        except ImportError as exc:
            files["plots_error"] = f"no plots: {exc} (install kgrec[bench])"
    res.files = files
    (folder / "benchmark.md").write_text(markdown(res))
    tmp = folder / "benchmark.json.tmp"
    tmp.write_text(json.dumps(res.to_json(), indent=2, default=_default))
    tmp.replace(folder / "benchmark.json")
    return files


def _default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
