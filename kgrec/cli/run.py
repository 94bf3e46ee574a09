"""`kgrec run`: the main job end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from kgrec.cli.app import app
from kgrec.cli.common import DEFAULT_WORKSPACE, DataDir, JsonOut, Workspace, console, emit_json, handle_errors, resolve_data_dir, show, stage_progress
from kgrec.cli.cohort import metrics_table, omop_options
from kgrec.errors import OptionError
from kgrec.cli.lazy import SOURCES, api


@app.command()
@handle_errors
def run(
    source: Annotated[str, typer.Option("--source", "-s", help=f"EHR source: {', '.join(SOURCES)}.")] = "mimic3",
    workspace: Workspace = DEFAULT_WORKSPACE,
    data_dir: DataDir = None,
    source_dir: Annotated[Path | None, typer.Option(help="Folder of the EHR tables (default: the demo folder in --data-dir).", show_default=False)] = None,
    folds: Annotated[int, typer.Option(help="Patient-level cross-validation folds for the evaluation (0: the saved 8:1:1 split).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the split and the folds.")] = 42,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Models to evaluate (repeat): frequency, logreg, logreg-graph (graph-grounded codes), teacher, student. Default: all five; without teacher and student the training stages are skipped.")] = None,
    teacher_model: Annotated[str | None, typer.Option(help="Teacher backbone: a folder or Hugging Face id (default: the offline all-MiniLM-L6-v2).", show_default=False)] = None,
    teacher_lora_r: Annotated[int, typer.Option(help="Teacher LoRA rank; 0 (default here) freezes the backbone and caches its states, which keeps 5-fold CV to minutes on a CPU. On a GPU use 8 or more with --teacher-graph-prompt (the LEADER setting).")] = 0,
    teacher_graph_prompt: Annotated[bool, typer.Option("--teacher-graph-prompt/--no-teacher-graph-prompt", help="Teacher: graph soft prompts (slower: no state cache).")] = False,
    kge_epochs: Annotated[int | None, typer.Option(help="KGE epochs (default 30); fewer for a quick run.", rich_help_panel="shorter runs", show_default=False)] = None,
    kge_dim: Annotated[int | None, typer.Option(help="KGE embedding size (default 32); smaller is faster to train and to evaluate.", rich_help_panel="shorter runs", show_default=False)] = None,
    gnn_epochs: Annotated[int | None, typer.Option(help="R-GCN epochs (default 100); fewer for a quick run.", rich_help_panel="shorter runs", show_default=False)] = None,
    teacher_epochs: Annotated[int | None, typer.Option(help="Teacher epochs with LoRA or a soft prompt (default 3; the frozen default trains only its head).", rich_help_panel="shorter runs", show_default=False)] = None,
    student_epochs: Annotated[int | None, typer.Option(help="Student epochs (default: the student's own).", rich_help_panel="shorter runs", show_default=False)] = None,
    recipe: Annotated[str, typer.Option(help="kgrec (default): kgrec's own settings. leader: the LEADER paper's teacher and student settings (kgrec.recipes; docs/teacher.md, docs/student.md); --teacher-* options still apply on top.")] = "kgrec",
    device: Annotated[str, typer.Option(help="Where every training stage runs: cpu, cuda or auto (cuda where PyTorch sees a GPU).")] = "auto",
    pool: Annotated[list[str] | None, typer.Option("--pool", help="Pool with another site (repeat): a workspace made by `kgrec prepare`, or a source name (eicu, mimic3, mimic4, synthea) prepared into WORKSPACE/pool/NAME. The --pool-model models are then also trained on that site plus each fold's training patients, and shown beside their in-domain rows (`kgrec transfer --mode pooled`).", rich_help_panel="other sites", show_default=False)] = None,
    pool_model: Annotated[list[str] | None, typer.Option("--pool-model", help="Models trained on the pooled sites (repeat; default: frequency, logreg, logreg-graph, site-ensemble-names; site-ensemble, teacher and student work too, at their cost).", rich_help_panel="other sites", show_default=False)] = None,
    pool_teacher: Annotated[str, typer.Option("--pool-teacher", help="With --pool: the model the deployed student is distilled from, by registry name (default site-ensemble-names, the pooled model that wins on the demos). The student in WORKSPACE/student, which recommend, explain and serve use, is then the pooled, distilled student-pooled.", rich_help_panel="other sites")] = "site-ensemble-names",
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Take the KGE and GNN vectors of the open graph from the shared cache ($KGREC_CACHE, default ~/.cache/kgrec; KGREC_CACHE=off disables it), training them there once per graph and settings so a second cohort skips their training (docs/cache.md). --no-cache trains them in the workspace.")] = True,
    db_url: Annotated[str | None, typer.Option(envvar="KGREC_OMOP_URL", help="--source omop: read the CDM from this SQLAlchemy URL instead of a folder (see `kgrec prepare --help`).", rich_help_panel="OMOP CDM", show_default=False)] = None,
    db_schema: Annotated[str | None, typer.Option(help="--source omop: the CDM's schema in that database.", rich_help_panel="OMOP CDM", show_default=False)] = None,
    vocab_schema: Annotated[str | None, typer.Option(help="--source omop: the vocabulary's schema where it differs.", rich_help_panel="OMOP CDM", show_default=False)] = None,
    json_out: JsonOut = False,
) -> None:
    """Run the main job end to end on the embedded store: prepare the cohort, build and load the
    knowledge graph, train the model stages (PyKEEN KGE -> PyG R-GCN -> teacher -> distilled student;
    stages whose outputs are current are skipped), then evaluate baselines, teacher and student with
    patient-level K-fold CV (paired differences against logistic regression), then explain the student's
    recommendations for three test visits of the saved split (rationale paths found by Cypher in the
    graph, DDI warnings, a natural-language rationale: reports/explanations.json). With --pool, the same
    folds again with another site's visits added (in-domain and pooled rows side by side).

    Everything lands in the workspace (cohort/, graph/, embed/, teacher/, student/, reports/); what each
    step did (ran or skipped, and why) is in reports/run.json. With --folds, the embeddings leave out
    Patient/Visit nodes, since every patient is in some test fold. Without a terminal (a log file, CI)
    each step prints one line when it starts and one when it ends.
    """
    from kgrec.embed.device import resolve_device
    from kgrec.recipes import RECIPES

    if recipe not in RECIPES:
        raise OptionError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    resolve_device(device)  # before any stage writes
    # the leader recipe sets the teacher's LoRA and graph prompt itself; --teacher-* options change them only when given
    explicit = {} if recipe == "kgrec" else {"lora_r": 0, "graph_prompt": False}
    teacher = {**({"lora_r": teacher_lora_r} if teacher_lora_r != explicit.get("lora_r", -1) else {}),
               **({"graph_prompt": teacher_graph_prompt} if teacher_graph_prompt != explicit.get("graph_prompt", None) else {}),
               **({"model": teacher_model} if teacher_model else {}),
               **({"epochs": teacher_epochs} if teacher_epochs else {})}
    models = model or list(api.RUN_MODELS)
    no_cache = {} if cache else {"cache": False}  # only when off: a default run keeps its stage settings (and their stamps)
    kge = {**{k: v for k, v in (("epochs", kge_epochs), ("dim", kge_dim)) if v}, **no_cache} or None
    gnn = {**({"epochs": gnn_epochs} if gnn_epochs else {}), **no_cache} or None
    student = {"epochs": student_epochs} if student_epochs else None
    with stage_progress("running ...") as progress:
        res = api.run(source, workspace, resolve_data_dir(data_dir), source_dir, folds=folds or None, seed=seed, models=models, teacher=teacher,
                      progress=progress, kge=kge, gnn=gnn, student=student, recipe=recipe, device=device, pool=tuple(pool or ()),
                      pool_models=tuple(pool_model or api.POOL_MODELS), pool_teacher=pool_teacher,
                      source_options=omop_options(source, db_url, db_schema=db_schema, vocab_schema=vocab_schema))
    if json_out:
        emit_json({**res.to_json(), "path": str(res.path)})
        return
    stats = res.prepare.stats
    console.print(
        f"cohort {source}: {stats['n_patients']} patients, {stats['n_visits']} visits "
        f"({stats['n_eval_visits']} with a mapped drug), drug mapping coverage {stats['drug_mapping_coverage']:.1%}"
    )
    g = res.graph.to_dict()["counts"]
    console.print(f"knowledge graph (embedded store): {g['n_nodes']:,} nodes, {g['n_edges']:,} edges")
    if res.stages:
        console.print("trained: " + (", ".join(f"{k} {v:.0f} s" for k, v in res.stages["seconds"].items()) or "nothing (all current)"))
    table = metrics_table(res.evaluation, f"{source}: {folds}-fold patient-level CV, mean ± std" if folds else f"{source}: test split, [95% CI]")
    show(table)
    for name, per in (res.evaluation.paired or {}).items():
        d = per.get("prauc")
        if d:
            show(f"  PRAUC {name} − {res.evaluation.reference}: {d['mean']:+.4f} ± {d['std']:.4f} (better in {d['n_better']}/{len(d['folds'])} folds)")
    if res.pooled:
        show(pooled_table(res.pooled))
        models = res.pooled["modes"]["pooled"]["models"]
        best = max(models, key=lambda m: models[m]["metrics"]["prauc"]["mean"])
        shown = list(dict.fromkeys([best, *(["student-pooled"] if "student-pooled" in models else [])]))
        for m in shown:
            for name, d in (res.pooled.get("vs_run_models") or {}).get(m, {}).items():
                show(f"  PRAUC pooled {m} − in-domain {name}: {d['mean']:+.4f} ± {d['std']:.4f} (better in {d['n_better']}/{len(d['folds'])} folds)")
    dep = deployed_line(workspace)
    if dep:
        show(dep, highlight=False, markup=False)
    ex = next((s for s in res.steps if s.stage == "explain" and s.ran), None)
    if ex is not None:
        console.print(f"explanations ({ex.output['model']}: {ex.figure}): {ex.output['path']}")
        if ex.output.get("example"):
            console.print(f"  e.g. visit {ex.output['example']['visit']}: {ex.output['example']['rationale'][:400]}", highlight=False, markup=False)
    console.print(f"done in {res.seconds['total']:.1f} s; reports in {api.reports_dir(workspace)}")


def deployed_line(workspace: Path) -> str | None:
    """Which model ``recommend``, ``explain`` and ``serve`` use now (``WORKSPACE/student/provenance.json``)."""
    import json

    prov = Path(workspace) / "student" / "provenance.json"
    if not prov.exists():
        return None
    p = json.loads(prov.read_text())
    line = f"deployed (recommend, explain, serve): {p.get('model')} in {prov.parent}, distilled from {p.get('teacher') or 'no teacher'} on {' + '.join(p.get('sites') or {})}"
    cv = (p.get("cross_validation") or {}).get("prauc")
    if cv:
        line += f"; {p['cross_validation']['folds']}-fold PRAUC {cv['mean']:.4f} ± {cv['std']:.4f}"
    return line


def pooled_table(pooled: dict):
    """In-domain and pooled rows side by side: PRAUC mean ± std and the paired difference against in-domain logreg."""
    from rich.table import Table

    modes = pooled["modes"]
    table = Table(title=f"in-domain vs pooled with {' + '.join(pooled['sources'])}: PRAUC, {pooled['folds']}-fold mean ± std")
    for col in ("model", "in-domain", "pooled", "pooled − in-domain logreg (folds better)"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, s in modes["pooled"]["models"].items():
        ind = modes["in-domain"]["models"].get(name, {}).get("metrics", {}).get("prauc")
        p = s["metrics"]["prauc"]
        d = modes["pooled"]["paired_differences"].get(name, {}).get("prauc")
        table.add_row(name, f"{ind['mean']:.4f} ± {ind['std']:.4f}" if ind else "–", f"{p['mean']:.4f} ± {p['std']:.4f}",
                      f"{d['mean']:+.4f} ± {d['std']:.4f} ({d['n_better']}/{len(d['folds'])})" if d else "–")
    return table
