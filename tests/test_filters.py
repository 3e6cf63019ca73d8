"""The conv1 kernel grid: each kernel scaled to its own range, pixel-exact placement by
block, row and column, and `alexnet-cpu filters`."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import alexnet_cpu as ac
from alexnet_cpu import filters
from alexnet_cpu.checkpoint import save


def test_kernel_scaled_to_its_own_range():
    w = np.zeros((3, 2, 2), np.float32)
    w[0] = [[-3, 1], [5, 1]]                        # min -3 -> 0, max 5 -> 255
    patch = filters.kernel_patch(w)
    assert patch.shape == (2, 2, 3) and patch.dtype == np.uint8
    np.testing.assert_array_equal(patch[..., 0], [[0, 128], [255, 128]])
    np.testing.assert_array_equal(patch[..., 1], [[96, 96], [96, 96]])   # 3/8 of 255
    assert (filters.kernel_patch(np.full((3, 2, 2), 7.0)) == 128).all()  # flat: mid grey


@pytest.mark.parametrize("variant,index,block,row,col", [
    ("paper", 0, 0, 0, 0), ("paper", 37, 0, 2, 5), ("paper", 48 + 17, 1, 1, 1),
    ("paper", 95, 1, 2, 15), ("owt", 37, 0, 2, 5), ("owt", 63, 0, 3, 15)])
def test_known_kernel_lands_pixel_exact(variant, index, block, row, col):
    """Kernel `index` holds the values 0..255 (so its own range maps them to themselves);
    its 4x-enlarged patch must sit at the cell of (block, row, col), computed here from the
    layout constants: 16 columns, 11 * 4 px patches 2 px apart; 48 kernels (3 rows) per
    block in the paper variant, one block of 64 (4 rows) in owt."""
    net = ac.alexnet(variant, num_classes=2)
    weight, blocks = filters.first_conv(net)
    assert blocks == {"paper": 2, "owt": 1}[variant]
    kernel = np.random.default_rng(index).integers(0, 256, (3, 11, 11)).astype(np.float32)
    kernel.flat[:2] = 0, 255
    weight[index] = kernel
    img = np.asarray(filters.filter_grid(weight, blocks))
    rows_per_block, step = {"paper": 3, "owt": 4}[variant], 11 * 4 + 2
    x = filters.MARGIN + col * step
    y = (filters.HEADER + block * (filters.LABEL + rows_per_block * step + 2)
         + filters.LABEL + row * step)
    expected = kernel.transpose(1, 2, 0).repeat(4, axis=0).repeat(4, axis=1).astype(np.uint8)
    np.testing.assert_array_equal(img[y:y + 44, x:x + 44], expected)
    # the gap around it is background
    assert (img[y - 2:y, x:x + 44] == 255).all() and (img[y:y + 44, x + 44:x + 46] == 255).all()


def test_cli_writes_the_grid(tmp_path):
    net = ac.alexnet("paper", num_classes=2)
    save(str(tmp_path / "m.safetensors"), net, classes=["a", "b"])
    out = tmp_path / "conv1.png"
    r = subprocess.run([sys.executable, "-m", "alexnet_cpu.cli", "filters", "-load",
                        str(tmp_path / "m.safetensors"), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with Image.open(out) as im:
        assert im.size == (2 * filters.MARGIN + 16 * 46 - 2,
                           filters.HEADER + 2 * (filters.LABEL + 3 * 46 + 2) + filters.MARGIN - 2)
    r = subprocess.run([sys.executable, "-m", "alexnet_cpu.cli", "filters", "-load",
                        str(tmp_path / "none.safetensors")], capture_output=True, text=True)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
