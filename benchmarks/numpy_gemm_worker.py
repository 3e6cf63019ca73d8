"""Subprocess side of the GEMM section: time numpy's BLAS on the report's shapes.

Run with OPENBLAS_CORETYPE set by the parent (so OpenBLAS uses its best kernel); prints one
JSON object: which BLAS and kernel threadpoolctl reports, and the best/median seconds.
"""
import json
import sys

import numpy as np
import threadpoolctl

from common import best_and_median
from gemm_shapes import SHAPES, operands


def main():
    names, repeats, min_time = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    out = {"threadpool": [
        {k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for i in threadpoolctl.threadpool_info()], "times": {}}
    for name, M, N, K, ta, tb in SHAPES:
        if name not in names:
            continue
        a, b = operands(rng, M, N, K, ta, tb, np)
        opa, opb = (a.T if ta else a), (b.T if tb else b)
        c = np.empty((M, N), dtype=np.float32)
        np.matmul(opa, opb, out=c)
        out["times"][name] = best_and_median(lambda: np.matmul(opa, opb, out=c), repeats,
                                             min_time)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
