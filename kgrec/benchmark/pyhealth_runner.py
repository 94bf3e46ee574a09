"""Run PyHealth's drug-recommendation models on visits written by kgrec, and write back probabilities.

This file is a stand-alone script: it runs under the *PyHealth* virtual environment's Python (PyHealth
2.x, Python >= 3.12) and imports nothing from kgrec. kgrec writes a request file
(see :mod:`kgrec.benchmark.exchange`); this script writes, for every requested model::

    OUT/<model>/result.json   status "ok" or "error" (with the exception text and traceback),
                              train_seconds, infer_seconds (test; wall clock) and their CPU
                              times (*_cpu_seconds), peak memory, notes
    OUT/<model>/val.npy       (n_val, n_drugs) float32 probabilities, rows in request order,
    OUT/<model>/test.npy      columns in the request's drug vocabulary order

and ``OUT/runner.json`` with the versions it ran under. kgrec computes every metric itself.

What the models are given (and what PyHealth would otherwise fetch): the DDI matrix is the request's
(kgrec's ATC3 pairs, the same matrix kgrec's metrics use), not ``pyhealth.medcode.ATC().get_ddi()``,
which downloads from storage.googleapis.com; SafeDrug's and MoleRec's ATC3 -> SMILES come from the
request (kgrec's open-data ``mappings/atc3_smiles.tsv``, the SafeDrug resource) when it carries them,
else from PyHealth's own ATC resource (a download; offline that fails and the model's row says so).

Usage: python pyhealth_runner.py REQUEST.json OUT_DIR   (``--probe`` prints versions and exits)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback

import numpy as np

MODELS = ("GAMENet", "SafeDrug", "RETAIN", "MoleRec")


def _log(msg: str) -> None:
    print(f"[pyhealth-runner] {msg}", file=sys.stderr, flush=True)


def _write_json(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
    os.replace(tmp, path)


def versions() -> dict:
    out = {"python": platform.python_version(), "executable": sys.executable}
    try:
        import torch

        out["torch"] = torch.__version__
        out["cuda"] = bool(torch.cuda.is_available())
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        out["torch_error"] = f"{type(exc).__name__}: {exc}"
    try:
        import pyhealth

        out["pyhealth"] = getattr(pyhealth, "__version__", "?")
    except Exception as exc:  # noqa: BLE001
        out["pyhealth_error"] = f"{type(exc).__name__}: {exc}"
    return out


def build_dataset(request: dict):
    """One PyHealth SampleDataset over every sample (PyHealth's own practice: the task runs on the whole
    cohort, then the samples are split by patient); returns it and the indices of train/val/test."""
    from pyhealth.datasets import create_sample_dataset

    samples, parts = [], {"train": [], "val": [], "test": []}
    for i, s in enumerate(request["samples"]):
        samples.append({
            "patient_id": str(s["patient_id"]),
            "visit_id": str(s["visit_id"]),
            "conditions": s["conditions"],
            "procedures": s["procedures"],
            "drugs_hist": s["drugs_hist"],
            "drugs": s["drugs"],
        })
        parts[s["part"]].append(i)
    ds = create_sample_dataset(
        samples=samples,
        input_schema={"conditions": "nested_sequence", "procedures": "nested_sequence", "drugs_hist": "nested_sequence"},
        output_schema={"drugs": "multilabel"},
        dataset_name=request.get("dataset", "kgrec"),
        task_name="kgrec_drug_recommendation",
    )
    return ds, parts


def _label_vocab(model) -> dict:
    return model.dataset.output_processors["drugs"].label_vocab


def _ddi_adj(request: dict, label_vocab: dict):
    """The request's DDI pairs as a (n_labels, n_labels) tensor in PyHealth's label order."""
    import torch

    vocab = request["drug_vocab"]
    adj = torch.zeros((len(label_vocab), len(label_vocab)))
    for a, b in request["ddi_pairs"]:
        x, y = vocab[a], vocab[b]
        if x in label_vocab and y in label_vocab:
            adj[label_vocab[x], label_vocab[y]] = adj[label_vocab[y], label_vocab[x]] = 1
    return adj


def _smiles_list(request: dict, label_vocab: dict):
    """ATC3 -> SMILES in PyHealth's label order (first SMILES per class, as PyHealth itself does)."""
    table = request.get("smiles") or {}
    out = [[] for _ in range(len(label_vocab))]
    for atc3, smiles in table.items():
        if atc3 in label_vocab and smiles:
            out[label_vocab[atc3]] = list(smiles[:1])
    return out


def model_class(name: str, request: dict):
    """PyHealth's class, with its DDI (and SMILES, when the request has them) taken from the request."""
    import numpy as _np
    import pyhealth.models as pm
    import torch

    base = getattr(pm, name)
    use_smiles = bool(request.get("smiles"))

    class Fed(base):  # type: ignore[misc, valid-type]
        def generate_ddi_adj(self):
            adj = _ddi_adj(request, _label_vocab(self))
            if name == "MoleRec":
                return torch.FloatTensor(_np.asarray(adj))
            return adj

        if use_smiles:
            def generate_smiles_list(self):
                return _smiles_list(request, _label_vocab(self))

    Fed.__name__ = Fed.__qualname__ = name
    return Fed


def _predict(trainer, loader) -> tuple[np.ndarray, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    _, y_prob, _ = trainer.inference(loader)[:3]
    return np.asarray(y_prob, dtype=np.float32), time.perf_counter() - t0, time.process_time() - c0


def _to_request_order(prob: np.ndarray, label_vocab: dict, vocab: list[str]) -> np.ndarray:
    """Columns from PyHealth's label order to the request's drug vocabulary (0 for labels it lacks)."""
    out = np.zeros((prob.shape[0], len(vocab)), dtype=np.float32)
    for j, code in enumerate(vocab):
        k = label_vocab.get(code)
        if k is not None:
            out[:, j] = prob[:, k]
    return out


def run_model(name: str, request: dict, ds, parts: dict, out_dir: str) -> dict:
    import torch
    from pyhealth.datasets import get_dataloader
    from pyhealth.trainer import Trainer
    from torch.utils.data import Subset

    cfg = request.get("config", {})
    seed = int(cfg.get("seed", 42))
    torch.manual_seed(seed)
    np.random.seed(seed)
    notes: list[str] = []
    kwargs = dict(cfg.get("model_kwargs", {}).get(name, {}))
    t_build = time.perf_counter()
    model = model_class(name, request)(dataset=ds, **kwargs)
    build_s = time.perf_counter() - t_build
    label_vocab = _label_vocab(model)
    if name in ("SafeDrug", "MoleRec"):
        smiles = getattr(model, "all_smiles_list", None) or []
        covered = sum(1 for s in smiles if s)
        notes.append(f"SMILES for {covered}/{len(label_vocab)} drug classes ({'kgrec open data' if request.get('smiles') else 'PyHealth ATC resource'})")
        if name == "MoleRec" and not getattr(model, "has_valid_smiles", True):
            notes.append("MoleRec found no usable substructures: PyHealth fell back to its plain linear predictor")
    bs = int(cfg.get("batch_size", 64))
    loaders = {p: get_dataloader(Subset(ds, idx), batch_size=bs, shuffle=(p == "train")) for p, idx in parts.items() if idx}
    device = cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    trainer = Trainer(model=model, metrics=["pr_auc_samples"], device=device, enable_logging=False)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train(
        train_dataloader=loaders["train"],
        val_dataloader=loaders.get("val"),
        epochs=int(cfg.get("epochs", 20)),
        optimizer_params={"lr": float(cfg.get("lr", 1e-3))},
        monitor="pr_auc_samples" if "val" in loaders else None,
        patience=cfg.get("patience"),
    )
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    res = {"status": "ok", "train_seconds": round(train_s, 3), "train_cpu_seconds": round(train_cpu, 3), "build_seconds": round(build_s, 3), "device": device, "notes": notes,
           "n_labels": len(label_vocab), "n_params": int(sum(p.numel() for p in model.parameters()))}
    vocab = request["drug_vocab"]
    for part in ("val", "test"):
        if part not in loaders:
            np.save(os.path.join(out_dir, f"{part}.npy"), np.zeros((0, len(vocab)), np.float32))
            continue
        prob, dt, cpu = _predict(trainer, loaders[part])
        if prob.shape[0] != len(parts[part]):
            raise RuntimeError(f"{name}: {prob.shape[0]} {part} predictions for {len(parts[part])} visits")
        np.save(os.path.join(out_dir, f"{part}.npy"), _to_request_order(prob, label_vocab, vocab))
        res[f"{part}_infer_seconds"] = round(dt, 4)
        res[f"{part}_infer_cpu_seconds"] = round(cpu, 4)
    res["infer_seconds"] = res.get("test_infer_seconds")
    res["infer_cpu_seconds"] = res.get("test_infer_cpu_seconds")
    res["peak_rss_mb"] = peak_rss_mb()
    return res


def peak_rss_mb() -> float | None:
    """This process's resident-memory high-water mark so far (MB). In the runner, models run one after
    another, so it covers the dataset and every model trained up to now; kgrec's benchmark uses the same
    function for its in-process models. Linux: VmHWM of /proc/self/status (getrusage's ru_maxrss would
    report the parent's size at fork when that was larger); ru_maxrss on macOS; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("request", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--probe", action="store_true", help="print the versions as JSON and exit")
    args = ap.parse_args(argv)
    if args.probe:
        v = versions()
        print(json.dumps(v))
        return 0 if "pyhealth" in v and "torch" in v else 3
    if not args.request or not args.out:
        ap.error("REQUEST and OUT are required")
    with open(args.request) as f:
        request = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    info = {"versions": versions(), "models": {}}
    if "pyhealth_error" in info["versions"] or "torch_error" in info["versions"]:
        info["error"] = info["versions"].get("pyhealth_error") or info["versions"].get("torch_error")
        _write_json(os.path.join(args.out, "runner.json"), info)
        _log(f"cannot import PyHealth: {info['error']}")
        return 3
    _log(f"PyHealth {info['versions'].get('pyhealth')} torch {info['versions'].get('torch')} on Python {info['versions']['python']}")
    t0 = time.perf_counter()
    try:
        ds, parts = build_dataset(request)
    except Exception as exc:  # noqa: BLE001 - every model then fails with this reason
        info["error"] = f"building the PyHealth SampleDataset failed: {type(exc).__name__}: {exc}"
        info["traceback"] = traceback.format_exc()
        _write_json(os.path.join(args.out, "runner.json"), info)
        _log(info["error"])
        return 4
    info["dataset_seconds"] = round(time.perf_counter() - t0, 3)
    for name in request["models"]:
        mdir = os.path.join(args.out, name)
        os.makedirs(mdir, exist_ok=True)
        _log(f"{name}: training on {len(parts['train'])} visits")
        try:
            if name not in MODELS:
                raise ValueError(f"unknown PyHealth model {name!r}; this runner knows {', '.join(MODELS)}")
            res = run_model(name, request, ds, parts, mdir)
        except Exception as exc:  # noqa: BLE001 - the reason goes to the report
            res = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            _log(f"{name}: {res['error']}")
        _write_json(os.path.join(mdir, "result.json"), res)
        info["models"][name] = res["status"]
        _write_json(os.path.join(args.out, "runner.json"), info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
