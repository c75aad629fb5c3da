#!/usr/bin/env bash
# SmolLM2-135M through a loopback cluster and in process, seeded alike
# (--insecure-seed: for tests only), on the four prompts of tests/llama.rs:
# prints both generations and how many steps revealed identical logits.
# Needs target/release/ditto and scripts/fetch-models.sh's GGUF; writes
# 3.7 GB of share files per prompt under $OUT (removed after each).
set -euo pipefail
cd "$(dirname "$0")/.."
B=./target/release/ditto
G=models/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
OUT=${OUT:-$(mktemp -d)}
SEED=${SEED:-5}
N=12
[ -x "$B" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -f "$G" ] || { echo "fetch the model first: scripts/fetch-models.sh" >&2; exit 1; }
$B keygen --cluster "$OUT/keys/cluster.toml" --force >/dev/null
i=0
while IFS='|' read -r n0 text; do
  i=$((i + 1))
  echo "prompt $i: $text ($n0 tokens)"
  $B compile smollm2 --seq 1 --size M=$((n0 + N - 1)) --policy ditto -o "$OUT/step.dbc" 2>/dev/null
  $B share-weights "$OUT/step.dbc" --weights $G -o "$OUT/shares" --force --insecure-seed "$SEED" 2>/dev/null
  pids=()
  for k in 0 1 2; do
    $B party --id $k --cluster "$OUT/keys/cluster.toml" --program "$OUT/step.dbc" \
      --shares "$OUT/shares/p$k" --insecure-seed "$SEED" 2>"$OUT/party$k.log" &
    pids+=($!)
  done
  for _ in $(seq 1 120); do
    [ "$(grep -l "mesh up" "$OUT"/party?.log 2>/dev/null | wc -l)" = 3 ] && break
    sleep 1
  done
  $B client --cluster "$OUT/keys/cluster.toml" --program "$OUT/step.dbc" --text "$text" \
    --tokenizer $G --generate $N --insecure-seed "$SEED" --json >"$OUT/cluster.json"
  kill "${pids[@]}"
  wait 2>/dev/null || true
  rm -rf "$OUT/shares"
  $B generate smollm2 --weights $G --prompt "$text" --max-new-tokens $N --backend mpc \
    --prompt-by-token --eos none --insecure-seed "$SEED" --json >"$OUT/in-process.json"
  python3 - "$OUT/cluster.json" "$OUT/in-process.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
print("  cluster    ", a["tokens"], repr(a.get("text")))
print("  in process ", b["tokens"], repr(b.get("text")))
same = sum(x["top"] == y["top"] for x, y in zip(a["steps"], b["steps"]))
print(f"  steps {len(a['steps'])} / {len(b['steps'])}, identical top-5 logits: {same}")
PY
done <<'P'
5|The capital of France is
8|Once upon a time, a little fox
6|def fibonacci(n):
9|The mitochondria is the part of the cell that
P
