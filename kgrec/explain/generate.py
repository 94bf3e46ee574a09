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

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from kgrec.errors import KgrecError, WorkspaceError
from kgrec.explain.paths import Node
from kgrec.explain.realise import realise_drug
from kgrec.explain.dataset import (  # noqa: F401 - re-exported: the dataset half lives in kgrec.explain.dataset
    ENTITY_LABELS,
    ID_LABELS,
    MIN_NAME_LEN,
    EntityLexicon,
    build_rationales,
    make_record,
    path_from_json,
    read_records,
    record_for,
    record_names,
    source_text,
)


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
