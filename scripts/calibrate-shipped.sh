#!/usr/bin/env bash
# Re-makes the calibrated bounds shipped in models/bounds/ (built into the
# binary; check-ranges applies them by default, docs/passes.md): the largest
# |value| of every node of all-MiniLM-L6-v2 over the 40 sentences of
# models/bounds/corpus.txt, times a margin of 2. Run it after any change to
# the stdlib or the model that changes the graph (the tests refuse a stale
# file: its fingerprint no longer matches).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/fetch-models.sh
cargo build --release --quiet
./target/release/ditto calibrate minilm --weights models/cache/all-minilm-l6-v2 \
  --texts models/bounds/corpus.txt --margin 2 -o models/bounds/minilm.json
