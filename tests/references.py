"""Reference implementations for the tests and benchmarks only (never imported by the
package): the float64 NumPy references the kernel tests compare against, and AlexNet built
with PyTorch (imported inside the function: torch is not a run-time dependency).

Shapes: activations NCHW, conv weights OIHW (O, C/groups, KH, KW), as in the package."""
import numpy as np


# ------------------------------------------------------------------------ GEMM

def gemm_ref(a, b, ta, tb, alpha=1.0, beta=0.0, c=None):
    """alpha * op(a) @ op(b) + beta * c in float64 (op: transposed when ta / tb)."""
    r = alpha * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64))
    if beta != 0.0:
        r += beta * c.astype(np.float64)
    return r


# ----------------------------------------------------------------- convolution

def _windows(x, KH, KW, stride, pad):
    """x (N,C,H,W) -> (N,C,OH,OW,KH,KW) views of the zero-padded input."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (KH, KW), axis=(2, 3))
    return win[:, :, ::stride, ::stride]


def conv_ref(x, w, b, stride, pad, groups):
    """float64 conv2d(x, w) + b (b may be None), zero padding pad, groups splitting C and O."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    O, Cg, KH, KW = w.shape
    Og = O // groups
    win = _windows(x, KH, KW, stride, pad)
    out = np.concatenate([np.einsum("nchwij,ocij->nohw", win[:, g * Cg:(g + 1) * Cg],
                                    w[g * Og:(g + 1) * Og]) for g in range(groups)], axis=1)
    if b is not None:
        out += np.asarray(b, np.float64)[None, :, None, None]
    return out


def conv_ref_backward(dout, x, w, stride, pad, groups):
    """(dx, dw, db) of sum(conv_ref(x, w, b) * dout)."""
    dout, x, w = (np.asarray(a, np.float64) for a in (dout, x, w))
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    Og, OH, OW = O // groups, dout.shape[2], dout.shape[3]
    win = _windows(x, KH, KW, stride, pad)
    dw = np.concatenate([np.einsum("nohw,nchwij->ocij", dout[:, g * Og:(g + 1) * Og],
                                   win[:, g * Cg:(g + 1) * Cg]) for g in range(groups)])
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for g in range(groups):
        dy, wg = dout[:, g * Og:(g + 1) * Og], w[g * Og:(g + 1) * Og]
        for i in range(KH):
            for j in range(KW):
                dxp[:, g * Cg:(g + 1) * Cg, i:i + stride * OH:stride, j:j + stride * OW:stride] \
                    += np.einsum("nohw,oc->nchw", dy, wg[:, :, i, j])
    return dxp[:, :, pad:pad + H, pad:pad + W], dw, dout.sum(axis=(0, 2, 3))


# --------------------------------------------------------------------- pooling

def maxpool_ref(x, k, stride):
    """(out, argmax): max over each window, flat plane index of its first max."""
    N, C, H, W = x.shape
    OH, OW = (H - k) // stride + 1, (W - k) // stride + 1
    win = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), (k, k),
                                                   axis=(2, 3))[:, :, ::stride, ::stride]
    win = win[:, :, :OH, :OW].reshape(N, C, OH, OW, k * k)
    a = win.argmax(axis=-1)                     # first max on ties
    out = np.take_along_axis(win, a[..., None], axis=-1)[..., 0]
    ih = np.arange(OH)[:, None] * stride + a // k
    iw = np.arange(OW)[None, :] * stride + a % k
    return out, (ih * W + iw).astype(np.int32)


def maxpool_ref_backward(dout, argmax, shape):
    N, C, H, W = shape
    dx = np.zeros((N * C, H * W))
    g, a = dout.reshape(N * C, -1), argmax.reshape(N * C, -1)
    for p in range(N * C):
        np.add.at(dx[p], a[p], g[p])
    return dx.reshape(shape)


def _bins(L, n):
    return [(i * L // n, -(-(i + 1) * L // n)) for i in range(n)]


def avgpool_ref(x, OH, OW):
    x = np.asarray(x, np.float64)
    out = np.empty(x.shape[:2] + (OH, OW))
    for i, (h0, h1) in enumerate(_bins(x.shape[2], OH)):
        for j, (w0, w1) in enumerate(_bins(x.shape[3], OW)):
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def avgpool_ref_backward(dout, shape):
    dx = np.zeros(shape)
    OH, OW = dout.shape[2:]
    for i, (h0, h1) in enumerate(_bins(shape[2], OH)):
        for j, (w0, w1) in enumerate(_bins(shape[3], OW)):
            dx[:, :, h0:h1, w0:w1] += dout[:, :, i:i + 1, j:j + 1] / ((h1 - h0) * (w1 - w0))
    return dx


# ------------------------------------------------------------------------- LRN

def lrn_ref(x, size, alpha, beta, k):
    """float64 reference: (out, scale) by the formula, window clipped to [0, C)."""
    x = np.asarray(x, dtype=np.float64)
    C = x.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    scale = np.empty_like(x)
    for c in range(C):
        a, b = max(0, c - lo), min(C, c + hi + 1)
        scale[:, c] = k + alpha * (x[:, a:b] ** 2).sum(axis=1)
    return x * scale ** -beta, scale


def lrn_grad_ref(x, dout, size, alpha, beta, k):
    """float64 analytic gradient (checked against finite differences below)."""
    x = np.asarray(x, dtype=np.float64)
    dout = np.asarray(dout, dtype=np.float64)
    out, scale = lrn_ref(x, size, alpha, beta, k)
    C = x.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    t = dout * out / scale
    dx = dout * scale ** -beta
    for c in range(C):
        a, b = max(0, c - hi), min(C, c + lo + 1)   # i whose window holds c
        dx[:, c] -= 2 * alpha * beta * x[:, c] * t[:, a:b].sum(axis=1)
    return dx


# ------------------------------------------------------------- PyTorch AlexNet

def torch_alexnet(variant, num_classes=1000):
    """torch.nn AlexNet with torchvision's module names (features / avgpool / classifier),
    so our state dicts load with strict=True. "owt" is torchvision's alexnet; "paper" has
    96-256-384-384-256 convs, groups=2 on conv2/4/5 and the paper's LRN after ReLU 1 and 2."""
    import torch
    nn = torch.nn
    if variant == "owt":
        features = [nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                    nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True),
                    nn.MaxPool2d(3, 2),
                    nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
                    nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
                    nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
                    nn.MaxPool2d(3, 2)]
    elif variant == "paper":
        # Paper LRN: alpha 1e-4 not divided by n; torch divides by n, hence 5e-4.
        def lrn():
            return nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
        features = [nn.Conv2d(3, 96, 11, 4, 2), nn.ReLU(inplace=True), lrn(),
                    nn.MaxPool2d(3, 2),
                    nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(inplace=True), lrn(),
                    nn.MaxPool2d(3, 2),
                    nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
                    nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(inplace=True),
                    nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(inplace=True),
                    nn.MaxPool2d(3, 2)]
    else:
        raise ValueError(f"unknown variant {variant!r}; expected 'owt' or 'paper'")

    class AlexNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*features)
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
                nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
                nn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return AlexNet()
