"""`alexnet-cpu inference -json`: one JSON object per image, the same classes and
probabilities as the text output."""
import json

import numpy as np
from PIL import Image

from alexnet_cpu.checkpoint import save
from tiny import run_cli, tiny_alexnet


def test_one_object_per_image(tmp_path):
    save(str(tmp_path / "m.safetensors"), tiny_alexnet(4, seed=2),
         classes=["a", "b", "c", "d"], input_size=63)
    rng = np.random.default_rng(0)
    for name in ("x.png", "y.png"):
        Image.fromarray(rng.integers(0, 255, (70, 70, 3), np.uint8)).save(tmp_path / name)

    def infer(*extra):
        r = run_cli("inference", "-input", str(tmp_path), "-load",
                    str(tmp_path / "m.safetensors"), "-topk", "3", *extra)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    rows = [json.loads(line) for line in infer("-json")]
    assert [r["file"] for r in rows] == [str(tmp_path / "x.png"), str(tmp_path / "y.png")]
    for row, text in zip(rows, infer()):
        assert set(row) == {"file", "classes", "probabilities"}
        assert len(row["classes"]) == 3 and row["probabilities"] == sorted(
            row["probabilities"], reverse=True)
        assert text == f"{row['file']}: " + "  ".join(
            f"{c} {p:.3f}" for c, p in zip(row["classes"], row["probabilities"]))
