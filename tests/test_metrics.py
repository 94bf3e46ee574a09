"""Metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.metrics import ddi_counts, evaluate_predictions, per_visit

# 4 drugs; visit 0: truth {0,1}, predicted {1,2}; visit 1: truth {3}, predicted nothing;
# visit 2: truth {0,1,2}, predicted {0,1,2}.
Y = np.array([[1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 1, 0]], bool)
P = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 0]], bool)
PROB = np.array([[0.2, 0.9, 0.8, 0.1], [0.3, 0.2, 0.1, 0.05], [0.9, 0.8, 0.7, 0.1]])
DDI = np.zeros((4, 4), int)
DDI[1, 2] = DDI[2, 1] = 1


def test_per_visit_hand_values():
    m = per_visit(Y, PROB, P)
    # visit 0: |∩|=1, |∪|=3 -> J=1/3; P=1/2, R=1/2, F1=1/2
    # visit 1: empty prediction -> all zero; visit 2: perfect
    np.testing.assert_allclose(m["jaccard"], [1 / 3, 0, 1])
    np.testing.assert_allclose(m["precision"], [0.5, 0, 1])
    np.testing.assert_allclose(m["recall"], [0.5, 0, 1])
    np.testing.assert_allclose(m["f1"], [0.5, 0, 1])
    np.testing.assert_allclose(m["n_meds"], [2, 0, 3])
    # AP visit 0: ranking 1(+),2(-),0(+),3(-): (1/1 + 2/3)/2 = 5/6; visit 1: drug 3 ranked last -> 1/4
    np.testing.assert_allclose(m["prauc"], [5 / 6, 1 / 4, 1])


def test_ddi_rate_is_pooled_pairs():
    bad, pairs = ddi_counts(P, DDI)
    # visit 0 predicts {1,2}: 1 pair, interacting; visit 2 predicts {0,1,2}: 3 pairs, one interacting
    np.testing.assert_allclose(bad, [1, 0, 1])
    np.testing.assert_allclose(pairs, [1, 0, 3])
    res = evaluate_predictions(Y, PROB, P, DDI)
    assert res["metrics"]["ddi_rate"] == pytest.approx(2 / 4)
    assert res["metrics"]["jaccard"] == pytest.approx((1 / 3 + 0 + 1) / 3)


def test_no_pairs_gives_zero_ddi_and_groups_split():
    empty = np.zeros_like(P)
    res = evaluate_predictions(Y, PROB, empty, DDI, single_visit=np.array([True, False, False]))
    assert res["metrics"]["ddi_rate"] == 0.0
    assert res["metrics"]["jaccard"] == 0.0
    assert res["groups"]["single_visit"]["n_visits"] == 1
    assert res["groups"]["multi_visit"]["metrics"]["prauc"] == pytest.approx((1 / 4 + 1) / 2)


def test_bootstrap_interval_contains_estimate_and_resamples_patients():
    rng = np.random.default_rng(0)
    y = rng.random((40, 6)) > 0.5
    y[:, 0] = True
    prob = np.clip(y + rng.normal(0, 0.6, y.shape), 0, 1)
    pred = prob > 0.5
    patients = np.repeat(np.arange(10), 4)
    res = evaluate_predictions(y, prob, pred, patients=patients, n_boot=300)
    for m in ("jaccard", "prauc", "f1"):
        lo, hi = res["intervals"][m]
        assert lo <= res["metrics"][m] <= hi and hi - lo > 0
    # one patient only: every resample is identical, the interval collapses
    res1 = evaluate_predictions(y, prob, pred, patients=np.zeros(40), n_boot=50)
    lo, hi = res1["intervals"]["jaccard"]
    assert lo == pytest.approx(hi)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        per_visit(Y, None, P[:, :3])


def test_average_precision_rows_is_scikit_learns_per_row():
    """The vectorised per-visit PRAUC equals scikit-learn's average_precision_score row by row, with tied
    scores (coarse grids), rows of one positive, all positives, and none (0 by kgrec's rule)."""
    from sklearn.metrics import average_precision_score

    from kgrec.metrics.medrec import average_precision_rows

    rng = np.random.default_rng(3)
    for grid in (None, 2, 5, 20):
        y = rng.random((300, 40)) < rng.uniform(0.02, 0.6, size=(300, 1))
        y[0] = False
        y[1] = True
        y[2] = False
        y[2, 7] = True
        p = rng.random((300, 40))
        if grid:
            p = np.round(p * grid) / grid  # many ties
        got = average_precision_rows(y, p)
        want = np.array([average_precision_score(y[i], p[i]) if y[i].any() else 0.0 for i in range(len(y))])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert average_precision_rows(np.zeros((0, 5), bool), np.zeros((0, 5))).shape == (0,)
    with pytest.raises(ValueError, match="differ in shape"):
        average_precision_rows(np.zeros((2, 3), bool), np.zeros((2, 4)))
