#!/usr/bin/env python3
"""Independent float64 reference for `models/bert-classifier.ditto`.

The classifier under test is all-MiniLM-L6-v2's encoder and pooler saved as a
HuggingFace BertForSequenceClassification checkpoint would be: every tensor
name with the `bert.` prefix, plus a 3-label head `classifier.weight` [3, 384]
and `classifier.bias` [3] whose f32 values follow a formula (tests/models.rs
builds the same folder), and a config.json with `id2label`. This script
computes its probabilities in numpy (encoder from minilm_reference.py, then
tanh pooler, classifier, softmax) for single texts and pairs (token types from
the tokenizer's pair template) and writes tests/fixtures/classifier_reference.json.

Usage: pip install numpy safetensors tokenizers
       scripts/classifier_reference.py models/cache/all-minilm-l6-v2
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from minilm_reference import encode, load  # noqa: E402

LABELS = ["negative", "neutral", "positive"]
INPUTS = [
    ("The movie was wonderful and the actors were brilliant.", None),
    ("I love Rust.", None),
    ("The weather is terrible today and the trains are late.", None),
    ("A man is playing a guitar.", "Someone plays music on a stage."),
    ("What is the capital of France?", "Paris is the capital and largest city of France."),
]


def head(hidden):
    """The classifier's weights: the formula tests/models.rs uses, rounded to f32."""
    w = np.array([[math.sin(0.37 * i + 1.3 * j + 0.2) for i in range(hidden)] for j in range(len(LABELS))])
    b = np.zeros(len(LABELS))
    return w.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)


def main():
    w, tok = load(sys.argv[1])
    p = lambda n: w[n].astype(np.float64)
    wc, bc = head(p("pooler.dense.weight").shape[0])
    out = []
    for a, b in INPUTS:
        enc = tok.encode(a, b, add_special_tokens=True) if b else tok.encode(a, add_special_tokens=True)
        x = encode(w, np.array(enc.ids), enc.type_ids)
        pooled = np.tanh(x[0] @ p("pooler.dense.weight").T + p("pooler.dense.bias"))
        logits = pooled @ wc.T + bc
        e = np.exp(logits - logits.max())
        probs = e / e.sum()
        out.append({"text": a, "pair": b, "tokens": enc.ids, "segments": enc.type_ids,
                    "probs": [float(f"{v:.12g}") for v in probs], "label": LABELS[int(probs.argmax())]})
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    path = os.path.join(root, "tests", "fixtures", "classifier_reference.json")
    with open(path, "w") as f:
        json.dump({"model": "all-MiniLM-L6-v2 as BertForSequenceClassification", "labels": LABELS,
                   "precision": "float64", "inputs": out}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(out)} reference predictions to {path}")


if __name__ == "__main__":
    main()
