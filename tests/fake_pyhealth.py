"""A stand-in for kgrec's PyHealth runner (``kgrec/benchmark/pyhealth_runner.py``), shared by the benchmark
and transfer tests: same arguments, same output layout, no PyHealth.

``python fake_runner.py [CALLS] REQUEST OUT``: with ``CALLS``, one JSON line per call is appended there
(models, config, counts, request folder, patients per part). Each model predicts every drug's training
share (floored at .01), raised for the drugs the visit's history prescribed and, for code ``...N``, for drug
``A0NA`` (a per-visit signal on tests/test_evaluation.py's synthetic cohort). "SafeDrug" writes the wrong
shape and "RETAIN" fails the way a model that cannot run does.
"""

import textwrap

FAKE_RUNNER = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    *calls, req_path, out = sys.argv[1:]
    req = json.load(open(req_path))
    if calls:
        with open(calls[0], "a") as fh:
            fh.write(json.dumps({"models": req["models"], "config": req["config"], "counts": req["counts"], "dir": os.path.dirname(req_path),
                                 "patients": {p: sorted({s["patient_id"] for s in req["samples"] if s["part"] == p}) for p in ("train", "val", "test")}}) + "\\n")
    os.makedirs(out, exist_ok=True)
    vocab = req["drug_vocab"]
    idx = {d: j for j, d in enumerate(vocab)}
    parts = {p: [s for s in req["samples"] if s["part"] == p] for p in ("train", "val", "test")}
    prior = np.full(len(vocab), 0.01)
    for s in parts["train"]:
        for d in s["drugs"]:
            prior[idx[d]] += 1
    prior /= max(len(parts["train"]), 1)
    def proba(samples):
        p = np.tile(prior, (len(samples), 1))
        for i, s in enumerate(samples):
            raised = {d for v in s["drugs_hist"] for d in v} | {"A0" + code[-1] + "A" for code in s["conditions"][-1]}
            for d in raised:
                if d in idx:
                    p[i, idx[d]] = 0.5 + 0.5 * p[i, idx[d]]
        return p.astype(np.float32)
    for name in req["models"]:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        if name == "RETAIN":
            res = {"status": "error", "error": "ImportError: fake RETAIN cannot import its layer"}
        elif name == "SafeDrug":
            np.save(os.path.join(d, "val.npy"), np.zeros((1, 1), np.float32))
            np.save(os.path.join(d, "test.npy"), np.zeros((1, 1), np.float32))
            res = {"status": "ok", "train_seconds": 0.1, "infer_seconds": 0.01}
        else:
            np.save(os.path.join(d, "val.npy"), proba(parts["val"]))
            np.save(os.path.join(d, "test.npy"), proba(parts["test"]))
            res = {"status": "ok", "train_seconds": 1.5, "infer_seconds": 0.02, "n_params": 7, "notes": ["fake runner"]}
        json.dump(res, open(os.path.join(d, "result.json"), "w"))
    json.dump({"versions": {"pyhealth": "fake", "torch": "none", "python": "x"}, "models": {}}, open(os.path.join(out, "runner.json"), "w"))
''')
