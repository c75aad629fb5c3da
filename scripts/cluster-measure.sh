#!/usr/bin/env bash
# Measures a three-process cluster on loopback (docs/deployment.md, "Measured"):
# keygen, compile, share-weights, three `ditto party` processes, then two
# client queries (the second prepared while the parties waited). Prints each
# query's JSON summary. Run on an otherwise idle machine.
#
#   cargo build --release && bash scripts/cluster-measure.sh bert    # BERT-base, seeded weights, 128 ids
#   bash scripts/cluster-measure.sh minilm "Some sentence."            # all-MiniLM-L6-v2, 128 tokens, --text
set -euo pipefail
cd "$(dirname "$0")/.."
ditto=$PWD/target/release/ditto
model=${1:-minilm}
text=${2:-Secure inference keeps both the model and the query private.}
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
"$ditto" keygen --cluster "$dir/c/cluster.toml" 2>/dev/null
case $model in
bert)
  "$ditto" gen-weights bert --config base --seed 7 -o "$dir/w.safetensors"
  weights=$dir/w.safetensors
  query=(--ids "$(python3 -c 'print(",".join(str((101 + 37 * i) % 30522) for i in range(128)))')")
  ;;
minilm)
  weights=models/cache/all-minilm-l6-v2
  query=(--text "$text" --tokenizer "$weights/tokenizer.json")
  ;;
*) echo "model: bert or minilm" >&2; exit 2 ;;
esac
"$ditto" compile "$model" --seq 128 --policy ditto -o "$dir/p.dbc"
t0=$SECONDS
"$ditto" share-weights "$dir/p.dbc" --weights "$weights" -o "$dir/shares"
echo "share-weights: $((SECONDS - t0)) s" >&2
for i in 0 1 2; do
  "$ditto" party --id $i --cluster "$dir/c/cluster.toml" --program "$dir/p.dbc" \
    --shares "$dir/shares/p$i" 2>"$dir/p$i.log" &
  pids+=($!)
done
for i in 0 1 2; do
  until grep -q "mesh up" "$dir/p$i.log" 2>/dev/null; do sleep 0.2; done
done
for q in 1 2; do
  "$ditto" client --cluster "$dir/c/cluster.toml" --program "$dir/p.dbc" "${query[@]}" --json |
    python3 -c '
import json, sys
d = json.load(sys.stdin)
keep = ("wall_s", "len", "comm_bytes", "wire_bytes", "client_bytes", "rounds", "rounds_online", "offline_phase")
print(json.dumps({k: d.get(k) for k in keep}))
if len(sys.argv) > 1:
    json.dump(d["output"], open(sys.argv[1], "w"))' "$dir/out$q.json"
  sleep 3 # the parties prepare the next query's offline phase
done
if [ "$model" = minilm ]; then
  "$ditto" run minilm --weights "$weights" --text "$text" --json | python3 -c '
import json, math, sys
want = json.load(sys.stdin)["output"]
got = json.load(open(sys.argv[1]))
cos = sum(a * b for a, b in zip(got, want)) / math.sqrt(sum(a * a for a in got) * sum(b * b for b in want))
print(f"cosine against the float model on the unpadded sentence: {cos:.5f}")' "$dir/out2.json"
fi
