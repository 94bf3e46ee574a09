"""`kgrec transfer`: train at other sites (source workspaces), recommend for the target workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kgrec.cli.app import app
from kgrec.cli.common import DEFAULT_WORKSPACE, DataDir, JsonOut, Workspace, console, emit_json, handle_errors, show


@app.command()
@handle_errors
def transfer(
    workspace: Workspace = DEFAULT_WORKSPACE,
    source_ws: Annotated[
        list[Path],
        typer.Option("--source-ws", help="A source site's workspace (made by `kgrec prepare`); repeat for several sites.", show_default=False),
    ] = None,  # type: ignore[assignment]
    mode: Annotated[
        list[str] | None,
        typer.Option("--mode", help="zero-shot (sources only), few-shot (sources + 10/25/50/100% of the target's "
                     "training patients) or pooled (sources + all of them); repeat for several. Default: all three."),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model(s): frequency, logreg (raw code ids), logreg-graph (graph-grounded "
                     "codes, site-aware), site-ensemble (the target's own logreg-graph averaged with the pooled one), site-ensemble-names (the same over "
                     "graph concepts and code names: own and pooled logreg-graph and teacher, a quarter each), teacher, student, "
                     "or PyHealth's GAMENet, SafeDrug, RETAIN, MoleRec (in their own venv: "
                     "`kgrec benchmark --setup-pyhealth`). Default: frequency, logreg, logreg-graph, site-ensemble-names."),
    ] = None,
    folds: Annotated[int, typer.Option(help="The target's patient-level folds (the same as `kgrec evaluate --folds`).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds, the source validation split and the few-shot samples.")] = 42,
    zero_shot_vocab: Annotated[
        str,
        typer.Option("--zero-shot-vocab", help="Zero-shot output space: 'shared' (the target's drug classes that some source "
                     "prescribes; the in-domain reference is scored on the same classes) or 'target' (all of the target's)."),
    ] = "shared",
    data_dir: DataDir = None,
    json_out: JsonOut = False,
) -> None:
    """Carry what was learned at other hospitals to this one, and measure it on the target's folds.

    WORKSPACE is the target site; each --source-ws another site, with its own codes (ICD-9, ICD-10,
    SNOMED, eICU paths). Codes meet through the target workspace's knowledge graph (run `kgrec load-graph`
    there, or give --data-dir and it is loaded here for the models that need it). The target's drug classes are the output space (zero-shot: those some
    source prescribes, see --zero-shot-vocab); its DDI pairs are used.
    Every mode is compared, fold by fold, with the same models trained on the target alone (in-domain).
    The report goes to WORKSPACE/reports/transfer/ (JSON, Markdown, a PRAUC plot); --json prints each
    mode's result in the shape of `kgrec evaluate --json`.
    """
    from kgrec.transfer import DEFAULT_MODELS, MODES, transfer as run

    if not source_ws:
        raise typer.BadParameter("give at least one source workspace", param_hint="--source-ws")
    with console.status("transfer ...") as status:
        res = run(workspace, source_ws, tuple(mode or MODES), tuple(model or DEFAULT_MODELS), folds, seed, progress=lambda m: status.update(m),
                  zero_shot_vocab=zero_shot_vocab, data_dir=data_dir)
    if res.pooling.get("graph_loaded"):
        console.print(f"note: {res.pooling['graph_loaded']}", highlight=False, markup=False)
    if json_out:
        emit_json(res.to_json())
        return
    from rich.table import Table

    table = Table(title=f"{' + '.join(res.sources)} → {res.target}: PRAUC, {folds}-fold mean ± std (Δ vs in-domain logreg, folds better)")
    table.add_column("mode")
    table.add_column("model")
    table.add_column("PRAUC", justify="right")
    table.add_column("Δ", justify="right")
    for name, r in res.modes.items():
        for m, s in r["models"].items():
            p = s["metrics"]["prauc"]
            d = (r.get("paired_differences") or {}).get(m, {}).get("prauc")
            table.add_row(name, m, f"{p['mean']:.4f} ± {p['std']:.4f}", f"{d['mean']:+.4f} ± {d['std']:.4f} ({d['n_better']}/{len(d['folds'])})" if d else "")
    show(table)
    console.print(f"saved under {Path(workspace) / 'reports' / 'transfer'}")
