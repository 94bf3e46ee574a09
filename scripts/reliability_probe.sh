#!/usr/bin/env bash
# The third-pass reliability probe (docs/reliability.md, issue 26): each case as a user meets it, one line
# per case: exit code, lines on stderr, first line.
#
#   KGREC_DATA=../shared/data scripts/reliability_probe.sh CHECKOUT WORKSPACE [PYTHON]
#
# CHECKOUT: the kgrec checkout to test (put on PYTHONPATH, so an older commit's worktree works with this
# venv); WORKSPACE: a workspace after `kgrec run` (cohort, graph, student); PYTHON: default .venv/bin/python.
set -u
REPO=$(cd "$1" && pwd); WS=$(cd "$2" && pwd); PY=${3:-$(pwd)/.venv/bin/python}
T=$(mktemp -d); cd "$T" || exit 1; touch afile
run() { local name=$1; shift; PYTHONPATH=$REPO "$PY" -m kgrec "$@" > out.txt 2> err.txt; local rc=$?
        printf "%s | exit %s | %s lines | %s\n" "$name" "$rc" "$(wc -l < err.txt)" "$(grep -v '^\s*$' err.txt | head -1 | cut -c1-160)"; }
run "-w a regular file" prepare -s mimic3 -w afile
run "-w under a regular file" prepare -s mimic3 -w afile/ws
cp -r "$KGREC_DATA/mimic-iii-demo" m3; tr '\n' '\r' < "$KGREC_DATA/mimic-iii-demo/ADMISSIONS.csv" > m3/ADMISSIONS.csv
run "CR-only line endings" prepare -s mimic3 -w ws1 --source-dir m3
run "markup in a visit id" recommend -w "$WS" --visit ':x:-:warning:'
run "workspace path with emoji codes" recommend -w 'no:thumbs_up:dir' --visit 1
"$PY" - <<'PY'
import torch
from transformers import BertConfig, BertModel
m = BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
m.save_pretrained("pkl")
import os; os.remove("pkl/model.safetensors"); torch.save(m.state_dict(), "pkl/pytorch_model.bin")
open("pkl/vocab.txt", "w").write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(59)]))
PY
cp -r "$WS" wscopy
run "pickle-only backbone" train --stage teacher -w wscopy --model pkl --no-graph-prompt
VISIT=$("$PY" -c "import pandas as pd; print(pd.read_parquet('$WS/cohort/visits.parquet')['visit_id'].iat[0])")
PYTHONPATH=$REPO "$PY" -m kgrec recommend -w "$WS" --visit "$VISIT" --current-drugs Z99Z --json > cur.json 2>/dev/null
echo "current drug Z99Z | $("$PY" -c "import json; d=json.load(open('cur.json')); print(d['visit']['current_drugs'], [n for n in d.get('notes', []) if 'Z99Z' in n])")"
mkdir empty
PYTHONPATH=$REPO timeout 60 "$PY" -m kgrec serve -w empty --port 8791 > out.txt 2> err.txt
echo "serve without a cohort | exit $? | $(wc -l < err.txt) lines | $(grep -v '^\s*$' err.txt | head -1 | cut -c1-160)"
(PYTHONPATH=$REPO timeout 90 "$PY" -m kgrec serve -w "$WS" --port 8792 > s.txt 2>&1 &)
for _ in $(seq 60); do curl -s -o /dev/null http://127.0.0.1:8792/health && break; sleep 1; done
echo "Host: evil.example GET /visits | $(curl -s -o /dev/null -w '%{http_code}' -H 'Host: evil.example' http://127.0.0.1:8792/visits)"
"$PY" - <<'PY'
import socket, time
conns = [socket.create_connection(("127.0.0.1", 8792), timeout=2) for _ in range(20)]
for s in conns:
    s.sendall(b"GET /visits HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
time.sleep(15)
alive = 0
for s in conns:
    s.settimeout(0.2)
    try:
        alive += s.recv(1) != b""
    except (TimeoutError, socket.timeout):
        alive += 1
    except OSError:
        pass
print(f"20 connections sending headers slowly | {alive} of 20 still open after 15 s")
PY
cd /; rm -rf "$T"
