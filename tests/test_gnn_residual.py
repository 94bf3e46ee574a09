"""The residual GNN decoder over the KGE: it starts as the KGE, and validation keeps it there unless it does better."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.embed.export import export_graph
from kgrec.errors import WorkspaceError
from kgrec.metrics.ranking import rank_evaluate
from tests.test_embed import structured_graph


@pytest.fixture(scope="module")
def export():
    return export_graph(structured_graph(), patients="none", seed=42)


@pytest.fixture(scope="module")
def kge(export):
    from kgrec.embed.kge import train_kge

    return train_kge(export, dim=8, epochs=15, batch_size=256, lr=0.02, progress=False, device="cpu")


def _gnn(export, kge, **kw):
    from kgrec.embed.gnn import train_gnn

    args = {"dim": 8, "epochs": 5, "eval_every": 5, "progress": False, "device": "cpu", **kw}
    return train_gnn(export, kge=kge, **args)


def test_epoch0_is_exactly_the_kge(export, kge):
    """No training: the residual decoder ranks the test indications as PyKEEN's own model did (same floats)."""
    res = _gnn(export, kge, epochs=0)
    assert res.metrics["checkpoint"] == "kge" and res.metrics["best_epoch"] == 0
    for m in ("mrr", "hits_at_1", "hits_at_10", "tail_mrr", "head_mrr"):
        assert res.metrics[m] == pytest.approx(kge.metrics[m], abs=1e-7), m
    assert res.metrics["kge_mrr_test"] == pytest.approx(kge.metrics["mrr"], abs=1e-7)
    assert res.metrics["kge_mrr_valid"] == res.metrics["valid_mrr"]
    assert res.config["decoder"] == "kge_residual" and res.config["kge_model"] == "RotatE" and res.config["init"] == "kge"
    assert res.config["degree_prior"] is True and res.decoder["gate"].tolist() == [0.0]
    import torch

    from kgrec.embed.kge import KGEScore

    ks, h, t = KGEScore(kge, export.target_relation), torch.as_tensor(export.test[:, 0]), torch.as_tensor(export.test[:, 2])
    assert torch.allclose(ks.pairs(h, t), ks.block(h, "tail", t).diagonal()) and torch.allclose(ks.pairs(h, t), ks.block(t, "head", h).diagonal())


def test_kge_score_is_pykeens_for_a_real_valued_model(export):
    from kgrec.embed.kge import train_kge

    k = train_kge(export, model="TransE", dim=8, epochs=3, batch_size=256, progress=False, device="cpu")
    assert _gnn(export, k, epochs=0).metrics["mrr"] == pytest.approx(k.metrics["mrr"], abs=1e-7)


def test_validation_keeps_the_kge_when_training_does_not_help(export, kge, monkeypatch):
    """Validation says every trained checkpoint is worse: the epoch-0 state (the KGE) is restored, to the float."""
    import kgrec.embed.gnn as gnn

    real, said = gnn.rank_evaluate, iter([0.5, 0.4, 0.3])

    def fake(score_fn, ex, which, **kw):
        out = real(score_fn, ex, which, **kw)
        return {**out, "mrr": next(said)} if which == "valid" else out

    monkeypatch.setattr(gnn, "rank_evaluate", fake)
    res = _gnn(export, kge, epochs=10, lr=0.05, patience=0)
    assert [h["epoch"] for h in res.config["validation"]] == [0, 5, 10]
    assert res.metrics["checkpoint"] == "kge" and res.metrics["best_epoch"] == 0 and res.metrics["valid_mrr"] == 0.5
    assert res.decoder["gate"].tolist() == [0.0] and res.decoder["degree_weight"].tolist() == [0.0, 0.0]
    assert res.metrics["mrr"] == res.metrics["kge_mrr_test"] == pytest.approx(kge.metrics["mrr"], abs=1e-7)


def test_chosen_checkpoint_is_never_below_the_kge_on_validation(export, kge):
    res = _gnn(export, kge, epochs=15, lr=0.05)
    assert res.metrics["valid_mrr"] >= res.metrics["kge_mrr_valid"]
    best = max(res.config["validation"], key=lambda h: h["valid_mrr"])
    assert res.metrics["best_epoch"] == best["epoch"]
    assert res.metrics["checkpoint"] == ("kge" if best["epoch"] == 0 else "gnn")
    assert res.entity_vectors.shape == (len(export.entities), 8)


def test_save_load_round_trip_reproduces_the_ranking(export, kge, tmp_path):
    from kgrec.embed.gnn import GNNResult

    res = _gnn(export, kge, epochs=5, lr=0.05, eval_every=0)  # no validation: the trained weights are kept
    assert res.decoder["gate"][0] != 0.0
    back = GNNResult.load(res.save(tmp_path / "gnn"))
    assert back.config == res.config and back.metrics == res.metrics
    assert set(back.decoder) == {"gate", "degree_weight"} and np.array_equal(back.decoder["gate"], res.decoder["gate"])
    assert rank_evaluate(back.scorer(export, kge=kge), export, "test", seed=42)["mrr"] == pytest.approx(res.metrics["mrr"], abs=1e-7)
    with pytest.raises(ValueError, match="kge="):
        back.scorer(export)


def test_plain_results_still_load_and_score(export, tmp_path):
    from kgrec.embed.gnn import GNNResult, train_gnn

    res = train_gnn(export, dim=8, epochs=5, progress=False, device="cpu")
    assert res.config["decoder"] == "distmult" and res.config["degree_prior"] is False and res.decoder == {}
    folder = res.save(tmp_path / "plain")
    back = GNNResult.load(folder)
    assert back.decoder == {}
    assert rank_evaluate(back.scorer(export), export, "test", seed=42)["mrr"] == pytest.approx(res.metrics["mrr"], abs=1e-7)


def test_inputs_are_checked_and_the_callers_vectors_untouched(export, kge):
    from kgrec.embed.gnn import train_gnn
    from kgrec.embed.kge import KGEResult, KGEScore

    before = kge.entity_vectors.copy()
    _gnn(export, kge, epochs=2, init_vectors=kge.entity_vectors, eval_every=0)
    train_gnn(export, dim=8, epochs=2, init_vectors=kge.entity_vectors, progress=False, device="cpu")
    assert np.array_equal(kge.entity_vectors, before)
    with pytest.raises(ValueError, match="init_vectors differ"):
        _gnn(export, kge, init_vectors=kge.entity_vectors + 1)
    other = KGEResult(kge.entity_vectors[:-1], kge.relation_vectors, kge.entities[:-1], kge.relations, {}, kge.config)
    with pytest.raises(WorkspaceError, match="do not match"):
        _gnn(export, other)
    odd = KGEResult(kge.entity_vectors, kge.relation_vectors, kge.entities, kge.relations, {}, {**kge.config, "model": "ConvE"})
    with pytest.raises(ValueError, match="ConvE"):
        KGEScore(odd, export.target_relation)
