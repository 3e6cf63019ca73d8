"""One gradient checker for every kernel test: 4th-order central differences in float64.

Kernels compute in float32; their float32 backward is compared with the numerical
gradient of a float64 function (usually the naive reference forward), so the check is
not drowned by float32 rounding.
"""
import numpy as np

try:
    import torch
except ImportError:  # parity tests skip without it
    torch = None


def numerical_grad(f, x, eps=1e-3):
    """d f(x) / dx for scalar f of a float64 array x, by 4th-order central differences."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        v = flat[i]
        fs = []
        for d in (2, 1, -1, -2):
            flat[i] = v + d * eps
            fs.append(f(x))
        flat[i] = v
        gflat[i] = (-fs[0] + 8 * fs[1] - 8 * fs[2] + fs[3]) / (12 * eps)
    return g


def assert_close(actual, expected, rtol=1e-4, atol=1e-5, what=""):
    """Assert |actual - expected| <= atol + rtol * max|expected| elementwise."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max(initial=0.0)), 1.0)
    err = float(np.abs(actual - expected).max(initial=0.0))
    assert err <= atol + rtol * scale, f"{what}: max abs error {err:.3g} (scale {scale:.3g})"
