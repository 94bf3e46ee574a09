#!/usr/bin/env bash
# The whole kgrec pipeline on one GPU with a tiny Llama, in a few minutes: checks that every training
# stage really runs on cuda (and says so in its JSON), with the LEADER recipe's settings (all-linear
# LoRA, bf16, profile prompt, transformer student).
#
#   KGREC_DATA=/path/to/shared/data scripts/gpu_check.sh [WORKDIR]
#   KGREC_CHECK_DEVICE=cpu scripts/gpu_check.sh      # the same pipeline on the CPU (a dry run of the script)
#
# The Llama is random weights from transformers.LlamaConfig (2 layers, hidden 64), saved with
# save_pretrained into WORKDIR/tiny-llama with a byte-level tokenizer trained on the fly from the demo's
# code names (no hub access). The numbers it prints are not results (random weights): it checks devices,
# dtypes and that nothing falls back to the CPU. Exit code 0 = every stage ran on cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
KGREC=${KGREC:-.venv/bin/kgrec}
WORK=${1:-$(mktemp -d /tmp/kgrec-gpu-check.XXXXXX)}
: "${KGREC_DATA:?set KGREC_DATA to the open-data folder}"
DEVICE=${KGREC_CHECK_DEVICE:-cuda}
export KGREC_DATA DEVICE HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$WORK"
start=$(date +%s)

"$PY" - "$WORK" <<'EOF'
import os, sys, torch
if os.environ["DEVICE"] == "cuda":
    assert torch.cuda.is_available(), "no CUDA GPU visible to PyTorch: this check needs one (KGREC_CHECK_DEVICE=cpu for a dry run)"
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}")
from pathlib import Path
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
out = Path(sys.argv[1]) / "tiny-llama"
tok = Tokenizer(models.BPE(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
text = ["The patient has 3 visits. In this visit the patient has diagnoses: hypertension, sepsis, heart failure; "
        "procedures: insertion of stent; and was prescribed: antithrombotic agents, diuretics. aged 70 female male"] * 50
tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                                   initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
cfg = LlamaConfig(vocab_size=fast.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=2048, pad_token_id=fast.pad_token_id,
                  bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
torch.manual_seed(0)
LlamaForCausalLM(cfg).save_pretrained(out)
fast.save_pretrained(out)
print(f"tiny Llama saved in {out}")
EOF

WS="$WORK/ws"
"$KGREC" prepare -s mimic3 -w "$WS" --json > "$WORK/prepare.json"
"$KGREC" load-graph -w "$WS" --json > "$WORK/graph.json"
"$KGREC" train --stage kge -w "$WS" --epochs 5 --device "$DEVICE" --json > "$WORK/kge.json"
"$KGREC" train --stage gnn -w "$WS" --epochs 10 --device "$DEVICE" --json > "$WORK/gnn.json"
"$KGREC" train --stage teacher -w "$WS" --recipe leader --model "$WORK/tiny-llama" --epochs 1 --device "$DEVICE" --json > "$WORK/teacher.json"
"$KGREC" train --stage distill -w "$WS" --recipe leader --device "$DEVICE" --json > "$WORK/distill.json"
"$KGREC" evaluate -w "$WS" -m logreg -m student --folds 2 --json > "$WORK/evaluate.json"

"$PY" - "$WORK" <<'EOF'
import json, os, sys
from pathlib import Path
want = os.environ["DEVICE"]
w = Path(sys.argv[1])
kge = json.loads((w / "ws/embed/kge/metrics.json").read_text())["config"]
gnn = json.loads((w / "ws/embed/gnn/metrics.json").read_text())["config"]
teacher = json.loads((w / "teacher.json").read_text())
distill = json.loads((w / "distill.json").read_text())
rows = {"kge": kge.get("device"), "gnn": gnn.get("device"), "teacher": teacher.get("chosen", {}).get("device"),
        "distill": distill.get("chosen", {}).get("device")}
for k, v in rows.items():
    print(f"{k:8s} device {v}")
print("teacher LoRA targets:", teacher.get("chosen", {}).get("lora_targets"), "max_length:", teacher.get("chosen", {}).get("max_length"))
bad = [k for k, v in rows.items() if not str(v).startswith(want)]
if bad:
    sys.exit(f"FAILED: {', '.join(bad)} did not run on {want}")
print(f"OK: every training stage ran on {want}")
EOF
echo "gpu_check: $(( $(date +%s) - start )) s (work folder $WORK)"
