"""Train the teacher (LoRA on a tiny random Llama) on a synthetic cohort and write what the run did:
directly (one process) or under ``accelerate launch --multi_gpu --num_processes N`` (DDP through
accelerate; gloo on CPUs). Used by tests/test_distributed.py.

    python tests/dist/train_teacher.py MODEL_DIR OUT
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kgrec.cohort.samples import build_samples  # noqa: E402
from kgrec.metrics import per_visit  # noqa: E402
from kgrec.teacher.config import TeacherConfig  # noqa: E402
from kgrec.teacher.recommender import TeacherRecommender  # noqa: E402
from tests.test_evaluation import synthetic_cohort  # noqa: E402


def main(model: str, out: Path) -> None:
    c = synthetic_cohort(60, seed=2)
    train, val, test = (build_samples(c, c.split[k]) for k in ("train", "val", "test"))
    cfg = TeacherConfig(model=model, epochs=2, max_length=48, batch_size=8, lora_r=2, graph_prompt=False, lr=5e-3, seed=0, device="cpu")
    rec = TeacherRecommender(c.vocab("drug"), cfg, workspace=None, progress=False).fit(c, train, val)
    p = rec.predict_proba(c, test)
    prauc = float(per_visit(rec.targets(test), p, p > 0.5)["prauc"].mean())
    trained = {n: t.detach() for n, t in rec.net.named_parameters() if t.requires_grad}
    sha = hashlib.sha256(b"".join(trained[n].contiguous().numpy().tobytes() for n in sorted(trained))).hexdigest()
    acc = rec.accelerator
    rank = acc.process_index
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world": acc.num_processes, "prauc": prauc, "weights_sha256": sha,
                                                      "epochs": len(rec.log), "env_world": os.environ.get("WORLD_SIZE")}))
    acc.wait_for_everyone()
    if acc.is_main_process:
        rec.save(out / "model")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
