"""`kgrec benchmark`: kgrec's models beside PyHealth's on the same visits, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from kgrec.cli.app import app
from kgrec.cli.common import (
    DEFAULT_WORKSPACE,
    DataDir,
    JsonOut,
    Workspace,
    console,
    emit_json,
    handle_errors,
    show,
)


@app.command()
@handle_errors
def benchmark(
    workspace: Workspace = DEFAULT_WORKSPACE,
    models: Annotated[
        str,
        typer.Option(help="Comma-separated models: frequency, logreg, teacher, student (kgrec) and GAMENet, SafeDrug, RETAIN, MoleRec (PyHealth); "
                     "saved-teacher, saved-student (trained already by `kgrec train`, e.g. on a GPU: loaded, measured on the saved split); "
                     "or the groups baselines, kgrec, pyhealth, all. Quick run: --models baselines,pyhealth."),
    ] = "all",
    folds: Annotated[int, typer.Option(help="Also run K patient-level folds for paired per-fold differences against the best baseline (0: the saved split only).")] = 0,
    fold_models: Annotated[str | None, typer.Option(help="Models that also run on the folds (same syntax as --models; default: all of --models). E.g. keep the teacher to the saved split on a CPU.", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default WORKSPACE/reports/<dataset>).", show_default=False)] = None,
    pyhealth: Annotated[bool, typer.Option("--pyhealth/--no-pyhealth", help="Run PyHealth's models (in their own venv; created on first use).")] = True,
    setup_pyhealth: Annotated[bool, typer.Option("--setup-pyhealth", help="Create or update the PyHealth venv (Python >= 3.12, pip install pyhealth) and exit.")] = False,
    pyhealth_venv: Annotated[Path | None, typer.Option(help="The PyHealth venv (default ~/.cache/kgrec/pyhealth-venv or $KGREC_PYHEALTH_VENV).", envvar="KGREC_PYHEALTH_VENV", show_default=False)] = None,
    pyhealth_python: Annotated[Path | None, typer.Option(help="Use this interpreter (which has PyHealth 2.x) instead of the venv.", show_default=False)] = None,
    pyhealth_base_python: Annotated[str | None, typer.Option(help="Python >= 3.12 that creates the venv (default: found on PATH or in pyenv).", show_default=False)] = None,
    pyhealth_spec: Annotated[str, typer.Option(help="What --setup-pyhealth installs.")] = "pyhealth==2.1.0",
    epochs: Annotated[int, typer.Option(help="PyHealth models: training epochs (best epoch by validation PRAUC).")] = 20,
    patience: Annotated[int, typer.Option(help="PyHealth models: epochs without a better validation PRAUC before stopping (0: off).")] = 5,
    batch_size: Annotated[int, typer.Option(help="PyHealth models: batch size.")] = 64,
    device: Annotated[str | None, typer.Option(help="PyHealth models: cpu or cuda (default: cuda when available).", show_default=False)] = None,
    pyhealth_timeout: Annotated[float | None, typer.Option(help="Seconds one PyHealth run (all its models on one split) may take.", show_default=False)] = None,
    pyhealth_history: Annotated[int | None, typer.Option(help="PyHealth models: only the N most recent earlier visits (default: all; cap long histories such as Synthea's).", show_default=False)] = None,
    teacher_option: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE over the workspace's teacher settings (a TeacherConfig field; repeatable), for the teacher and the "
                     "teacher the student distils. E.g. the CPU teacher: --teacher-option lora_r=0 --teacher-option fuse_codes=true "
                     "--teacher-option graph_prompt=false.", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the folds, the bootstrap and the PyHealth models.")] = 42,
    n_boot: Annotated[int, typer.Option(help="Patient-bootstrap resamples for the 95% intervals.")] = 1000,
    data_dir: DataDir = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="PNG plots (needs matplotlib: pip install 'kgrec[bench]').")] = True,
    json_out: JsonOut = False,
) -> None:
    """Benchmark kgrec's baselines, teacher and student against PyHealth's GAMENet, SafeDrug, RETAIN and
    MoleRec on the workspace cohort: same visits, same split, same DDI matrix, kgrec's metrics.

    Writes WORKSPACE/reports/<dataset>/benchmark.md (table with bootstrap 95% intervals, single- vs
    multi-visit PRAUC, training and inference time, paired per-fold differences with --folds), PNG plots
    and benchmark.json. A model that cannot run keeps its row with the reason. PyHealth needs
    Python >= 3.12, so it runs in its own venv (created on first use; several GB) and exchanges
    visits and probabilities with kgrec through files.
    """
    from kgrec.benchmark import run_benchmark
    from kgrec.benchmark import setup_pyhealth as do_setup

    if setup_pyhealth:
        with console.status("setting up PyHealth ...") as status:
            env = do_setup(pyhealth_venv, pyhealth_base_python, spec=pyhealth_spec, progress=lambda m: status.update(f"PyHealth setup: {m}"))
        if json_out:
            emit_json(env.to_json())
        elif env.ok:
            v = env.versions
            console.print(f"PyHealth {v.get('pyhealth')} (torch {v.get('torch')}, Python {v.get('python')}) ready: {env.python}")
        else:
            console.print(f"[bold red]PyHealth setup failed:[/] {env.reason}", soft_wrap=True)
        if not env.ok:
            raise typer.Exit(code=1)
        return
    data = data_dir
    if data is None:
        import os

        data = os.environ.get("KGREC_DATA")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True, disable=json_out) as bar:
        task = bar.add_task("benchmark", total=None)

        def progress(msg: str, done: int, total: int) -> None:
            bar.update(task, description=msg, completed=done, total=total)

        res = run_benchmark(
            workspace, models=[models], folds=folds or None, fold_models=[fold_models] if fold_models else None, out=out, seed=seed, n_boot=n_boot, pyhealth=pyhealth,
            pyhealth_python=pyhealth_python, pyhealth_venv=pyhealth_venv, pyhealth_base_python=pyhealth_base_python, data_dir=data, epochs=epochs, batch_size=batch_size,
            patience=patience or None, device=device, pyhealth_timeout=pyhealth_timeout, pyhealth_history=pyhealth_history,
            teacher_options=_options(teacher_option), plots=plots, progress=progress,
        )
    if json_out:
        emit_json(res.to_json())
        return
    table = Table(title=f"{res.dataset}: test split ({res.cohort['n_test_visits']} visits), [95% CI]")
    for col in ("model", "Jaccard", "F1", "PRAUC", "DDI", "#meds", "train s", "visits/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, row in res.rows.items():
        if row.status != "ok" or not row.split:
            table.add_row(name, f"[red]not run[/]: {row.reason[:60] if row.reason else ''}", *[""] * 6)
            continue
        s = row.split
        m = s["metrics"]
        vps = s.get("visits_per_second")
        table.add_row(name, _cell(s, "jaccard"), _cell(s, "f1"), _cell(s, "prauc"), f"{m['ddi_rate']:.4f}", f"{m['n_meds']:.1f}",
                      f"{s['train_seconds']:.1f}" if s.get("train_seconds") is not None else "–", f"{vps:,.0f}" if vps else "–")
    show(table)
    if res.paired:
        console.print(f"paired per-fold PRAUC differences vs {res.reference} ({res.n_folds} folds):")
        for name, per in res.paired.items():
            d = per["prauc"]
            console.print(f"  {name}: {d['mean']:+.4f} ± {d['std']:.4f} (better in {d['n_better']}/{len(d['folds'])})")
    console.print(f"report: {res.files['markdown']} (+ benchmark.json, {len(res.files.get('plots', []))} plots) in {res.seconds:.0f} s")


def _options(items: list[str] | None) -> dict | None:
    """``["lora_r=0", "fuse_codes=true", "model=/models/x"]`` -> ``{"lora_r": 0, "fuse_codes": True, "model": "/models/x"}``."""
    import json

    if not items:
        return None
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--teacher-option")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _cell(res: dict, k: str) -> str:
    ci = res.get("intervals", {}).get(k)
    return f"{res['metrics'][k]:.4f}" + (f"\n[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
