"""The GEMM shapes of the report: 2048^3 and AlexNet's layers (batch 128 for fc).

Each entry: (name, M, N, K, trans_a, trans_b), C[M,N] = op(A)[M,K] op(B)[K,N], row-major.
Convolutions as W[Cout, Cin*kh*kw] . cols[Cin*kh*kw, OH*OW] per image; fully connected as
weights x batch or batch x weights; backward as dW = dY . cols^T and dX = W^T . dY.
"""

SHAPES = [
    ("square 2048^3", 2048, 2048, 2048, False, False),
    # forward
    ("conv1 fwd", 96, 3025, 363, False, False),
    ("conv2 fwd (per group)", 128, 729, 1200, False, False),
    ("conv2 fwd (ungrouped)", 256, 729, 2400, False, False),
    ("conv3 fwd", 384, 169, 2304, False, False),
    ("conv4 fwd (owt)", 256, 169, 3456, False, False),
    ("conv5 fwd", 256, 169, 2304, False, False),
    ("fc6 fwd W.X^T", 4096, 128, 9216, False, True),
    ("fc6 fwd X.W^T", 128, 4096, 9216, False, True),
    ("fc7 fwd W.X^T", 4096, 128, 4096, False, True),
    # backward
    ("conv1 dW = dY.cols^T", 96, 363, 3025, False, True),
    ("conv3 dW = dY.cols^T", 384, 2304, 169, False, True),
    ("conv1 dX = W^T.dY", 363, 3025, 96, True, False),
    ("conv3 dX = W^T.dY", 2304, 169, 384, True, False),
    ("fc6 dW = dY^T.X", 4096, 9216, 128, True, False),
    ("fc6 dX = dY.W", 128, 9216, 4096, False, False),
]

QUICK = {"square 2048^3", "conv1 fwd", "conv3 fwd", "fc6 fwd X.W^T", "conv1 dW = dY.cols^T"}


def operands(rng, M, N, K, trans_a, trans_b, np):
    """Random float32 operands stored as the transposes say."""
    a = rng.standard_normal((K, M) if trans_a else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N), dtype=np.float32)
    return a, b
