"""`kgrec recommend`, `kgrec explain`, `kgrec build-rationales`, `kgrec train-rationales`, `kgrec serve`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from kgrec.cli.app import app
from kgrec.cli.common import (
    DEFAULT_WORKSPACE,
    JsonOut,
    Workspace,
    console,
    emit_json,
    handle_errors,
    show,
)
from kgrec.cli.graph import DatabaseOpt, PasswordOpt, UriOpt, UserOpt, _store_kw
from kgrec.errors import KgrecError


class ModelName(str, Enum):
    student = "student"
    teacher = "teacher"


VisitOpt = Annotated[str | None, typer.Option("--visit", help="A visit of the workspace cohort (its visit id, e.g. 100375).", show_default=False)]
PatientOpt = Annotated[Path | None, typer.Option("--patient", help="A new patient as JSON (schema: docs/explain.md).", show_default=False)]
ModelOpt = Annotated[ModelName, typer.Option("--model", help="The trained model that scores the drugs.")]
ThresholdOpt = Annotated[float | None, typer.Option("--threshold", min=0.0, max=1.0, help="Minimum probability (default: the model's tuned threshold; 0: plain top-k).", show_default=False)]
PathsOpt = Annotated[int, typer.Option("--paths", min=0, max=20, help="Rationale paths shown per drug (0: none).")]
CurrentOpt = Annotated[list[str] | None, typer.Option("--current-drugs", "--drugs", help="ATC codes the patient takes now (comma-separated or repeated): DDI screening.", show_default=False)]
StoreOpt = Annotated[str, typer.Option("--store", help="Graph store for the paths: embedded, neo4j, or none.")]
CodesOpt = Annotated[list[str] | None, typer.Option("--codes", help="A new patient's diagnosis codes, e.g. 428.0,250.00,I10 (comma-separated or repeated); the ICD version is read from each code's form.", show_default=False)]
ProcsOpt = Annotated[list[str] | None, typer.Option("--procedures", help="With --codes: procedure codes (ICD-9-CM or ICD-10-PCS).", show_default=False)]
AgeOpt = Annotated[float | None, typer.Option("--age", min=0, max=130, help="With --codes: age in years.", show_default=False)]
SexOpt = Annotated[str | None, typer.Option("--sex", help="With --codes: F or M.", show_default=False)]
IcdOpt = Annotated[int | None, typer.Option("--icd-version", min=9, max=10, help="With --codes: the ICD version of every plain code (default: read from each code; needed only where a code reads both ways, e.g. V58.61).", show_default=False)]


def _split(values: list[str] | None) -> list[str]:
    return [s.strip() for v in values or [] for s in v.split(",") if s.strip()]


def _service_args(store: str, uri, user, password, database) -> tuple[str | None, dict]:
    if store == "none":
        return None, {}
    return store, _store_kw(store, uri, user, password, database)


def _patient(visit: str | None, patient: Path | None, codes: list[str] | None = None, procedures: list[str] | None = None,
             age: float | None = None, sex: str | None = None, icd_version: int | None = None):
    """The new patient of --patient FILE.json, or of --codes/--procedures/--age/--sex (one line); None
    for --visit. Exactly one of the three ways is an error otherwise."""
    pat = _new_patient(patient, codes, procedures, age, sex, icd_version)
    if (visit is None) == (pat is None):
        raise KgrecError("give exactly one of --visit ID, --patient FILE.json or --codes CODES")
    return pat


def _new_patient(patient: Path | None, codes: list[str] | None, procedures: list[str] | None,
                 age: float | None, sex: str | None, icd_version: int | None):
    inline = codes is not None or procedures is not None
    if patient is not None and inline:
        raise KgrecError("give either --patient FILE.json or --codes/--procedures, not both")
    if not inline:
        if any(x is not None for x in (age, sex, icd_version)):
            raise KgrecError("--age, --sex and --icd-version go with --codes")
        if patient is None:
            return None
        from kgrec.explain.recommend import load_patient

        return load_patient(patient)
    items = {"--codes": codes or [], "--procedures": procedures or []}
    for opt, values in items.items():
        if any(not part.strip() for v in values for part in v.split(",")):
            raise KgrecError(f"{opt}: an empty item (two commas, or a trailing comma)")
    data = {"diagnoses": _split(codes), "procedures": _split(procedures), "age": age, "sex": sex, "icd_version": icd_version}
    from kgrec.explain.recommend import parse_patient

    return parse_patient({k: v for k, v in data.items() if v not in (None, [])})


def _show(res, verbose_paths: bool = True) -> None:
    v = res.visit
    title = f"visit {v['visit_id']} (patient {v['patient_id']})" if v["kind"] == "workspace" else f"patient {v.get('label', '')}"
    console.print(f"[bold]{escape(title)}[/]: {len(v['diagnoses'])} diagnoses, {len(v['procedures'])} procedures, {v['n_earlier_visits']} earlier visit(s); model {res.model}, threshold {res.threshold:.2f}")
    for u in res.unknown_codes:
        console.print(f"[yellow]unknown code[/] {escape(u['input'])} ({u['code']}): {u['reason']}", highlight=False)
    for n in res.notes:
        console.print(f"[yellow]note:[/] {escape(n)}", highlight=False)
    table = Table(title=f"recommended drugs (top {res.top_k})")
    table.add_column("#", justify="right")
    table.add_column("ATC3")
    table.add_column("drug class")
    table.add_column("p", justify="right")
    table.add_column("paths", justify="right")
    table.add_column("evidence")
    attributed = any(d.attribution is not None for d in res.drugs)
    if attributed:
        table.add_column("strongest inputs (logit weight)", overflow="fold")
    if v["kind"] == "workspace":
        table.add_column("prescribed", justify="center")
    for d in res.drugs:
        row = [str(d.rank), d.drug, escape(d.name) + (" (taking now)" if d.current else ""), f"{d.probability:.3f}" + ("" if d.above_threshold else " *"), str(d.n_paths),
               ", ".join(f"{k} {n}" for k, n in d.evidence_counts.items()) or "–"]
        if attributed:
            up = [c for c in (d.attribution.contributions if d.attribution else []) if c.weight > 0][:3]
            row.append(", ".join(f"{escape(c.input)} {c.weight:+.2f}" for c in up) or "–")
        if v["kind"] == "workspace":
            row.append("✓" if d.prescribed else "")
        table.add_row(*row)
    show(table)
    for w in res.ddi_warnings:
        show(f"[bold red]DDI[/] {escape(w['message'])}", highlight=False)
    for d in res.drugs:
        if d.evidence_gap:
            console.print(f"[yellow]{d.drug}[/]: {escape(d.evidence_gap)}", highlight=False)
    if verbose_paths:
        tree = Tree("[bold]rationale paths[/]")
        for d in res.drugs:
            if not d.paths and not d.cautions:
                continue
            br = tree.add(f"[bold]{d.drug}[/] {escape(d.name)} (p {d.probability:.2f})")
            for p in d.paths + d.cautions:
                why = f", starting code's attribution {p.extra['attribution']:+.2f}" if "attribution" in p.extra else ""
                node = br.add(f"[cyan]{p.kind}[/] score {p.score:.3f} (weight {p.weight:.2f} × specificity {p.specificity:.3f} × support {p.support}{why})" if p in d.paths else f"[red]caution[/] {p.kind} ({p.support} abstract(s))")
                node.add(_node_label(p.nodes[0]))
                for st, n in zip(p.steps, p.nodes[1:]):
                    arrow = f"-{st.type}->" if st.forward else f"<-{st.type}-"
                    srcs = "; ".join(f"{e.get('source')} [{e.get('licence')}]" for e in st.evidence)
                    node.add(f"[dim]{escape(arrow)}[/] {_node_label(n)}  [dim]({escape(srcs)})[/]")
                if p.examples:
                    node.add(f"[dim]also: {', '.join(p.examples)}[/]")
        if tree.children:
            show(tree)


def _node_label(n) -> str:
    return f"{n.label} [bold]{escape(n.id)}[/]" + (f" {escape(n.name)}" if n.name else "")


@app.command()
@handle_errors
def recommend(
    visit: VisitOpt = None,
    patient: PatientOpt = None,
    codes: CodesOpt = None,
    procedures: ProcsOpt = None,
    age: AgeOpt = None,
    sex: SexOpt = None,
    icd_version: IcdOpt = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
    model: ModelOpt = ModelName.student,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100, help="At most this many drugs.")] = 10,
    threshold: ThresholdOpt = None,
    paths: PathsOpt = 3,
    current_drugs: CurrentOpt = None,
    store: StoreOpt = "embedded",
    uri: UriOpt = None,
    user: UserOpt = None,
    password: PasswordOpt = None,
    database: DatabaseOpt = None,
    include_current: Annotated[bool, typer.Option("--include-current", help="List drugs the patient takes now (--drugs) too, marked; by default they are not recommended again.")] = False,
    attributions: Annotated[bool, typer.Option("--attributions/--no-attributions", help="Each input's contribution to each drug's score (occlusion); paths are then ranked by their starting code's attribution × their score.")] = True,
    json_out: JsonOut = False,
) -> None:
    """Recommend drug classes (ATC3) for a workspace visit or a new patient, with DDI warnings,
    the inputs that drove each score and rationale paths from the knowledge graph.

    One of --visit ID, --patient FILE.json, or a new patient in one line: --codes 428.0,250.00,401.9
    [--procedures 36.05] [--drugs C07A] [--age 71 --sex F]. The terminal shows a table (with each
    drug's strongest inputs) and a tree of paths (each step with its source and licence); --json
    prints the full structure.
    """
    pat = _patient(visit, patient, codes, procedures, age, sex, icd_version)
    from kgrec.explain.recommend import RecommendService

    st, kw = _service_args(store, uri, user, password, database)
    with RecommendService(workspace, model.value, st, kw) as svc:
        res = svc.recommend(visit, pat, top_k=top_k, threshold=threshold, paths_per_drug=paths, current_drugs=_split(current_drugs), attributions=attributions,
                            include_current=include_current)
    if json_out:
        emit_json(res.to_dict())
        return
    _show(res)


@app.command()
@handle_errors
def explain(
    visit: VisitOpt = None,
    patient: PatientOpt = None,
    codes: CodesOpt = None,
    procedures: ProcsOpt = None,
    age: AgeOpt = None,
    sex: SexOpt = None,
    icd_version: IcdOpt = None,
    drug: Annotated[list[str] | None, typer.Option("--drug", help="Drug class(es) to explain (ATC3; comma-separated or repeated). Default: the recommended ones.", show_default=False)] = None,
    workspace: Workspace = DEFAULT_WORKSPACE,
    model: ModelOpt = ModelName.student,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100, help="Without --drug: explain the top k recommendations.")] = 5,
    threshold: ThresholdOpt = None,
    paths: PathsOpt = 3,
    generator: Annotated[Path | None, typer.Option("--generator", help="A rationale generator trained by `kgrec train-rationales` (folder): adds its generated text, checked against the evidence.", show_default=False)] = None,
    store: StoreOpt = "embedded",
    uri: UriOpt = None,
    user: UserOpt = None,
    password: PasswordOpt = None,
    database: DatabaseOpt = None,
    json_out: JsonOut = False,
) -> None:
    """Natural-language rationale for the recommended drugs of a visit or patient (or for --drug).

    The text comes from the deterministic realiser: one sentence per rationale path, naming only the
    nodes of that path; it never states an edge that is not in the graph.
    """
    pat = _patient(visit, patient, codes, procedures, age, sex, icd_version)
    from kgrec.explain.recommend import RecommendService

    st, kw = _service_args(store, uri, user, password, database)
    with RecommendService(workspace, model.value, st, kw) as svc:
        res = svc.recommend(visit, pat, top_k=top_k, threshold=threshold, paths_per_drug=paths, drugs=_split(drug) or None)
    generated = {}
    if generator is not None:
        from kgrec.explain.generate import RationaleGenerator, record_for

        gen = RationaleGenerator.load(generator)
        for d in res.drugs:
            rec = record_for(res, d)
            generated[d.drug] = gen.generate_checked(rec)
    if json_out:
        out = {"visit": res.visit, "model": {"name": res.model, **res.model_info}, "notes": res.notes, "unknown_codes": res.unknown_codes,
               "rationales": [{"drug": d.drug, "name": d.name, "probability": round(d.probability, 4), "rationale": d.rationale,
                               **({"generated": generated[d.drug]} if d.drug in generated else {}),
                               "paths": [p.to_dict() for p in d.paths], "cautions": [p.to_dict() for p in d.cautions],
                               **({"attribution": d.attribution.to_dict(), "evidence_gap": d.evidence_gap} if d.attribution is not None else {})} for d in res.drugs]}
        emit_json(out)
        return
    for u in res.unknown_codes:
        console.print(f"[yellow]unknown code[/] {escape(u['input'])} ({u['code']}): {u['reason']}", highlight=False)
    for n in res.notes:
        console.print(f"[yellow]note:[/] {escape(n)}", highlight=False)
    for d in res.drugs:
        show(f"\n[bold]{d.drug}[/] {escape(d.name)}", highlight=False)
        if d.attribution is not None:
            top = ", ".join(f"{escape(c.name or c.input)} ({escape(c.input)}) {c.weight:+.2f}" for c in d.attribution.top(3, kinds=("diagnosis", "procedure", "earlier_drug", "profile", "graph_prior")))
            show(f"[dim]the model's strongest inputs (logit weight):[/] {top or '–'}", highlight=False)
            if d.evidence_gap:
                show(f"[yellow]{escape(d.evidence_gap)}[/]", highlight=False)
        show(escape(d.rationale), highlight=False)
        if d.drug in generated:
            g = generated[d.drug]
            flag = "" if not g["hallucinated"] else f" [red](names absent from the evidence: {escape(', '.join(g['hallucinated']))})[/]"
            show(f"[dim]generated:[/] {escape(g['text'])}{flag}", highlight=False)


@app.command("build-rationales")
@handle_errors
def build_rationales(
    workspace: Workspace = DEFAULT_WORKSPACE,
    out: Annotated[Path | None, typer.Option("--out", help="JSONL file (default: WORKSPACE/rationales/rationales.jsonl).", show_default=False)] = None,
    drugs_per_visit: Annotated[int, typer.Option(min=1, max=50, help="At most this many prescribed drugs per visit (those with the best paths).")] = 5,
    paths: PathsOpt = 3,
    variants: Annotated[bool, typer.Option("--variants/--no-variants", help="Reference rationales in one of several template phrasings (deterministic per record) instead of always the default.")] = True,
    json_out: JsonOut = False,
) -> None:
    """Write an expRxRec-like rationale dataset: one JSON line per (visit, prescribed drug) with paths.

    Each record: the visit context (diagnoses, procedures, earlier drugs), the drug, its evidence
    paths and a reference rationale realised from them; the split is the cohort's saved patient split.
    """
    from kgrec.explain.generate import build_rationales as build

    res = build(workspace, out, drugs_per_visit=drugs_per_visit, paths_per_drug=paths, variants=variants)
    if json_out:
        emit_json(res)
        return
    console.print(f"{res['n_records']} rationales from {res['n_visits']} visits ({res['by_split']}); written to {res['path']}")


@app.command("train-rationales")
@handle_errors
def train_rationales(
    dataset: Annotated[Path, typer.Option("--dataset", help="JSONL from `kgrec build-rationales`.")],
    model: Annotated[str, typer.Option("--model", help="Any Hugging Face causal or seq2seq LM: a local folder or a hub id (offline runs need a local folder).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the LoRA adapter, tokenizer and evaluation.")],
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 3,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 5e-4,
    lora_r: Annotated[int, typer.Option(help="LoRA rank (0: full fine-tuning, e.g. for a model trained from scratch).")] = 8,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    max_eval: Annotated[int, typer.Option(help="Held-out records generated for ROUGE (test split).")] = 200,
    json_out: JsonOut = False,
) -> None:
    """Fine-tune a language model (LoRA) on the rationale dataset; ROUGE-1/2/L on held-out references
    and the share of generated rationales naming drugs or diseases absent from their evidence."""
    from kgrec.explain.generate import GeneratorConfig, train_generator

    res = train_generator(dataset, model, out, GeneratorConfig(epochs=epochs, lr=lr, lora_r=lora_r, batch_size=batch_size, max_eval=max_eval), progress=not json_out)
    if json_out:
        emit_json(res)
        return
    ev = res["evaluation"]
    console.print(f"ROUGE-1 {ev['rouge1']:.3f}  ROUGE-2 {ev['rouge2']:.3f}  ROUGE-L {ev['rougeL']:.3f} on {ev['n']} held-out rationales; "
                  f"{ev['hallucination_rate']:.1%} name an entity absent from their evidence; saved in {res['path']}")


@app.command()
@handle_errors
def serve(
    workspace: Workspace = DEFAULT_WORKSPACE,
    host: Annotated[str, typer.Option(help="Interface to bind (default loopback only; another address exposes patient data to the network).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    model: ModelOpt = ModelName.student,
    store: StoreOpt = "embedded",
    uri: UriOpt = None,
    user: UserOpt = None,
    password: PasswordOpt = None,
    database: DatabaseOpt = None,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", help="Another name the service may be reached by (repeat), e.g. the machine's name behind --host 0.0.0.0. Requests whose Host header names anything else get 400 (DNS-rebinding protection); 127.0.0.1, localhost and ::1 always work.", show_default=False)] = None,
) -> None:
    """HTTP service and web page: POST /recommend, POST /explain, GET /health, the page at / (OpenAPI at /docs and /openapi.json).

    The model and the graph store are loaded once, before the port is opened (a workspace it cannot serve
    is one line and exit code 2). Only requests addressed to 127.0.0.1, localhost, ::1, --host and
    --allow-host names are answered; a request's headers and its body must each arrive within 10 s.
    """
    import uvicorn

    from kgrec.explain.recommend import RecommendService
    from kgrec.serve.app import create_app
    from kgrec.serve.server import HeaderDeadlineProtocol, allowed_hosts

    st, kw = _service_args(store, uri, user, password, database)
    svc = RecommendService(workspace, model.value, st, kw)  # errors here are the CLI's one-line errors
    try:
        application = create_app(workspace, model.value, st, kw, service=svc, allowed_hosts=allowed_hosts(host, allow_host or ()))
        console.print(f"kgrec serve: web page http://{host}:{port}/ (API: /docs)", markup=False)
        import logging

        handler = logging.StreamHandler()  # one line per request on stderr: method, path, status, time (no patient data)
        handler.setFormatter(logging.Formatter("%(asctime)s kgrec.serve %(message)s"))
        logging.getLogger("kgrec.serve").addHandler(handler)
        logging.getLogger("kgrec.serve").setLevel(logging.INFO)
        uvicorn.run(application, host=host, port=port, log_level="warning", http=HeaderDeadlineProtocol)
    finally:
        svc.close()
