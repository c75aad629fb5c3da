#!/usr/bin/env python3
"""Independent float64 reference for all-MiniLM-L6-v2 sentence embeddings.

Implements BERT + mean pooling directly in numpy (no ditto code), tokenizes with
the HuggingFace `tokenizers` package (padding and truncation off, special tokens
added), and writes tests/fixtures/minilm_reference.json: for each sentence, its
token ids and the 384-dim mean-pooled embedding (not L2-normalised).

Usage: pip install numpy safetensors tokenizers
       scripts/minilm_reference.py models/cache/all-minilm-l6-v2
"""
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Secure inference keeps both the model and the query private.",
    "I love Rust.",
    "Three servers compute on secret shares without learning the input or the weights of the transformer model that they evaluate together.",
    "What is the capital of France?",
]

LAYERS, HEADS, EPS = 6, 12, 1e-12


def erf(x):
    return np.vectorize(math.erf)(x)


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * g + b


def encode(w, ids, types=None):
    """The encoder's output states [S, D]; `types` are token-type ids (0 if None)."""
    p = lambda n: w[n].astype(np.float64)
    s = len(ids)
    types = np.zeros(s, dtype=np.int64) if types is None else np.asarray(types)
    x = p("embeddings.word_embeddings.weight")[ids]
    x = x + p("embeddings.position_embeddings.weight")[:s] + p("embeddings.token_type_embeddings.weight")[types]
    x = layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"))
    for i in range(LAYERS):
        pre = f"encoder.layer.{i}."
        lin = lambda h, n: h @ p(pre + n + ".weight").T + p(pre + n + ".bias")
        d = x.shape[1]
        dh = d // HEADS
        heads = lambda t: t.reshape(s, HEADS, dh).transpose(1, 0, 2)
        q, k, v = (heads(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        sc = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        sc = sc - sc.max(-1, keepdims=True)
        pr = np.exp(sc)
        pr = pr / pr.sum(-1, keepdims=True)
        ctx = (pr @ v).transpose(1, 0, 2).reshape(s, d)
        a = lin(ctx, "attention.output.dense")
        h = layer_norm(a + x, p(pre + "attention.output.LayerNorm.weight"), p(pre + "attention.output.LayerNorm.bias"))
        f = lin(h, "intermediate.dense")
        f = 0.5 * f * (1.0 + erf(f / math.sqrt(2.0)))
        o = lin(f, "output.dense")
        x = layer_norm(o + h, p(pre + "output.LayerNorm.weight"), p(pre + "output.LayerNorm.bias"))
    return x


def embed(w, ids):
    return encode(w, ids).mean(0)


def load(folder):
    """The checkpoint's tensors and its tokenizer (padding and truncation off)."""
    w = load_file(os.path.join(folder, "model.safetensors"))
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return w, tok


def main():
    w, tok = load(sys.argv[1])
    out = []
    for s in SENTENCES:
        ids = tok.encode(s, add_special_tokens=True).ids
        e = embed(w, np.array(ids))
        out.append({"text": s, "tokens": ids, "embedding": [float(f"{v:.9g}") for v in e]})
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    path = os.path.join(root, "tests", "fixtures", "minilm_reference.json")
    with open(path, "w") as f:
        json.dump({"model": "all-MiniLM-L6-v2", "precision": "float64", "sentences": out}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(out)} reference embeddings to {path}")


if __name__ == "__main__":
    main()
