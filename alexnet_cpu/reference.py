"""Reference models built with PyTorch, for tests and benchmarks only (torch is never a
run-time dependency: it is imported inside the function)."""


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
