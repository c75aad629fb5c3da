#!/usr/bin/env bash
# Compiles every shipped model (each config, 16 tokens; MiniLM also at 128)
# under every built-in policy into DIR, for a byte-for-byte comparison of
# two builds' code generation:
#   scripts/bytecode-all.sh /tmp/before   # on the old build
#   scripts/bytecode-all.sh /tmp/after    # on the new one
#   diff -r /tmp/before /tmp/after
# ditto-auto needs calibrated bounds: it compiles where they ship (MiniLM).
set -euo pipefail
out=${1:?usage: scripts/bytecode-all.sh DIR}
bin=${DITTO:-target/release/ditto}
mkdir -p "$out"
policies=$("$bin" passes | sed -n '/^policies/,$p' | awk 'NR > 1 {print $1}')
for m in bert bert-classifier gpt2 minilm smollm2; do
    for c in $(grep -o '^config [a-z0-9_]*' "models/$m.ditto" | awk '{print $2}'); do
        for p in $policies; do
            "$bin" compile "$m" --config "$c" --seq 16 --policy "$p" \
                -o "$out/$m-$c-$p.dbc" >/dev/null 2>&1 || echo "($m $c $p does not compile)"
        done
    done
done
for p in $policies; do
    "$bin" compile minilm --seq 128 --policy "$p" -o "$out/minilm128-$p.dbc" >/dev/null 2>&1 \
        || echo "(minilm 128 $p does not compile)"
done
ls "$out" | wc -l
