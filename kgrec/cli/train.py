"""`kgrec train --stage ...`: the model-training stages."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from kgrec.cli.app import app
from kgrec.cli.common import DEFAULT_WORKSPACE, JsonOut, Workspace, console, emit_json, handle_errors, one_step, show
from kgrec.cli.lazy import api


class Stage(str, Enum):
    kge = "kge"
    gnn = "gnn"
    teacher = "teacher"
    distill = "distill"
    all = "all"


class Recipe(str, Enum):
    kgrec = "kgrec"
    leader = "leader"


class PatientNodes(str, Enum):
    train = "train"
    none = "none"
    all = "all"


@app.command()
@handle_errors
def train(
    stage: Annotated[Stage, typer.Option(help="kge: PyKEEN knowledge-graph embeddings. gnn: R-GCN (PyG) link prediction, initialised from the KGE vectors when present. teacher: LoRA-tuned language model with graph soft prompts (LEADER). distill: the student, distilled from the cached teacher features. all: kge -> gnn -> teacher -> distill, skipping stages whose outputs are current (with all, --model/--epochs/--lr/--batch-size and the teacher options set the teacher; kge and gnn use their defaults).")],
    workspace: Workspace = DEFAULT_WORKSPACE,
    model: Annotated[str | None, typer.Option(help="kge: PyKEEN model (RotatE, TransE, ComplEx, DistMult, ...; default RotatE). teacher: backbone folder or Hugging Face id (default: the offline all-MiniLM-L6-v2; on a GPU e.g. a 7B causal LM).", show_default=False)] = None,
    dim: Annotated[int | None, typer.Option(help="Embedding dimension (default: 32 for kge — complex models give 2·dim real values — and 64 for gnn).", show_default=False)] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: 30 for kge, 100 for gnn (early stopping on validation indications), 3 for teacher).", show_default=False)] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: 0.01 kge, 0.01 gnn, 0.001 teacher LoRA + projector).", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(help="Triples per batch (kge, default 8192, or triples/32 on a graph of more than 262,144 training triples: 32 steps per epoch); visits per batch (teacher, default 8).", show_default=False)] = None,
    init_from_kge: Annotated[bool, typer.Option("--init-from-kge/--no-init-from-kge", help="gnn: start node inputs from the KGE vectors.")] = True,
    patients: Annotated[PatientNodes, typer.Option(help="Patient/Visit nodes in the training graph: 'train' (training-split patients only), 'none' (use this before `kgrec evaluate --folds K`: fold test patients come from every split), or 'all' (leaks test patients).")] = PatientNodes.train,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same numbers.")] = 42,
    lora_r: Annotated[int, typer.Option(help="teacher: LoRA rank (0 freezes the backbone).", rich_help_panel="teacher")] = 8,
    lora_alpha: Annotated[float, typer.Option(help="teacher: LoRA alpha.", rich_help_panel="teacher")] = 16.0,
    lora_dropout: Annotated[float, typer.Option(help="teacher: LoRA dropout.", rich_help_panel="teacher")] = 0.1,
    soft_tokens: Annotated[int, typer.Option(help="teacher: virtual tokens K made from the graph vectors.", rich_help_panel="teacher")] = 4,
    graph_prompt: Annotated[bool, typer.Option("--graph-prompt/--no-graph-prompt", help="teacher: graph soft prompts (need `--stage kge` embeddings); --no-graph-prompt is the ablation.", rich_help_panel="teacher")] = True,
    max_length: Annotated[int, typer.Option(help="teacher: prompt token budget (oldest history visits are dropped first).", rich_help_panel="teacher")] = 256,
    history: Annotated[int, typer.Option(help="teacher: earlier visits shown in the prompt (the last N).", rich_help_panel="teacher")] = 3,
    fuse_codes: Annotated[bool, typer.Option("--fuse-codes/--no-fuse-codes", help="teacher: add a linear term over the visit's code multi-hot (logistic-regression features) to the drug logits.", rich_help_panel="teacher")] = False,
    fuse_graph: Annotated[bool, typer.Option("--fuse-graph/--no-fuse-graph", help="teacher: add a linear term over the pooled graph vectors to the drug logits (cheap; works with --lora-r 0).", rich_help_panel="teacher")] = False,
    ddi_weight: Annotated[float, typer.Option(help="teacher: weight of the DDI penalty (0: off).", rich_help_panel="teacher")] = 0.0,
    mixed_precision: Annotated[str, typer.Option(help="teacher: no, bf16 or fp16 (GPU).", rich_help_panel="teacher")] = "no",
    alpha: Annotated[float, typer.Option(help="distill: weight of the feature-distillation MSE (0 with --beta 0: no teacher needed). Default chosen on validation folds.", rich_help_panel="student")] = 0.3,
    beta: Annotated[float, typer.Option(help="distill: weight of the soft-label term on the teacher's logits.", rich_help_panel="student")] = 0.5,
    temperature: Annotated[float, typer.Option(help="distill: temperature of the soft-label term.", rich_help_panel="student")] = 2.0,
    force: Annotated[bool, typer.Option(help="all: rerun every stage even when its outputs are current.")] = False,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="kge, gnn with --patients none: take the vectors from the shared cache of cohort-free graph vectors ($KGREC_CACHE, default ~/.cache/kgrec; KGREC_CACHE=off disables it), training them there once per graph and settings (docs/cache.md). --no-cache trains in the workspace.")] = True,
    device: Annotated[str, typer.Option(help="Where every stage trains: cpu, cuda (an error without a GPU) or auto (cuda where PyTorch sees a GPU). The device used is recorded in each stage's JSON.")] = "auto",
    recipe: Annotated[Recipe, typer.Option(help="kgrec: kgrec's own settings. leader: the LEADER paper's settings (all-linear LoRA, 2,048 tokens, full history, bf16 on a GPU, feature-only distillation at weight 0.4, the reference code's transformer student with profile encoder and alignment loss; docs/teacher.md, docs/student.md). Options given explicitly (other than their default) win over the recipe.")] = Recipe.kgrec,
    profile: Annotated[bool, typer.Option("--profile/--no-profile", help="teacher: the patient's profile line in the prompt. distill: the student's profile encoder and profile–visit alignment loss (LEADER). Default: off (the leader recipe turns both on).")] = False,
    pool: Annotated[list[str] | None, typer.Option("--pool", help="distill: pool other sites (repeat): a workspace made by `kgrec prepare`, or a source name already prepared into WORKSPACE/pool/NAME by `kgrec run --pool`. The student is then distilled from --teacher trained on this workspace's saved split plus every patient of those sites (site-aware), and deployed to WORKSPACE/student.", rich_help_panel="student", show_default=False)] = None,
    teacher: Annotated[str, typer.Option("--teacher", help="distill with --pool: the model to distil, by registry name (site-ensemble-names, site-ensemble, logreg-graph, teacher, ...).", rich_help_panel="student")] = "site-ensemble-names",
    json_out: JsonOut = False,
) -> None:
    """Train graph embeddings on the workspace graph and rank held-out drug -> disease indications.

    Needs `kgrec prepare` and `kgrec load-graph` first. 10% of the indication edges are held out;
    MRR and Hits@10 (filtered, type-restricted, both directions) are compared with a popularity
    baseline on the same edges. Vectors are saved as safetensors with their entity index. With
    --patients none they are trained once per graph and settings in the shared cache ($KGREC_CACHE)
    and reused by every workspace on the same open graph (docs/cache.md).

    --stage teacher trains the LEADER-style teacher on the saved split (early stopping on validation
    PRAUC), reports validation and test metrics, and saves it to WORKSPACE/teacher/.

    --stage distill trains the student on the saved split from the teacher's cached features and saves
    it to WORKSPACE/student/. --stage all chains kge, gnn, teacher and distill with their defaults and
    skips every stage whose outputs are newer than its inputs (rerun after an interruption to resume).
    """
    from kgrec.embed.device import resolve_device
    from kgrec.recipes import recipe_settings

    resolve_device(device)  # a bad or unavailable device fails here, before any stage writes
    r_teacher, r_student = recipe_settings(recipe.value)
    student_cfg = _student_settings(r_student, alpha, beta, temperature, seed, device, profile)
    # progress bars on a terminal; without one, start/progress/end lines on stderr (kgrec.cli.common.one_step)
    bars = not json_out and console.is_terminal
    if stage is Stage.distill and pool:
        res = one_step("distill", f"the student, distilled from the pooled {teacher}",
                       lambda sink: api.train_pooled_student(workspace, pool, teacher, seed=seed, device=device, progress=bars))
        _report_split("student (pooled, distilled from " + teacher + ")", res.to_json(), json_out)
        return
    if stage is Stage.distill:
        res = one_step("distill", "the student, distilled from the teacher", lambda sink: api.train_student(workspace, progress=bars, **student_cfg))
        _report_split("student", res.to_json(), json_out)
        return
    if stage is Stage.all:
        from kgrec.stages import run_all

        no_cache = {} if cache else {"cache": False}  # only when off: a default run keeps its stage settings
        settings = {
            "kge": {"patients": patients.value, "seed": seed, "device": device, **no_cache},
            "gnn": {"patients": patients.value, "seed": seed, "device": device, **no_cache},
            "teacher": _with_recipe(r_teacher, _teacher_settings(model, epochs, lr, batch_size, seed, lora_r, lora_alpha, lora_dropout, soft_tokens, graph_prompt, max_length, history, fuse_codes, fuse_graph, ddi_weight, mixed_precision), device, profile),
            "distill": student_cfg,
        }
        from kgrec.cli.common import stage_progress

        with stage_progress("training ...") as progress:  # without a terminal: a line per stage start and end
            out = run_all(workspace, settings, force=force, progress=progress)
        if json_out:
            emit_json(out.to_json())
        else:
            console.print(f"ran: {', '.join(out.ran) or 'nothing'}; skipped (current): {', '.join(out.skipped) or 'nothing'}")
            for st, sec in out.seconds.items():
                console.print(f"  {st}: {sec:.1f} s")
        return
    if stage is Stage.teacher:
        cfg = _with_recipe(r_teacher, _teacher_settings(model, epochs, lr, batch_size, seed, lora_r, lora_alpha, lora_dropout, soft_tokens, graph_prompt, max_length, history, fuse_codes, fuse_graph, ddi_weight, mixed_precision), device, profile)
        _train_teacher(workspace, cfg, json_out, bars)
        return
    if stage is Stage.kge:
        res = one_step("kge", "PyKEEN knowledge-graph embeddings", lambda sink: api.train_kge(
            workspace, model=model or "RotatE", dim=dim or 32, epochs=epochs or 30, lr=lr or 0.01, batch_size=batch_size, seed=seed,
            patients=patients.value, progress=bars, device=device, cache=cache))
    else:
        res = one_step("gnn", "R-GCN (PyG) link prediction", lambda sink: api.train_gnn(
            workspace, dim=dim or 64, epochs=epochs or 100, lr=lr or 0.01, init_from_kge=init_from_kge, seed=seed, patients=patients.value,
            progress=bars, device=device, cache=cache))
    if json_out:
        emit_json(res.to_json())
        return
    table = Table(title=f"{stage.value}: held-out indications ({res.metrics['n_triples']} edges)")
    table.add_column("metric")
    table.add_column(stage.value, justify="right")
    table.add_column("popularity", justify="right")
    for m in ("mrr", "hits_at_1", "hits_at_3", "hits_at_10", "auc"):
        table.add_row(m, f"{res.metrics[m]:.4f}", f"{res.baseline[m]:.4f}")
    show(table)
    if res.cache.get("used") and res.cache.get("hit"):
        console.print(f"vectors from the shared cache (trained in {res.cache.get('trained_seconds')} s on {res.device} when stored); saved in {res.path}")
    else:
        console.print(f"trained in {res.seconds:.1f} s on {res.device}; saved in {res.path}")


# the CLI defaults of the options a recipe may set (an option left at its default takes the recipe's value)
_TEACHER_DEFAULTS = dict(model="minilm", epochs=3, lr=1e-3, batch_size=8, lora_r=8, lora_alpha=16.0, lora_dropout=0.1, soft_tokens=4, graph_prompt=True,
                         max_length=256, history=3, fuse_codes=False, fuse_graph=False, ddi_weight=0.0, mixed_precision="no", profile=False)
_STUDENT_DEFAULTS = dict(alpha=0.3, beta=0.5, temperature=2.0, profile=False, align=False)


def _with_recipe(recipe: dict, cfg: dict, device: str, profile: bool) -> dict:
    from kgrec.recipes import merge

    return {**merge(recipe, {**cfg, "profile": profile}, _TEACHER_DEFAULTS), "device": device}


def _student_settings(recipe: dict, alpha: float, beta: float, temperature: float, seed: int, device: str, profile: bool) -> dict:
    from kgrec.recipes import merge

    explicit = {"alpha": alpha, "beta": beta, "temperature": temperature, "profile": profile, "align": profile}
    return {**merge(recipe, explicit, _STUDENT_DEFAULTS), "seed": seed, "device": device}


def _teacher_settings(model, epochs, lr, batch_size, seed, lora_r, lora_alpha, lora_dropout, soft_tokens, graph_prompt, max_length, history, fuse_codes, fuse_graph, ddi_weight, mixed_precision) -> dict:
    """The teacher options as :class:`~kgrec.teacher.TeacherConfig` fields (``--stage teacher`` and ``--stage all``)."""
    return dict(
        model=model or "minilm", epochs=epochs or 3, lr=lr or 1e-3, batch_size=batch_size or 8, seed=seed, lora_r=lora_r,
        lora_alpha=lora_alpha, lora_dropout=lora_dropout, soft_tokens=soft_tokens, graph_prompt=graph_prompt,
        max_length=max_length, history=history, fuse_codes=fuse_codes, fuse_graph=fuse_graph, ddi_weight=ddi_weight, mixed_precision=mixed_precision,
    )


def _train_teacher(workspace, cfg: dict, json_out: bool, bars: bool) -> None:
    from kgrec.metrics import METRICS

    res = one_step("teacher", "the language-model teacher", lambda sink: api.train_teacher(workspace, progress=bars, **cfg))
    if json_out:
        emit_json(res.to_json())
        return
    table = Table(title=f"teacher: saved split ({res.test.get('n_visits', 0)} test visits)")
    table.add_column("metric")
    table.add_column("validation", justify="right")
    table.add_column("test [95% CI]", justify="right")
    for m in METRICS:
        v, t = res.val.get("metrics", {}).get(m), res.test.get("metrics", {}).get(m)
        ci = res.test.get("intervals", {}).get(m)
        table.add_row(m, "–" if v is None else f"{v:.4f}", "–" if t is None else f"{t:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    show(table)
    c = res.chosen
    console.print(
        f"graph prompt: {'on' if c.get('graph_prompt') else 'off'}; LoRA on {', '.join(c.get('lora_targets') or []) or 'nothing (frozen)'}; "
        f"{c.get('epochs_run')} epochs (best {c.get('best_epoch')}), {c.get('seconds_per_epoch', '–')} s/epoch; threshold {c.get('threshold')}"
    )
    console.print(f"trained in {res.seconds:.1f} s; saved in {res.path}")


def _report_split(name: str, result: dict, json_out: bool) -> None:
    """Validation and test metrics of a model trained on the saved split (rank 0 alone, under
    `accelerate launch`: the other ranks wrote nothing and say nothing)."""
    from kgrec.student import ddp

    if not ddp.is_main():
        return
    if json_out:
        emit_json(result)
        return
    from kgrec.metrics import METRICS

    table = Table(title=f"{name}: saved split")
    table.add_column("metric")
    table.add_column("validation", justify="right")
    table.add_column("test", justify="right")
    val, test = result["validation"].get("metrics", {}), result["test"].get("metrics", {})
    for m in METRICS:
        table.add_row(m, f"{val.get(m, float('nan')):.4f}", f"{test.get(m, float('nan')):.4f}")
    show(table)
    console.print(f"trained in {result['train_seconds']:.1f} s; saved in {result['path']}")
