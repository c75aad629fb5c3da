#!/usr/bin/env bash
# Re-measures every figure of docs/benchmarks.md into docs/bench/*.json, one
# `ditto bench` run per file, sequentially (run it on an otherwise idle
# machine; it takes about 15 minutes on 2 cores). Needs the release binary and
# the real all-MiniLM-L6-v2 (scripts/fetch-models.sh).
#
#   cargo build --release && bash scripts/bench-docs.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/bench}
mkdir -p "$out"
ditto=./target/release/ditto
minilm=models/cache/all-minilm-l6-v2
four=uniform64,ditto,ditto-nl64,ditto-quad
seven=$four,models/policies/ditto-puma.json,models/policies/uniform64-lean.json,models/policies/ditto-exp64.json

run() {
    local name=$1
    shift
    echo "== $name: ditto bench $*" >&2
    local t0=$SECONDS
    "$ditto" bench "$@" --json >"$out/$name.json.tmp"
    mv "$out/$name.json.tmp" "$out/$name.json"
    echo "   $((SECONDS - t0)) s" >&2
}

"$ditto" bench kernels --json >"$out/kernels.json"
run bert-base-128-embeddings bert --seq 128 --input embeddings --policies "$seven"
run bert-base-128-ids bert --seq 128 --policies "$four"
run bert-base-32-ids bert --seq 32 --policies "$four"
run gpt2-base-128-ids gpt2 --seq 128 --policies "$four"
run gpt2-base-32-ids gpt2 --seq 32 --policies "$four"
run minilm-128-embeddings minilm --weights "$minilm" --seq 128 --input embeddings --policies "$four"
run minilm-128-ids minilm --weights "$minilm" --seq 128 --policies "$four"
run minilm-32-ids minilm --weights "$minilm" --seq 32 --policies "$four"
run bert-base-2layers-128-lan bert --layers 2 --seq 128 --net lan --policies uniform64,ditto
run bert-base-128-embeddings-offline bert --seq 128 --input embeddings --offline --policies uniform64,ditto
run bert-base-2layers-128-wan-offline bert --layers 2 --seq 128 --net wan --offline --policies ditto
# (docs/bench/rounds/: the issue-20 comparison of two builds, run by hand)

# ditto-auto: bounds calibrated on four random 128-token id sequences
# (Python random.seed(11), ids in 1000..29999)
bounds=$(mktemp --suffix .json)
trap 'rm -f "$bounds"' EXIT
mapfile -t samples < <(python3 -c '
import random
random.seed(11)
for _ in range(4):
    print(",".join(str(random.randint(1000, 29999)) for _ in range(128)))')
ids=()
for s in "${samples[@]}"; do ids+=(--ids "$s"); done
"$ditto" calibrate bert --random-weights 7 "${ids[@]}" -o "$bounds" >&2
run bert-base-128-embeddings-auto bert --seq 128 --input embeddings --policies ditto,ditto-auto --bounds "$bounds"
python3 scripts/bench_tables.py "$out"/*.json
