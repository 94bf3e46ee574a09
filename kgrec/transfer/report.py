"""The transfer report: Markdown tables, a PRAUC-against-target-share plot, and the JSON, saved together."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kgrec.metrics import METRICS
from kgrec.transfer.protocol import TransferResult


def _cell(v) -> str:
    if isinstance(v, dict):
        return f"{v['mean']:.4f} ± {v['std']:.4f}"
    return "–" if v is None else f"{v:.4f}"


def _pair(d: dict | None) -> str:
    if not d:
        return "–"
    return f"{d['mean']:+.4f} ± {d['std']:.4f} ({d['n_better']}/{len(d['folds'])})"


def markdown(res: TransferResult) -> str:
    j = res.to_json()
    lines = [f"# Transfer to {res.target} from {', '.join(res.sources)}", "",
             f"Target's patient-level {res.folds}-fold CV (the folds of `kgrec evaluate --folds {res.folds}`), mean ± std over folds; "
             "Δ = paired per-fold difference (folds better), against in-domain logistic regression and against the same model in-domain. "
             "Output space: the target's ATC3 vocabulary (zero-shot: see its section).", ""]
    pool = j["pooling"]
    lines += ["| site | source | patients | visits | evaluable | target drugs shared |", "|---|---|---|---|---|---|"]
    for name, s in pool["sites"].items():
        ov = s.get("drug_overlap")
        lines.append(f"| {name} | {s['source']} | {s['n_patients']:,} | {s['n_visits']:,} | {s['n_eval_visits']:,} | "
                     + (f"{ov['shared']}/{ov['target_drugs']}" if ov else "target") + " |")
    for mode, r in j["modes"].items():
        lines += ["", f"## {mode}", "", "| model | " + " | ".join(METRICS) + " | Δ PRAUC vs in-domain logreg | Δ PRAUC vs same model in-domain |",
                  "|---|" + "---|" * (len(METRICS) + 2)]
        for name, s in r["models"].items():
            cells = [_cell(s["metrics"].get(m)) for m in METRICS]
            pd_ = (r.get("paired_differences") or {}).get(name, {}).get("prauc")
            ps = (r.get("paired_vs_in_domain_same_model") or {}).get(name, {}).get("prauc")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {_pair(pd_)} | {_pair(ps)} |")
        if mode == "zero-shot":
            voc = r.get("vocabulary") or {}
            if voc.get("zero_shot") == "shared":
                gap = voc.get("never_prescribed_by_a_source", [])
                lines += ["", f"Output space: the {voc['n_zero_shot_drugs']} of the target's {voc['n_target_drugs']} drug classes that some source "
                          f"prescribes ({len(gap)} never are: {', '.join(gap[:12])}{' ...' if len(gap) > 12 else ''}); the Δ columns pair "
                          "with the in-domain models scored on the same classes and visits:", ""]
                for name, sm in (r.get("in_domain_same_vocabulary") or {}).items():
                    lines.append(f"- in-domain {name}, same classes: PRAUC {_cell(sm['metrics']['prauc'])}")
            lines += ["", "Zero-shot on every evaluable target visit at once (patient-bootstrap 95% interval):", ""]
            for name, s in r["models"].items():
                a = s.get("all_target_visits")
                if a:
                    ci = a.get("intervals", {}).get("prauc")
                    lines.append(f"- {name}: PRAUC {a['metrics']['prauc']:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + f" over {a['n_visits']} visits")
    lines += ["", "Seconds per mode: " + ", ".join(f"{k} {v}" for k, v in j["seconds"].items()), ""]
    return "\n".join(lines)


def curves(res: TransferResult) -> dict[str, list[tuple[float, float]]]:
    """PRAUC mean per model against the share of target training data (0 = zero-shot, 1 = pooled)."""
    out: dict[str, list[tuple[float, float]]] = {}
    modes = res.modes
    if "zero-shot" in modes:
        for name, s in modes["zero-shot"]["models"].items():
            out.setdefault(name, []).append((0.0, s["metrics"]["prauc"]["mean"]))
    if "few-shot" in modes:
        for key, s in modes["few-shot"]["models"].items():
            name, _, pct = key.rpartition("@")
            out.setdefault(name, []).append((float(pct.rstrip("%")) / 100, s["metrics"]["prauc"]["mean"]))
    if "pooled" in modes and "few-shot" not in modes:
        for name, s in modes["pooled"]["models"].items():
            out.setdefault(name, []).append((1.0, s["metrics"]["prauc"]["mean"]))
    return {k: sorted(set(v)) for k, v in out.items()}


def plot(res: TransferResult, path: Path) -> str | None:
    """Write the PRAUC-vs-share plot; returns why not when matplotlib is missing (said in the report)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'kgrec[bench]'): no plot"
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = {}
    for name, pts in curves(res).items():
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{name} (sources + target)")
        colours[name] = line.get_color()
    for name, s in res.modes.get("in-domain", {}).get("models", {}).items():
        ax.axhline(s["metrics"]["prauc"]["mean"], ls="--", lw=1, color=colours.get(name, "grey"), label=f"{name} in-domain")
    ax.set_xlabel("share of the target's training patients (0 = zero-shot, on the classes the sources prescribe)")
    ax.set_ylabel("PRAUC (mean over target folds)")
    ax.set_title(f"{' + '.join(res.sources)} → {res.target}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def save(res: TransferResult, folder: Path | str) -> dict[str, str]:
    """``transfer.json``, ``transfer.md`` and ``transfer-prauc.png`` in ``folder`` (each written whole, then renamed in)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "transfer.json", "markdown": folder / "transfer.md", "plot": folder / "transfer-prauc.png"}
    note = None
    tmp_png = folder / ".transfer-prauc.png.tmp.png"
    note = plot(res, tmp_png)
    if note is None:
        os.replace(tmp_png, paths["plot"])
    else:
        res.pooling["plot"] = note
    for key, text in (("json", json.dumps(res.to_json(), indent=1, default=float)), ("markdown", markdown(res) + (f"\n{note}\n" if note else ""))):
        tmp = paths[key].with_name(f".{paths[key].name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, paths[key])
    return {k: str(v) for k, v in paths.items() if k != "plot" or note is None}
