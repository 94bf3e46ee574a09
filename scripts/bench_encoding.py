#!/usr/bin/env python
"""What one frozen-backbone encoding costs, on a workspace's real prompts (docs/teacher.md, "Encoding cost").

    python scripts/bench_encoding.py -w WS [-w WS2 ...] [--max-visits 300] [--batch 64] [--int8] [--onnx]

For each workspace: the CPU teacher's prompts of its visits (the prompts ``kgrec run`` encodes), their
token lengths, and the backbone's throughput in visits/s, batches grouped by length, no encoding store:

* PyTorch fp32 (what kgrec runs);
* ``--int8``: PyTorch dynamic int8 quantisation of the linear layers, per-tensor and per-channel
  weights, with the cosine of its pooled states to fp32's;
* ``--onnx``: ONNX Runtime fp32 and int8 (per-channel weights), when ``onnxruntime`` and ``onnx`` are
  installed (they are not kgrec dependencies), with the same cosine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def prompts(workspace: str, limit: int) -> list[list[int]]:
    from kgrec.cohort.samples import build_samples
    from kgrec.teacher import TeacherRecommender
    from kgrec.teacher.cache import no_state_cache
    from kgrec.teacher.config import CPU_TEACHER, TeacherConfig
    from kgrec.workspace import load_cohort

    c = load_cohort(workspace)
    s = build_samples(c, sorted(set(c.visits["patient_id"])))
    t = TeacherRecommender(c.vocab("drug"), TeacherConfig(**CPU_TEACHER), workspace=workspace, cache=False)
    t.use_graph = t.use_prompt = False
    t._setup_backbone()
    with no_state_cache():
        ids = t._token_ids(c, s)
    return ids[:limit] if limit else ids


def batches(ids: list[list[int]], size: int):
    import numpy as np

    order = np.argsort([len(x) for x in ids], kind="stable")
    for s in range(0, len(order), size):
        idx = order[s:s + size]
        width = max(len(ids[i]) for i in idx)
        x = np.zeros((len(idx), width), np.int64)
        m = np.zeros((len(idx), width), np.int64)
        for r, i in enumerate(idx):
            x[r, :len(ids[i])], m[r, :len(ids[i])] = ids[i], 1
        yield idx, x, m


def timed(encode, ids, size: int):
    import numpy as np

    out = None
    t0 = time.perf_counter()
    for idx, x, m in batches(ids, size):
        states = encode(x, m)
        out = np.zeros((len(ids), states.shape[1]), np.float32) if out is None else out
        out[idx] = states
    return out, len(ids) / (time.perf_counter() - t0)


def cosine(a, b):
    import numpy as np

    c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"mean": round(float(c.mean()), 4), "min": round(float(c.min()), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--workspace", action="append", required=True)
    p.add_argument("--max-visits", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--int8", action="store_true")
    p.add_argument("--onnx", action="store_true")
    args = p.parse_args()

    import numpy as np
    import torch

    from kgrec.teacher import model as M

    backbone, _, causal = M.load_backbone(None)
    net = M.TeacherModel(backbone.eval(), causal, 1)

    def torch_encode(model):
        def enc(x, m):
            with torch.no_grad():
                return model.encode(torch.from_numpy(x), torch.from_numpy(m)).float().numpy()
        return enc

    out = {}
    for ws in args.workspace:
        ids = prompts(ws, args.max_visits)
        lengths = np.array([len(x) for x in ids])
        row = {"visits": len(ids), "tokens_mean": round(float(lengths.mean()), 1), "tokens_p50": float(np.median(lengths)), "tokens_max": int(lengths.max())}
        base, row["torch_fp32_visits_per_s"] = timed(torch_encode(net), ids, args.batch)
        if args.int8:
            from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

            for name, qc in (("per_tensor", default_dynamic_qconfig), ("per_channel", per_channel_dynamic_qconfig)):
                q = quantize_dynamic(M.TeacherModel(M.load_backbone(None)[0].eval(), causal, 1), qconfig_spec={torch.nn.Linear: qc}, dtype=torch.qint8)
                states, row[f"torch_int8_{name}_visits_per_s"] = timed(torch_encode(q), ids, args.batch)
                row[f"torch_int8_{name}_cosine"] = cosine(states, base)
        if args.onnx:
            row.update(onnx_rows(net, ids, args.batch, base))
        out[ws] = {k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}
        print(ws, json.dumps(out[ws]), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


def onnx_rows(net, ids, size: int, base) -> dict:
    import torch

    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return {"onnx": "onnxruntime is not installed (pip install onnxruntime onnx)"}

    class Pooled(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def forward(self, ids, mask):
            return self.n.encode(ids, mask)

    row = {}
    with tempfile.TemporaryDirectory() as d:
        f32, i8 = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        x = torch.ones((2, 16), dtype=torch.long)
        torch.onnx.export(Pooled(net).eval(), (x, x), str(f32), input_names=["ids", "mask"], output_names=["pooled"],
                          dynamic_axes={"ids": {0: "b", 1: "t"}, "mask": {0: "b", 1: "t"}, "pooled": {0: "b"}}, opset_version=17, dynamo=False)
        quantize_dynamic(str(f32), str(i8), weight_type=QuantType.QInt8, per_channel=True, extra_options={"DefaultTensorType": 1})
        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()
        for name, path in (("onnx_fp32", f32), ("onnx_int8_per_channel", i8)):
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            states, row[f"{name}_visits_per_s"] = timed(lambda a, b: sess.run(None, {"ids": a, "mask": b})[0], ids, size)
            row[f"{name}_cosine"] = cosine(states, base)
    return row


if __name__ == "__main__":
    main()
