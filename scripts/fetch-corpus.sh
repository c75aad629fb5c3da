#!/usr/bin/env bash
# Fetches the English corpus of distillation (`ditto distill`) and of the
# WordNet gloss task, from the Debian package wordnet-base 1:3.0-37 with the
# ordinary client (apt-get download), checking its SHA-256, into
# models/cache/wordnet/:
# - glosses-train.txt, glosses-test.txt: the noun glosses (definitions,
#   without their quoted examples), one per line; every 10th goes to test;
# - gloss-task-train.tsv, gloss-task-test.tsv: "label<TAB>gloss" with the
#   gloss's lexicographer file as label (noun.animal, noun.food, ...),
#   the same split.
# The glosses are shuffled (Python's random.Random(0)), so the first lines
# of a file are a fair sample (`head -n 2000`).
# Idempotent: a corpus already in place is not fetched again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/models/cache/wordnet"
pkg="wordnet-base=1:3.0-37"
sum="61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752"

if [ -f "$dest/glosses-train.txt" ] && [ -f "$dest/gloss-task-test.tsv" ]; then
  echo "$pkg already in $dest"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) || {
  echo "error: apt-get download $pkg failed (is the Debian archive reachable?)" >&2
  exit 1
}
deb="$(ls "$tmp"/*.deb)"
echo "$sum  $deb" | sha256sum --check --quiet || {
  echo "error: $pkg: the package's SHA-256 is not $sum" >&2
  exit 1
}
dpkg-deb -x "$deb" "$tmp/x"
mkdir -p "$dest"
python3 - "$tmp/x/usr/share/wordnet/data.noun" "$dest" <<'PY'
import os, sys
data, dest = sys.argv[1], sys.argv[2]
# lexicographer files 3..28 of nouns (wordnet's lexnames(5))
names = ["Tops", "act", "animal", "artifact", "attribute", "body", "cognition",
         "communication", "event", "feeling", "food", "group", "location", "motive",
         "object", "person", "phenomenon", "plant", "possession", "process",
         "quantity", "relation", "shape", "state", "substance", "time"]
rows = []
with open(data, encoding="latin-1") as f:
    for line in f:
        if line.startswith("  "):  # the licence header
            continue
        head, _, gloss = line.partition(" | ")
        lex = int(head.split()[1])
        text = gloss.strip().split('; "')[0].strip().rstrip(";").strip()
        if len(text.split()) < 3:
            continue
        rows.append(("noun." + names[lex - 3], text))
# a fixed shuffle, so that the first lines of a file are a fair sample
import random
random.Random(0).shuffle(rows)
files = {k: open(os.path.join(dest, k), "w") for k in
         ["glosses-train.txt", "glosses-test.txt", "gloss-task-train.tsv", "gloss-task-test.tsv"]}
for i, (label, text) in enumerate(rows):
    part = "test" if i % 10 == 9 else "train"
    files[f"glosses-{part}.txt"].write(text + "\n")
    files[f"gloss-task-{part}.tsv"].write(f"{label}\t{text}\n")
for f in files.values():
    f.close()
print(f"{len(rows)} noun glosses")
PY
echo "$pkg fetched into $dest"
