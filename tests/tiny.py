"""A narrow AlexNet for the tests of training, files and data-parallel runs: a variant's
layers and names (features.0 ... classifier.6; paper: LRN and groups too), with 8-16
channels and 64 hidden units, so those code paths run in milliseconds and write kilobytes
instead of a 244 MB net per file."""
from alexnet_cpu.layers import (LRN, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear,
                                MaxPool2d, ReLU)
from alexnet_cpu.model import Net, _initialise


def tiny_alexnet(num_classes, seed=3, dropout=0.5, variant="owt"):
    if variant == "owt":
        features = [Conv2d(3, 8, 11, 4, 2), ReLU(), MaxPool2d(3, 2),
                    Conv2d(8, 16, 5, 1, 2), ReLU(), MaxPool2d(3, 2),
                    Conv2d(16, 16, 3, 1, 1), ReLU(),
                    Conv2d(16, 16, 3, 1, 1), ReLU(),
                    Conv2d(16, 16, 3, 1, 1), ReLU(), MaxPool2d(3, 2)]
    else:
        features = [Conv2d(3, 8, 11, 4, 2), ReLU(), LRN(), MaxPool2d(3, 2),
                    Conv2d(8, 16, 5, 1, 2, groups=2), ReLU(), LRN(), MaxPool2d(3, 2),
                    Conv2d(16, 16, 3, 1, 1), ReLU(),
                    Conv2d(16, 16, 3, 1, 1, groups=2), ReLU(),
                    Conv2d(16, 16, 3, 1, 1, groups=2), ReLU(), MaxPool2d(3, 2)]
    classifier = [Dropout(dropout, seed=seed * 2 + 1), Linear(16 * 6 * 6, 64), ReLU(),
                  Dropout(dropout, seed=seed * 2 + 2), Linear(64, 64), ReLU(),
                  Linear(64, num_classes)]
    net = Net([(f"features.{i}", l) for i, l in enumerate(features)]
              + [("avgpool", AdaptiveAvgPool2d(6)), ("flatten", Flatten())]
              + [(f"classifier.{j}", l) for j, l in enumerate(classifier)],
              variant, num_classes, 3)
    _initialise(net, "kaiming", 1.0, variant, seed)
    return net


def use_in_cli():
    """Make the trainer and checkpoint loading build the narrow net of the variant: for
    tests that drive `alexnet-cpu train` in a subprocess (MPI, resume); imported by their
    `python -c` programs, with tests/ on PYTHONPATH."""
    from alexnet_cpu import checkpoint, train

    def build(variant="owt", num_classes=1000, seed=0, dropout=0.5, **_):
        return tiny_alexnet(num_classes, seed=seed, dropout=dropout, variant=variant)
    train.alexnet = checkpoint.alexnet = build
