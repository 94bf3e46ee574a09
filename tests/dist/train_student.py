"""Train the student on a synthetic cohort and write what the run did: run directly (one process) or
under ``accelerate launch --multi_gpu --num_processes N`` (DDP; on CPUs over gloo). Used by tests/test_distributed.py.

    python tests/dist/train_student.py OUT            # one process
    accelerate launch --multi_gpu --num_processes 2 tests/dist/train_student.py OUT   # CPUs: gloo
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
from kgrec.student import ddp  # noqa: E402
from kgrec.student.train import StudentConfig, StudentRecommender  # noqa: E402
from tests.test_evaluation import synthetic_cohort  # noqa: E402


def main(out: Path, batch_size: int = 64) -> None:
    if os.environ.get("KGREC_TEST_KILL_RANK") == os.environ.get("RANK", "0") and ddp.world_size() > 1:
        # the test's "a rank dies mid-epoch": this rank exits hard at its 5th optimiser step
        steps = {"n": 0}
        average = ddp.average_gradients

        def dying(params, n):
            steps["n"] += 1
            if steps["n"] == 5:
                os._exit(3)
            average(params, n)

        ddp.average_gradients = dying
    c = synthetic_cohort(120, seed=1)
    train, val, test = (build_samples(c, c.split[k]) for k in ("train", "val", "test"))
    cfg = StudentConfig(alpha=0, beta=0, graph=False, dim=16, epochs=60, patience=15, batch_size=batch_size, seed=0)
    m = StudentRecommender(c.vocab("drug"), None, cfg, progress=False).fit(c, train, val)
    p = m.predict_proba(c, test)
    y = m.targets(test)
    prauc = float(per_visit(y, p, p > 0.5)["prauc"].mean())
    rank = os.environ.get("RANK", "0")
    state = m.model.state_dict()
    sha = hashlib.sha256(b"".join(state[k].detach().cpu().contiguous().numpy().tobytes() for k in sorted(state))).hexdigest()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world": ddp.world_size(), "prauc": prauc, "weights_sha256": sha,
                                                      "epochs": len(m.history), "chosen": m.chosen}, default=str))
    ddp.barrier()
    if ddp.is_main():
        m.save(out / "model")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 64)
