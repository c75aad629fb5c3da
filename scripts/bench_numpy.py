#!/usr/bin/env python3
"""numpy float32/float64 matmul GFLOP/s at the shapes of `ditto bench kernels`,
for comparing ditto's ring kernels with a BLAS on the same machine.
Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 scripts/bench_numpy.py
(those variables slow current numpy; see the machine notes)."""
import json
import time

import numpy as np

out = []
for (m, k, n) in [(128, 768, 768), (128, 768, 3072)]:
    for dt in (np.float32, np.float64):
        a = np.random.rand(m, k).astype(dt)
        b = np.random.rand(k, n).astype(dt)
        a @ b
        best, t0, runs = float("inf"), time.perf_counter(), 0
        while runs < 3 or time.perf_counter() - t0 < 1.0:
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
            runs += 1
        out.append({"kernel": "numpy matmul", "dtype": np.dtype(dt).name, "m": m, "k": k, "n": n,
                    "gflops": 2 * m * k * n / best / 1e9})
print(json.dumps(out, indent=1))
