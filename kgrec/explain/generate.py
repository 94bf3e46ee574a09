"""Generative rationales (KEDRec-LM style): dataset, LoRA fine-tuning, ROUGE, hallucination check.

1. :func:`build_rationales` (``kgrec build-rationales``) writes an expRxRec-like JSONL: one record per
   (visit, prescribed drug class) that the graph can explain, with the visit context, the drug, its
   best evidence paths, and a reference rationale realised from those paths by the deterministic
   realiser (one of :data:`~kgrec.explain.realise.N_VARIANTS` phrasings, chosen from a hash of the
   record id, so the references are not all alike). ``split`` is the cohort's saved patient split.
2. :func:`train_generator` (``kgrec train-rationales``) fine-tunes any Hugging Face causal or seq2seq
   LM (a local folder or a hub id) with LoRA (PEFT) to map the linearised input
   (:func:`source_text`: drug, diagnoses, evidence paths) to the reference; ``lora_r=0`` trains all
   weights (for a small model trained from scratch). It then generates rationales for held-out
   records (the test split) and reports ROUGE-1/2/L (:mod:`kgrec.metrics.text`) and the hallucination
   check.
3. Hallucination check (:class:`EntityLexicon`): the drug and disease names of the whole dataset
   (nodes labelled Drug, Ingredient, Chemical, Disease, DiagnosisCode), and the ids of the drug classes
   and diagnosis codes (``B01A``, ``ICD9CM:4280``), are searched in a generated text, longest first,
   on word boundaries, case-insensitively; one found in the text but absent from that record's own
   evidence (its paths' nodes and its drug) is flagged. A rationale with a flag names a drug or
   disease its evidence does not contain.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from kgrec.errors import InputError, KgrecError, WorkspaceError
from kgrec.explain.paths import EvidencePath, Node, Step, select
from kgrec.explain.realise import N_VARIANTS, realise_drug

ENTITY_LABELS = ("Drug", "Ingredient", "Chemical", "Disease", "DiagnosisCode")
ID_LABELS = ("Drug", "DiagnosisCode")  # their ids (B01A, ICD9CM:4280) appear in rationales too
MIN_NAME_LEN = 4


# ------------------------------------------------------------------------------------ dataset
def _variant(record_id: str) -> int:
    return int(hashlib.sha1(record_id.encode()).hexdigest()[:8], 16) % N_VARIANTS


def _path_json(p: EvidencePath) -> dict:
    """The compact evidence form kept in a record (enough to rebuild the path and realise it)."""
    return {
        "kind": p.kind, "score": round(p.score, 4), "support": p.support, "examples": p.examples, "extra": p.extra,
        "nodes": [n.to_dict() for n in p.nodes],
        "steps": [{"type": s.type, "forward": s.forward, "evidence": s.evidence} for s in p.steps],
    }


def path_from_json(d: dict, drug: str) -> EvidencePath:
    nodes = [Node(n["id"], n["label"], n.get("name", "")) for n in d["nodes"]]
    steps = [Step(s["type"], bool(s["forward"]), list(s.get("evidence", []))) for s in d["steps"]]
    return EvidencePath(drug=drug, kind=d["kind"], nodes=nodes, steps=steps, support=int(d.get("support", 1)),
                        examples=list(d.get("examples", [])), score=float(d.get("score", 0.0)), extra=dict(d.get("extra") or {}))


def make_record(record_id: str, split: str, context: dict, drug: Node, paths: Sequence[EvidencePath], cautions: Sequence[EvidencePath] = (), variants: bool = True) -> dict:
    v = _variant(record_id) if variants else 0
    ref = realise_drug(drug, paths, cautions, None, variant=v, header=False).text
    return {
        "id": record_id, "split": split, "context": context, "drug": drug.to_dict(),
        "evidence": [_path_json(p) for p in paths], "cautions": [_path_json(p) for p in cautions],
        "reference": ref, "variant": v,
    }


def record_for(res: Any, d: Any) -> dict:
    """A dataset-like record for one drug of a :class:`~kgrec.explain.recommend.Recommendation`."""
    v = res.visit
    ctx = {"diagnoses": v.get("diagnoses", []), "procedures": v.get("procedures", []), "earlier_drugs": []}
    rid = f"{v.get('graph_id') or v.get('label', 'patient')}/{d.drug}"
    return make_record(rid, "inference", ctx, Node(d.drug, "Drug", d.name), d.paths, d.cautions, variants=False)


def build_rationales(workspace: Path | str, out: Path | str | None = None, drugs_per_visit: int = 5, paths_per_drug: int = 3,
                     variants: bool = True, store: str = "embedded", store_kw: dict | None = None, limit: int | None = None) -> dict:
    """Write ``<workspace>/rationales/rationales.jsonl`` (or ``out``); returns a summary dict."""
    from kgrec.workspace import load_cohort
    from kgrec.explain.paths import PathFinder
    from kgrec.graph.stores import get_store

    ws = Path(workspace)
    cohort = load_cohort(ws)
    out = Path(out) if out else ws / "rationales" / "rationales.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    names = cohort.names()
    split_of: dict[str, str] = {}
    for part in ("train", "val", "test"):
        for pid in (cohort.split or {}).get(part, []):
            split_of[str(pid)] = part
    kw = dict(store_kw or {})
    if store == "embedded":
        kw = {"workspace": ws, "read_only": True, **kw}
    v = cohort.visits
    mask = cohort.eval_mask()
    n_rec, n_vis, by_split = 0, 0, {}
    tmp = out.with_name(out.name + ".tmp")
    t0 = time.perf_counter()
    with get_store(store, **kw) as st, tmp.open("w", encoding="utf-8") as fh:
        finder = PathFinder(st, ws / "graph" / "tables")
        rows = [i for i in range(len(v)) if mask[i]]
        if limit:
            rows = rows[:limit]
        for i in rows:
            pid, vid = str(v["patient_id"].iat[i]), str(v["visit_id"].iat[i])
            drugs = list(dict.fromkeys(v["drugs"].iat[i]))
            dx = list(v["diagnoses"].iat[i])
            own = [f"{cohort.source}:{x}" for x in v.loc[v["patient_id"] == v["patient_id"].iat[i], "visit_id"]]
            ev = finder.for_visit(f"{cohort.source}:{vid}", drugs, dx, own)
            ranked = sorted((e for e in ev.values() if e.paths), key=lambda e: -e.paths[0].score)[:drugs_per_visit]
            if not ranked:
                continue
            order = int(v["visit_order"].iat[i])
            earlier = v[(v["patient_id"] == v["patient_id"].iat[i]) & (v["visit_order"] < order)]
            ctx = {
                "diagnoses": [{"code": c, "name": names.get(c, "")} for c in dx],
                "procedures": [{"code": c, "name": names.get(c, "")} for c in v["procedures"].iat[i]],
                "earlier_drugs": sorted({d for ds in earlier["drugs"] for d in ds}),
            }
            split = split_of.get(pid, "train")
            n_vis += 1
            for e in ranked:
                rec = make_record(f"{cohort.source}:{vid}/{e.drug}", split, ctx, Node(e.drug, "Drug", names.get(e.drug, e.drug)),
                                  select(e.paths, paths_per_drug), e.cautions[:1], variants)
                rec.update(visit_id=vid, patient_id=pid)
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n_rec += 1
                by_split[split] = by_split.get(split, 0) + 1
    tmp.replace(out)
    return {"path": str(out), "n_records": n_rec, "n_visits": n_vis, "by_split": by_split, "seconds": round(time.perf_counter() - t0, 2)}


def read_records(path: Path | str) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise InputError("rationale dataset not found (run `kgrec build-rationales`)", path=p)
    out = []
    for k, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON ({exc.msg})", path=p, line=k) from None
        for key in ("drug", "evidence", "reference"):
            if key not in rec:
                raise InputError(f"record has no {key!r}", path=p, line=k)
        out.append(rec)
    if not out:
        raise InputError("no records", path=p)
    return out


# ------------------------------------------------------------------------------------ model input
def _n(node: dict) -> str:
    return (node.get("name") or node["id"]).strip()


def source_text(rec: dict, max_paths: int = 3, max_codes: int = 8) -> str:
    """The linearised input: drug, diagnoses, then each evidence path as names and relation types."""
    drug = rec["drug"]
    parts = [f"drug: {_n(drug)} ({drug['id']})"]
    dx = [d.get("name") or d["code"] for d in rec.get("context", {}).get("diagnoses", [])[:max_codes]]
    if dx:
        parts.append("diagnoses: " + "; ".join(dx))
    for k, p in enumerate(rec["evidence"][:max_paths] + rec.get("cautions", [])[:1]):
        seq = []
        nodes = [n for n in p["nodes"]]
        for i, n in enumerate(nodes):
            if n["label"] == "Visit":
                label = f"visit {n['id']}"
            elif n["label"] in ("DiagnosisCode", "Drug"):
                label = f"{_n(n)} ({n['id']})" if _n(n) != n["id"] else n["id"]
            elif n["label"] in ("Trial", "Publication"):
                label = f"{n['label'].lower()} {n['id']}"
            else:
                label = _n(n)
            seq.append(label)
            if i < len(p["steps"]):
                st = p["steps"][i]
                rel = st["type"].lower()
                if st["type"] == "INDICATION":
                    rel = next((e.get("kind") for e in st["evidence"] if e.get("kind")), "indication")
                srcs = ",".join(sorted({str(e.get("source")) for e in st["evidence"] if e.get("source")}))
                seq.append(f"-{rel}[{srcs}]->" if st["forward"] else f"<-{rel}[{srcs}]-")
        extra = f" (support {p.get('support', 1)})" if p.get("support", 1) > 1 else ""
        parts.append(f"{p['kind']}{extra}: " + " ".join(seq))
    return " | ".join(parts)


# ------------------------------------------------------------------------------------ hallucination
class EntityLexicon:
    """Drug and disease names of a set of records, for the hallucination check."""

    def __init__(self, records: Sequence[dict], extra_names: Sequence[str] = ()):
        names = {n.lower() for n in extra_names if len(n) >= MIN_NAME_LEN}
        for rec in records:
            names |= record_names(rec)
        self.names = sorted(names, key=lambda s: (-len(s), s))
        self._pattern = re.compile("|".join(r"(?<![a-z0-9])" + re.escape(n) + r"(?![a-z0-9])" for n in self.names)) if self.names else None

    def find(self, text: str) -> list[str]:
        """Lexicon names in ``text``, longest match first (a name inside a longer match is not counted)."""
        if self._pattern is None:
            return []
        return sorted({m.group(0) for m in self._pattern.finditer(text.lower())})

    def check(self, text: str, rec: dict) -> list[str]:
        """Names of drugs/diseases in ``text`` that the record's evidence does not contain."""
        allowed = record_names(rec)
        return [n for n in self.find(text) if n not in allowed]


def record_names(rec: dict) -> set[str]:
    """Lower-cased names of the record's drug and evidence entities, and the ids of its drug classes and
    diagnosis codes (``b01a``, ``icd9cm:4280``: a rationale naming another code is flagged too)."""
    out = set()
    drug = {"label": "Drug", **(rec.get("drug") or {})}
    for n in [drug, *(n for p in rec.get("evidence", []) + rec.get("cautions", []) for n in p["nodes"])]:
        if n and n.get("label") in ENTITY_LABELS:
            name = (n.get("name") or "").strip().lower()
            if len(name) >= MIN_NAME_LEN:
                out.add(name)
            if n.get("label") in ID_LABELS and n.get("id"):
                out.add(str(n["id"]).lower())
    return out


# ------------------------------------------------------------------------------------ model
@dataclass
class GeneratorConfig:
    epochs: int = 3
    lr: float = 5e-4
    lora_r: int = 8  # 0: train every weight
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    batch_size: int = 8
    max_source_len: int = 256
    max_target_len: int = 128
    max_new_tokens: int = 128
    max_eval: int = 200
    seed: int = 42

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.lora_r < 0 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be ≥ 1, lora_r ≥ 0, lr > 0")

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _special_ids(tok) -> tuple[int, int, int]:
    """(eos, pad, separator) token ids for any tokenizer (BERT-style ones have [SEP]/[PAD], no EOS)."""
    eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    if eos is None:
        raise KgrecError("the tokenizer has neither an EOS nor a SEP token")
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    sep = tok.sep_token_id if tok.sep_token_id is not None else eos
    return eos, pad, sep


class RationaleGenerator:
    """A fine-tuned LM (causal or seq2seq, optionally with a LoRA adapter) that writes rationales."""

    def __init__(self, model, tokenizer, causal: bool, config: GeneratorConfig, base: str, lexicon: EntityLexicon | None = None):
        self.model, self.tok, self.causal, self.config, self.base = model, tokenizer, causal, config, base
        self.eos, self.pad, self.sep = _special_ids(tokenizer)
        self.tok.model_max_length = 1 << 30  # inputs are truncated here, by token count (no length warning)
        self.lexicon = lexicon

    # ---------------- encoding
    def _ids(self, text: str, max_len: int, keep: str = "left") -> list[int]:
        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        return ids[:max_len] if keep == "left" else ids[-max_len:]

    def _train_example(self, rec: dict) -> tuple[list[int], list[int]]:
        src = self._ids(source_text(rec), self.config.max_source_len)
        tgt = self._ids(rec["reference"], self.config.max_target_len) + [self.eos]
        if self.causal:
            ids = src + [self.sep] + tgt
            return ids, [-100] * (len(src) + 1) + tgt
        return src + [self.eos], tgt

    def _batch(self, examples: list[tuple[list[int], list[int]]]):
        import torch

        if self.causal:
            n = max(len(a) for a, _ in examples)
            ids = torch.full((len(examples), n), self.pad, dtype=torch.long)
            lab = torch.full((len(examples), n), -100, dtype=torch.long)
            att = torch.zeros((len(examples), n), dtype=torch.long)
            for i, (a, b) in enumerate(examples):
                ids[i, : len(a)] = torch.as_tensor(a)
                lab[i, : len(b)] = torch.as_tensor(b)
                att[i, : len(a)] = 1
            return {"input_ids": ids, "attention_mask": att, "labels": lab}
        n = max(len(a) for a, _ in examples)
        m = max(len(b) for _, b in examples)
        ids = torch.full((len(examples), n), self.pad, dtype=torch.long)
        att = torch.zeros((len(examples), n), dtype=torch.long)
        lab = torch.full((len(examples), m), -100, dtype=torch.long)
        for i, (a, b) in enumerate(examples):
            ids[i, : len(a)] = torch.as_tensor(a)
            att[i, : len(a)] = 1
            lab[i, : len(b)] = torch.as_tensor(b)
        return {"input_ids": ids, "attention_mask": att, "labels": lab}

    # ---------------- training
    def fit(self, records: Sequence[dict], progress: bool = False) -> list[float]:
        import torch

        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = random.Random(cfg.seed)
        examples = [self._train_example(r) for r in records]
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        steps = cfg.epochs * math.ceil(len(examples) / cfg.batch_size)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * max(0.0, 1 - s / max(steps, 1)) + 1e-3)
        losses = []
        self.model.train()
        from rich.progress import Progress

        with Progress(transient=True, disable=not progress) as bar:
            task = bar.add_task("rationale LM", total=steps)
            for _ in range(cfg.epochs):
                order = list(range(len(examples)))
                rng.shuffle(order)
                total, n = 0.0, 0
                for s in range(0, len(order), cfg.batch_size):
                    batch = self._batch([examples[i] for i in order[s:s + cfg.batch_size]])
                    loss = self.model(**batch).loss
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                    sched.step()
                    total += float(loss.detach())
                    n += 1
                    bar.advance(task)
                losses.append(total / max(n, 1))
        self.model.eval()
        return losses

    # ---------------- generation
    def generate(self, records: Sequence[dict], batch_size: int = 8) -> list[str]:
        import torch

        out: list[str] = []
        self.model.eval()
        for s in range(0, len(records), batch_size):
            chunk = records[s:s + batch_size]
            srcs = [self._ids(source_text(r), self.config.max_source_len) for r in chunk]
            with torch.no_grad():
                if self.causal:
                    seqs = [a + [self.sep] for a in srcs]
                    n = max(len(a) for a in seqs)
                    ids = torch.full((len(seqs), n), self.pad, dtype=torch.long)
                    att = torch.zeros((len(seqs), n), dtype=torch.long)
                    for i, a in enumerate(seqs):  # left padding for generation
                        ids[i, n - len(a):] = torch.as_tensor(a)
                        att[i, n - len(a):] = 1
                    gen = self.model.generate(input_ids=ids, attention_mask=att, max_new_tokens=self.config.max_new_tokens, do_sample=False,
                                              eos_token_id=self.eos, pad_token_id=self.pad)
                    new = gen[:, n:]
                else:
                    seqs = [a + [self.eos] for a in srcs]
                    n = max(len(a) for a in seqs)
                    ids = torch.full((len(seqs), n), self.pad, dtype=torch.long)
                    att = torch.zeros((len(seqs), n), dtype=torch.long)
                    for i, a in enumerate(seqs):
                        ids[i, : len(a)] = torch.as_tensor(a)
                        att[i, : len(a)] = 1
                    new = self.model.generate(input_ids=ids, attention_mask=att, max_new_tokens=self.config.max_new_tokens, do_sample=False,
                                              eos_token_id=self.eos, pad_token_id=self.pad)
            for row in new.tolist():
                if self.eos in row:
                    row = row[: row.index(self.eos)]
                row = [t for t in row if t != self.pad]
                out.append(self.tok.decode(row, skip_special_tokens=True).strip())
        return out

    def generate_checked(self, rec: dict) -> dict:
        text = self.generate([rec])[0]
        lex = self.lexicon or EntityLexicon([rec])
        return {"text": text, "hallucinated": lex.check(text, rec)}

    # ---------------- persistence
    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sub = folder / ("adapter" if self.config.lora_r > 0 else "model")
        self.model.save_pretrained(sub)
        self.tok.save_pretrained(folder / "tokenizer")
        meta = {"base": self.base, "causal": self.causal, "config": asdict(self.config),
                "lexicon": self.lexicon.names if self.lexicon else []}
        (folder / "generator.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> RationaleGenerator:
        from transformers import AutoTokenizer

        folder = Path(folder)
        if not (folder / "generator.json").exists():
            raise WorkspaceError(f"no rationale generator in {folder}: run `kgrec train-rationales`")
        meta = json.loads((folder / "generator.json").read_text())
        cfg = GeneratorConfig.from_dict(meta["config"])
        tok = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        if cfg.lora_r > 0:
            from peft import PeftModel

            base = _load_lm(meta["base"], meta["causal"])
            model = PeftModel.from_pretrained(base, str(folder / "adapter"))
        else:
            model = _load_lm(str(folder / "model"), meta["causal"])
        model.eval()
        lex = EntityLexicon([], meta.get("lexicon", [])) if meta.get("lexicon") else None
        return cls(model, tok, bool(meta["causal"]), cfg, meta["base"], lex)


def _is_causal(path: str) -> bool:
    from transformers import AutoConfig

    return not bool(getattr(AutoConfig.from_pretrained(path), "is_encoder_decoder", False))


def _load_lm(path: str, causal: bool):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return (AutoModelForCausalLM if causal else AutoModelForSeq2SeqLM).from_pretrained(path)
    except OSError as exc:
        raise KgrecError(f"cannot load the language model {path!r} ({str(exc).splitlines()[0]}); offline runs need a local folder") from None


def _with_lora(model, causal: bool, cfg: GeneratorConfig):
    from peft import LoraConfig, TaskType, get_peft_model

    task = TaskType.CAUSAL_LM if causal else TaskType.SEQ_2_SEQ_LM
    try:
        return get_peft_model(model, LoraConfig(task_type=task, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout))
    except ValueError:  # an architecture PEFT has no default target modules for
        return get_peft_model(model, LoraConfig(task_type=task, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules="all-linear"))


def split_records(records: Sequence[dict], seed: int = 42) -> tuple[list[dict], list[dict]]:
    """(train, held-out): the test split when the records have one, else 10% of the records."""
    train = [r for r in records if r.get("split") in ("train", "val")]
    test = [r for r in records if r.get("split") == "test"]
    if not test or not train:
        rs = list(records)
        random.Random(seed).shuffle(rs)
        k = max(1, len(rs) // 10)
        return rs[k:], rs[:k]
    return train, test


def evaluate_texts(generated: Sequence[str], records: Sequence[dict], lexicon: EntityLexicon) -> dict:
    from kgrec.metrics.text import rouge_corpus

    refs = [r["reference"] for r in records]
    scores = rouge_corpus(list(generated), refs)
    flags = [lexicon.check(g, r) for g, r in zip(generated, records)]
    n = len(generated)
    return {**{k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()},
            "hallucination_rate": round(sum(1 for f in flags if f) / n, 4) if n else 0.0,
            "n_hallucinated": sum(1 for f in flags if f), "flags": flags}


def train_generator(dataset: Path | str, model: str, out: Path | str, config: GeneratorConfig | None = None, progress: bool = False) -> dict:
    """Fine-tune ``model`` on the dataset, evaluate on held-out records, save to ``out``."""
    from transformers import AutoTokenizer

    cfg = config or GeneratorConfig()
    records = read_records(dataset)
    train, test = split_records(records, cfg.seed)
    from kgrec.teacher.model import resolve_model_path

    path = resolve_model_path(model)
    causal = _is_causal(path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise KgrecError(f"no tokenizer for {model!r} ({str(exc).splitlines()[0]})") from None
    lm = _load_lm(path, causal)
    if cfg.lora_r > 0:
        lm = _with_lora(lm, causal, cfg)
    lexicon = EntityLexicon(records)
    gen = RationaleGenerator(lm, tok, causal, cfg, path, lexicon)
    t0 = time.perf_counter()
    losses = gen.fit(train, progress=progress)
    t1 = time.perf_counter()
    held = test[: cfg.max_eval]
    texts = gen.generate(held)
    ev = evaluate_texts(texts, held, lexicon)
    out = Path(out)
    gen.save(out)
    samples = [{"id": r["id"], "reference": r["reference"], "generated": g, "hallucinated": f}
               for r, g, f in list(zip(held, texts, ev["flags"]))[:20]]
    ev.pop("flags")
    res = {"path": str(out), "model": path, "causal": causal, "lora_r": cfg.lora_r, "n_train": len(train), "n_heldout": len(held),
           "train_seconds": round(t1 - t0, 1), "losses": [round(x, 4) for x in losses], "evaluation": ev, "samples": samples}
    (out / "evaluation.json").write_text(json.dumps(res, indent=1))
    return res


def realiser_baseline(records: Sequence[dict], variant: int = 0) -> dict:
    """ROUGE of the deterministic realiser (one fixed phrasing) against the references: what a
    generator must beat to be worth its cost."""
    texts = []
    for r in records:
        paths = [path_from_json(p, r["drug"]["id"]) for p in r["evidence"]]
        cautions = [path_from_json(p, r["drug"]["id"]) for p in r.get("cautions", [])]
        d = r["drug"]
        texts.append(realise_drug(Node(d["id"], "Drug", d.get("name", "")), paths, cautions, None, variant=variant, header=False).text)
    ev = evaluate_texts(texts, records, EntityLexicon(records))
    ev.pop("flags")
    return ev


__all__ = [
    "EntityLexicon", "GeneratorConfig", "RationaleGenerator", "build_rationales", "evaluate_texts", "make_record", "path_from_json",
    "read_records", "realiser_baseline", "record_for", "source_text", "split_records", "train_generator",
]
